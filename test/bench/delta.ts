// `npm run bench:delta -- OLD NEW [--avg BYTES] [--no-delta] [--baselines]`: publish two releases (files or
// directories, through the same walk/decompress as `herald publish`) with the shipped chunker and delta
// encoder, and print one JSON line:
//   {oldBytes, newBytes, newChunks, reusedChunks, deltaBytes, compressedBytes, deltaChunkBytes, deltaChunks,
//    movedBytes, manifestBytes, publishSeconds, publishMbPerSec, publishPlainMbPerSec, seconds, mbPerSec, ...}
// deltaBytes      bytes of NEW's distinct chunks that OLD does not have (what a plain CDC fetch moves, raw)
// compressedBytes the same chunks as the chunk protocol sends them (zstd when it saves >= 1/16)
// deltaChunkBytes what the chunks given a delta encoding cost as delta objects (deltaChunks of them)
// movedBytes      what a peer holding OLD moves to get NEW with the default settings: delta objects where
//                 the publisher kept one, compressed chunks otherwise, plus the manifest (manifestBytes: as a
//                 delta against OLD's when under 80% of it, as /herald/manifest/1.1.0 sends it; manifestRawBytes whole)
// publishMbPerSec NEW published with delta encoding (chunk, hash, features, deltas, wire sizes) in MB/s
//                 of NEW; publishPlainMbPerSec the same without delta encoding (chunk, hash, wire sizes)
// --baselines adds zstdPatchBytes (`zstd -19 --long --patch-from=OLD NEW`, per file, summed), rsyncBytes and
// rsyncZBytes (`rsync --stats` literal data, without and with -z), casyncBytes (casync chunks NEW lacks from
// OLD's store at the same average chunk size, as stored: zstd-compressed).
import { encodeManifestDelta } from '../../protocol/manifest-delta.js'
import '../../protocol/polyfill.js'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtemp, readdir, rm, stat, cp, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_CHUNKER, type ChunkerParams } from '../../protocol/chunker.js'
import { digestHex } from '../../protocol/cid.js'
import { computeWireSizes, encodeReleaseDeltas } from '../../protocol/delta-encoder.js'
import { DeltaPool } from '../../daemon/runtime/delta-pool.js'
import { buildRelease } from '../../protocol/ingest.js'
import { encodeManifest, manifestChunkIndex } from '../../protocol/manifest.js'

async function publish (path: string, params: ChunkerParams, chunks: Map<string, Uint8Array>): Promise<Awaited<ReturnType<typeof buildRelease>> & { seconds: number }> {
  const started = performance.now()
  const built = await buildRelease(path, { dataset: 'bench', version: 'v', chunker: params, onChunk: (d, b) => { chunks.set(digestHex(d), b.slice()) } })
  return { ...built, seconds: (performance.now() - started) / 1000 }
}

async function files (dir: string): Promise<string[]> {
  const s = await stat(dir)
  if (!s.isDirectory()) return [dir]
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name))
  }
  return out.sort()
}

function need (cmd: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) {
    console.error(`installing ${cmd} from Debian for --baselines`)
    execFileSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${cmd}`], { stdio: ['ignore', 2, 2] })
  }
}

async function baselines (oldPath: string, newPath: string, avg: number): Promise<Record<string, number>> {
  for (const c of ['zstd', 'rsync', 'casync']) need(c)
  const oldIsDir = (await stat(oldPath)).isDirectory()
  const newFiles = await files(newPath)
  let zstdPatchBytes = 0
  for (const f of newFiles) {
    const rel = (await stat(newPath)).isDirectory() ? relative(newPath, f) : ''
    const old = oldIsDir ? join(oldPath, rel) : oldPath
    const hasOld = await stat(old).then(s => s.isFile(), () => false)
    const size = (await stat(f)).size
    // --long with a window covering both files; -M lets the decoder accept that window
    const wlog = Math.min(31, Math.max(27, Math.ceil(Math.log2(Math.max(size, 1) * 2 + 1))))
    const args = ['-q', '-19', '-T0', `--long=${wlog}`, '-c', ...(hasOld ? [`--patch-from=${old}`] : []), f]
    const out = execFileSync('bash', ['-o', 'pipefail', '-c', 'zstd "$@" | wc -c', 'zstd', ...args], { stdio: ['ignore', 'pipe', 2] })
    zstdPatchBytes += Number(out.toString().trim())
  }
  const rsync = async (z: boolean): Promise<number> => {
    const dest = await mkdtemp(join(tmpdir(), 'herald-bench-rsync-'))
    try {
      const src = oldIsDir ? `${oldPath}/` : oldPath
      await cp(src, oldIsDir ? dest : join(dest, 'file'), { recursive: true })
      const from = oldIsDir ? `${newPath}/` : newPath
      // a remote-shell transfer (via a local "ssh" that runs the command): the delta algorithm only runs
      // between two processes, local copies would send whole files
      const out = execFileSync('rsync', ['-a', '--no-whole-file', '--stats', ...(z ? ['-z'] : []), '-e', 'sh -c \'shift; exec "$@"\' x', from, `localhost:${oldIsDir ? dest + '/' : join(dest, 'file')}`]).toString()
      const m = z ? /Total bytes sent: ([\d,]+)/.exec(out) : /Literal data: ([\d,]+)/.exec(out)
      if (m == null) throw new Error(`unexpected rsync output: ${out}`)
      return Number(m[1].replace(/,/g, ''))
    } finally {
      await rm(dest, { recursive: true, force: true })
    }
  }
  const rsyncBytes = await rsync(false)
  const rsyncZBytes = await rsync(true)
  const casyncBytes = await casync(oldPath, newPath, avg)
  return { zstdPatchBytes, rsyncBytes, rsyncZBytes, casyncBytes }
}

/** casync: make OLD's store, then NEW's; the bytes of chunk files NEW adds are what a casync update moves. */
async function casync (oldPath: string, newPath: string, avg: number): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), 'herald-bench-casync-'))
  try {
    const store = join(work, 'store')
    const sized = async (p: string): Promise<string> => {
      if ((await stat(p)).isDirectory()) return p
      const d = join(work, `in-${Math.random().toString(36).slice(2)}`)
      await mkdir(d)
      await cp(p, join(d, 'file'))
      return d
    }
    const run = (dir: string, out: string): void => {
      execFileSync('casync', ['make', `--store=${store}`, `--chunk-size=${avg}`, '--compression=zstd', '--without=privileged', out, dir], { stdio: ['ignore', 'ignore', 2] })
    }
    run(await sized(oldPath), join(work, 'old.caidx'))
    const before = await storeFiles(store)
    run(await sized(newPath), join(work, 'new.caidx'))
    const after = await storeFiles(store)
    let bytes = 0
    for (const [f, size] of after) if (!before.has(f)) bytes += size
    return bytes
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

async function storeFiles (dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const f of await files(dir)) out.set(f, (await stat(f)).size)
  return out
}

async function main (): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { avg: { type: 'string' }, 'no-delta': { type: 'boolean', default: false }, baselines: { type: 'boolean', default: false }, level: { type: 'string' }, group: { type: 'string' } } })
  if (positionals.length !== 2) {
    console.error('usage: npm run bench:delta -- OLD NEW [--avg BYTES] [--no-delta] [--level N] [--group N] [--baselines]')
    process.exit(2)
  }
  const avg = values.avg != null ? Number(values.avg) : DEFAULT_CHUNKER.avgSize
  const params: ChunkerParams = values.avg != null ? { ...DEFAULT_CHUNKER, avgSize: avg, minSize: avg / 4, maxSize: avg * 4 } : { ...DEFAULT_CHUNKER }
  const started = performance.now()
  const chunks = new Map<string, Uint8Array>()
  const old = await publish(positionals[0], params, chunks)
  const plain = await publish(positionals[1], params, new Map())
  const next = await publish(positionals[1], params, chunks)
  const pool = new DeltaPool()
  const deltaStarted = performance.now()
  const objects = new Map<string, Uint8Array>()
  const delta = values['no-delta']
    ? undefined
    : await encodeReleaseDeltas({
      target: next.manifest,
      bases: [old.manifest],
      pool,
      level: values.level != null ? Number(values.level) : undefined,
      group: values.group != null ? Number(values.group) : undefined,
      getChunk: async d => chunks.get(digestHex(d)),
      putObject: async (d, b) => { objects.set(digestHex(d), b) }
    })
  // publish also records every chunk's wire size (for `herald plan`)
  await computeWireSizes(next.manifest, pool, async d => chunks.get(digestHex(d)), delta?.compressed)
  const deltaSeconds = (performance.now() - deltaStarted) / 1000
  const wireStarted = performance.now()
  await computeWireSizes(plain.manifest, pool, async d => chunks.get(digestHex(d)))
  const plainSeconds = plain.seconds + (performance.now() - wireStarted) / 1000
  // compressed sizes of every chunk OLD lacks (what compressed transfer alone would move)
  const oldIndex = manifestChunkIndex(old.manifest)
  const nextIndex = manifestChunkIndex(next.manifest)
  let reusedChunks = 0
  let deltaBytes = 0
  const lacking: Uint8Array[] = []
  for (let i = 0; i < nextIndex.count; i++) {
    if (oldIndex.indexOf(nextIndex.digestAt(i)) !== -1) reusedChunks++
    else { deltaBytes += nextIndex.sizes[i]; lacking.push(chunks.get(digestHex(nextIndex.digestAt(i))) as Uint8Array) }
  }
  let compressedBytes = 0
  await Promise.all(Array.from({ length: pool.threads * 2 }, async () => {
    while (lacking.length > 0) {
      const data = lacking.pop() as Uint8Array
      const r = await pool.run({ op: 'compress', data })
      compressedBytes += r.compressedSize ?? data.byteLength
    }
  }))
  await pool.close()
  // the manifest moves as a delta against OLD's when that is under 80% of it (/herald/manifest/1.1.0)
  const manifestRaw = encodeManifest({ ...next.manifest, encodings: delta?.encodings ?? [] })
  const manifestDelta = encodeManifestDelta(manifestRaw, encodeManifest(old.manifest)).byteLength
  const manifestBytes = manifestDelta < manifestRaw.byteLength * 0.8 ? manifestDelta : manifestRaw.byteLength
  const newBytes = next.stats.bytes
  const publishSeconds = plain.seconds + deltaSeconds
  const result: Record<string, number | string> = {
    oldBytes: old.stats.bytes,
    newBytes,
    newChunks: nextIndex.count,
    reusedChunks,
    deltaBytes,
    compressedBytes,
    deltaChunks: delta?.stats.encoded ?? 0,
    deltaObjects: delta?.stats.objects ?? 0,
    deltaChunkBytes: delta?.stats.deltaBytes ?? 0,
    movedBytes: (delta?.stats.movedBytes ?? compressedBytes) + manifestBytes,
    manifestBytes,
    manifestRawBytes: manifestRaw.byteLength,
    publishSeconds: +publishSeconds.toFixed(3),
    publishMbPerSec: +(newBytes / 1e6 / publishSeconds).toFixed(1),
    publishPlainMbPerSec: +(newBytes / 1e6 / plainSeconds).toFixed(1),
    threads: pool.threads
  }
  if (values.baselines) {
    Object.assign(result, await baselines(positionals[0], positionals[1], avg))
    const moved = result.movedBytes as number
    result.movedVsPatch = +(moved / (result.zstdPatchBytes as number)).toFixed(3)
  }
  const seconds = (performance.now() - started) / 1000
  result.seconds = +seconds.toFixed(3)
  console.log(JSON.stringify(result))
}

main().catch(err => { console.error(err); process.exit(1) })
