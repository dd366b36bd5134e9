// `npm run bench:store -- [--size 20GiB] [--compare] [--dir DIR]`: ingest generated, incompressible chunks
// (sizes like the chunker's) into the store and report ingest MB/s and write amplification = bytes this
// process wrote to disk (/proc/self/io write_bytes, LevelDB included) ÷ chunk bytes stored. With --compare
// it also measures, at --compare-size (2 GiB), chunk bytes as LevelDB values and one file per chunk. With
// --tracked it measures the shipped store again with every chunk an entry of a tracked manifest (its
// have-bitmap kept current in the commit batches), after timing trackHave over those entries.
// Progress on stderr; the last stdout line is one JSON object.
import '../../protocol/polyfill.js'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Level } from 'level'
import { sha256, digestHex } from '../../protocol/cid.js'
import { Store } from '../../store/store.js'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'

const GiB = 1024 ** 3

function parseSize (s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kib|mib|gib|kb|mb|gb)?$/i.exec(s.trim())
  if (m == null) throw new Error(`not a size: ${s}`)
  const mult: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: GiB, kb: 1e3, mb: 1e6, gb: 1e9 }
  return Math.round(Number(m[1]) * mult[(m[2] ?? 'b').toLowerCase()])
}

function writeBytes (): number {
  const io = readFileSync('/proc/self/io', 'utf8')
  return Number(/^write_bytes:\s*(\d+)/m.exec(io)?.[1] ?? 0)
}

/** Unique incompressible chunks: slices of a random pool, each stamped with a counter. */
let randomPool: Uint8Array | undefined

function * chunks (total: number): Generator<Uint8Array> {
  // one pool per run, so that the chunks of a run can be made again (their digests, for --tracked)
  const pool = (randomPool ??= randomBytes(64 * 1024 * 1024))
  let produced = 0
  let n = 0
  let seed = 12345
  while (produced < total) {
    seed = (seed * 1103515245 + 12345) >>> 0
    const size = Math.min(total - produced, 64 * 1024 + (seed % (448 * 1024)))
    const offset = seed % (pool.byteLength - size)
    const c = new Uint8Array(size)
    c.set(pool.subarray(offset, offset + size))
    new DataView(c.buffer).setFloat64(0, n++)
    produced += size
    yield c
  }
}

type Sink = { put: (d: Uint8Array, b: Uint8Array) => Promise<unknown>, close: () => Promise<void> }

async function measure (name: string, total: number, sink: Sink): Promise<{ design: string, bytes: number, seconds: number, mbPerSec: number, writeAmplification: number }> {
  const w0 = writeBytes()
  const t0 = performance.now()
  let stored = 0
  let lastReport = t0
  const inflight = new Set<Promise<unknown>>()
  for (const c of chunks(total)) {
    const p = sink.put(sha256(c), c).finally(() => inflight.delete(p))
    inflight.add(p)
    stored += c.byteLength
    if (inflight.size >= 16) await Promise.race(inflight)
    if (performance.now() - lastReport > 5_000) {
      lastReport = performance.now()
      process.stderr.write(`${name}: ${(stored / GiB).toFixed(1)} GiB, ${(stored / 1e6 / ((lastReport - t0) / 1000)).toFixed(0)} MB/s\n`)
    }
  }
  await Promise.all(inflight)
  await sink.close()
  const seconds = (performance.now() - t0) / 1000
  const written = writeBytes() - w0
  const r = { design: name, bytes: stored, seconds: +seconds.toFixed(1), mbPerSec: +(stored / 1e6 / seconds).toFixed(0), writeAmplification: +(written / stored).toFixed(3) }
  process.stderr.write(`${JSON.stringify(r)}\n`)
  return r
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '20GiB' }, compare: { type: 'boolean', default: false }, tracked: { type: 'boolean', default: false }, 'compare-size': { type: 'string', default: '2GiB' }, dir: { type: 'string' } } })
  const base = values.dir ?? await mkdtemp(join(tmpdir(), 'herald-bench-store-'))
  await mkdir(base, { recursive: true })
  const results = []
  try {
    const storeDir = join(base, 'packs-design')
    const store = await Store.open(storeDir)
    results.push(await measure('pack files + LevelDB index (shipped)', parseSize(values.size!), { put: async (d, b) => await store.putChunk(d, b), close: async () => { await store.close() } }))
    await rm(storeDir, { recursive: true, force: true })
    if (values.tracked === true) {
      const digests = [...chunks(parseSize(values.size!))].map(c => sha256(c))
      const entries = new Uint8Array(digests.length * 32)
      digests.forEach((d, i) => entries.set(d, i * 32))
      const tracked = await Store.open(storeDir)
      const t0 = performance.now()
      await tracked.trackHave(CID.createV1(0x55, Digest.create(0x12, sha256(entries))), entries, digests.length)
      process.stderr.write(`trackHave over ${digests.length} entries: ${((performance.now() - t0) / 1000).toFixed(2)} s\n`)
      results.push(await measure('pack files + LevelDB index, into a tracked manifest', parseSize(values.size!), { put: async (d, b) => await tracked.putChunk(d, b), close: async () => { await tracked.close() } }))
      await rm(storeDir, { recursive: true, force: true })
    }
    if (values.compare === true) {
      const size = parseSize(values['compare-size']!)
      const ldir = join(base, 'level-values')
      const db = new Level<Uint8Array, Uint8Array>(ldir, { keyEncoding: 'view', valueEncoding: 'view' })
      await db.open()
      results.push(await measure('chunk bytes as LevelDB values', size, { put: async (d, b) => { await db.put(d, b) }, close: async () => { await db.close() } }))
      await rm(ldir, { recursive: true, force: true })
      const fdir = join(base, 'files')
      await mkdir(fdir)
      const made = new Set<string>()
      results.push(await measure('one file per chunk', size, {
        put: async (d, b) => {
          const h = digestHex(d)
          const sub = join(fdir, h.slice(0, 2))
          if (!made.has(sub)) { made.add(sub); await mkdir(sub, { recursive: true }) }
          await writeFile(join(sub, h), b)
        },
        close: async () => {}
      }))
      await rm(fdir, { recursive: true, force: true })
    }
  } finally {
    if (values.dir == null) await rm(base, { recursive: true, force: true })
  }
  console.log(JSON.stringify({ results }))
}

main().catch(err => { console.error(err); process.exit(1) })
