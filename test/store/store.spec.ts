import { expect } from 'chai'
import { mkdtemp, readFile, readlink, readdir, rm, writeFile, mkdir } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { Level } from 'level'
import { DEFAULT_CHUNKER } from '../../protocol/chunker.js'
import { sha256 } from '../../protocol/cid.js'
import { buildRelease } from '../../protocol/ingest.js'
import { manifestChunkIndex, type Manifest } from '../../protocol/manifest.js'
import { importDirectory } from '../../store/import.js'
import { materialize, StagedRelease, switchCurrent, verifyMaterialized } from '../../store/materialize.js'
import { SCHEMA_VERSION, Store } from '../../store/store.js'
import { compressChunk } from '../../protocol/encoding/compression.js'
import { prng } from '../fixtures/release-gen.js'

const cid = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')

function chunk (n: number): { d: Uint8Array, b: Uint8Array } {
  const b = new TextEncoder().encode(`chunk number ${n} `.repeat(20 + n % 7))
  return { d: sha256(b), b }
}

function pack (ds: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(ds.length * 32)
  ds.forEach((d, i) => out.set(d, i * 32))
  return out
}

describe('store', () => {
  let dir: string
  let store: Store | undefined
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-store-')) })
  afterEach(async () => {
    await store?.close()
    store = undefined
    await rm(dir, { recursive: true, force: true })
  })

  it('should store verified chunks, refuse bad bytes, and persist across reopen', async () => {
    store = await Store.open(dir)
    const { d, b } = chunk(1)
    expect(await store.putChunk(d, b)).to.equal(true)
    expect(await store.putChunk(d, b)).to.equal(false)
    try {
      await store.putChunk(chunk(2).d, b)
      expect.fail('stored bytes under the wrong digest')
    } catch (err: any) { expect(err.code).to.equal('HASH_MISMATCH') }
    expect(await store.hasChunk(chunk(2).d)).to.equal(false)
    await store.close()
    store = await Store.open(dir)
    expect(Buffer.from((await store.getChunk(d))!).equals(Buffer.from(b))).to.equal(true)
    const bitmap = await store.hasChunks(pack([chunk(2).d, d]))
    expect(bitmap[0]).to.equal(0x40)
    expect((await store.stats()).chunks).to.equal(1)
  })

  it('should keep a chunk as its zstd frame, serve the frame as stored and read back the exact bytes', async () => {
    store = await Store.open(dir)
    const b = new TextEncoder().encode('>sp|P12345|TEST_HUMAN OS=Homo sapiens\nMKTAYIAKQRQISFVKSHFSRQ\n'.repeat(4000))
    const d = sha256(b)
    const frame = compressChunk(b)!
    expect(await store.putChunk(d, b, frame)).to.equal(true)
    await store.close()
    store = await Store.open(dir)
    const stored = await store.getStored(d)
    expect(stored?.encoding).to.equal('zstd')
    expect(stored?.rawSize).to.equal(b.byteLength)
    expect(Buffer.from(stored!.data).equals(Buffer.from(frame))).to.equal(true)
    expect(Buffer.from((await store.getChunk(d))!).equals(Buffer.from(b))).to.equal(true)
    expect(await store.chunkSize(d)).to.equal(b.byteLength)
    expect(await store.storedSize(d)).to.equal(frame.byteLength)
    const stats = await store.stats()
    expect(stats.bytes).to.equal(b.byteLength)
    expect(stats.diskBytes).to.equal(frame.byteLength)
  })

  it('should refuse a stored frame that no longer decompresses, with STORE_CORRUPT', async () => {
    store = await Store.open(dir)
    const b = new TextEncoder().encode('ACGT'.repeat(50_000))
    const d = sha256(b)
    const frame = compressChunk(b)!
    await store.putChunk(d, b, frame)
    await store.close()
    store = undefined
    // flip bytes in the middle of the frame, on disk
    const packs = join(dir, 'packs')
    const name = (await readdir(packs))[0]
    const bytes = await readFile(join(packs, name))
    bytes.fill(0xee, 8, bytes.byteLength - 8)
    await writeFile(join(packs, name), bytes)
    store = await Store.open(dir)
    try {
      await store.getChunk(d)
      expect.fail('read a corrupt frame')
    } catch (err: any) { expect(err.code).to.equal('STORE_CORRUPT') }
  })

  it('should upgrade a schema-1 store in place (its raw entries stay readable)', async () => {
    store = await Store.open(dir)
    const { d, b } = chunk(4)
    await store.putChunk(d, b)
    await store.close()
    store = undefined
    const db = new Level<string, string>(join(dir, 'index'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    await db.put('meta/schema', '1')
    await db.close()
    store = await Store.open(dir)
    expect(Buffer.from((await store.getChunk(d))!).equals(Buffer.from(b))).to.equal(true)
    await store.close()
    store = undefined
    const check = new Level<string, string>(join(dir, 'index'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    expect(await check.get('meta/schema')).to.equal(String(SCHEMA_VERSION))
    await check.close()
  })

  it('should say another daemon holds the directory, and refuse a newer schema', async () => {
    store = await Store.open(dir)
    try {
      await Store.open(dir)
      expect.fail('opened twice')
    } catch (err: any) {
      expect(err.code).to.equal('STORE_LOCKED')
      expect(err.message).to.match(/another heraldd/)
    }
    await store.close()
    store = undefined
    const db = new Level<string, string>(join(dir, 'index'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    await db.put('meta/schema', '99')
    await db.close()
    try {
      await Store.open(dir)
      expect.fail('opened')
    } catch (err: any) { expect(err.code).to.equal('SCHEMA_VERSION') }
  })

  it('should cut an unindexed pack tail at open (crash between append and index)', async () => {
    store = await Store.open(dir)
    const { d, b } = chunk(3)
    await store.putChunk(d, b)
    await store.close()
    store = undefined
    const packs = (await readdir(join(dir, 'packs'))).filter(n => n.endsWith('.dat'))
    const path = join(dir, 'packs', packs[0])
    const before = (await readFile(path)).byteLength
    await writeFile(path, Buffer.concat([await readFile(path), Buffer.from('torn write')]))
    store = await Store.open(dir)
    expect((await readFile(path)).byteLength).to.equal(before)
    expect(Buffer.from((await store.getChunk(d))!).equals(Buffer.from(b))).to.equal(true)
  })

  it('should refuse a replayed release record', async () => {
    store = await Store.open(dir)
    await store.putRelease({ dataset: 'u', version: 'v', seq: 5, manifestCid: cid, publishedAt: 1 }, new Uint8Array([5]))
    try {
      await store.putRelease({ dataset: 'u', version: 'v', seq: 4, manifestCid: cid, publishedAt: 1 }, new Uint8Array([4]))
      expect.fail('accepted')
    } catch (err: any) { expect(err.code).to.equal('RELEASE_REPLAY') }
    expect([...(await store.getRelease('u', 'v'))!]).to.deep.equal([5])
    expect(await store.listReleases()).to.have.length(1)
  })

  it('should keep refcounts equal to a model over random pin/unpin sequences, and gc exactly the unreferenced', async function () {
    this.timeout(30_000)
    store = await Store.open(dir)
    const chunks = Array.from({ length: 40 }, (_, i) => chunk(i))
    for (const c of chunks) await store.putChunk(c.d, c.b)
    const rand = prng(7)
    const releases = Array.from({ length: 6 }, () => chunks.filter(() => rand() < 0.4).map(c => c.d))
    const pinned = new Set<number>()
    for (let step = 0; step < 60; step++) {
      const r = Math.floor(rand() * releases.length)
      if (rand() < 0.5) { await store.pin('ds', `v${r}`, pack([...releases[r], ...releases[r].slice(0, 2)])); pinned.add(r) } else { await store.unpin('ds', `v${r}`); pinned.delete(r) }
      if (step % 10 === 0) {
        for (const c of chunks.slice(0, 10)) {
          const model = [...pinned].filter(p => releases[p].some(d => Buffer.from(d).equals(Buffer.from(c.d)))).length
          expect(await store.refcount(c.d)).to.equal(model)
        }
      }
    }
    const referenced = new Set([...pinned].flatMap(p => releases[p].map(d => Buffer.from(d).toString('hex'))))
    const r = await store.gc()
    expect(r.chunksFreed).to.equal(chunks.length - referenced.size)
    for (const c of chunks) expect(await store.hasChunk(c.d)).to.equal(referenced.has(Buffer.from(c.d).toString('hex')))
    for (const c of chunks) if (referenced.has(Buffer.from(c.d).toString('hex'))) expect(Buffer.from((await store.getChunk(c.d))!).equals(Buffer.from(c.b))).to.equal(true)
  })

  it('should not collect chunks of a fetch in progress, and rewrite mostly-dead packs', async () => {
    store = await Store.open(dir, { packMaxBytes: 4096 })
    const keep = chunk(100)
    const order: string[] = []
    let release!: () => void
    const fetching = store.withGcLease(async () => {
      // kept compressed: a pack rewrite must carry the encoding over
      await store!.putChunk(keep.d, keep.b, compressChunk(keep.b))
      await new Promise<void>(resolve => { release = resolve })
      // a fetch pins what it fetched before it lets go of the lease
      await store!.pin('x', '1', pack([keep.d]))
      order.push('fetch')
    })
    await new Promise(resolve => setTimeout(resolve, 20))
    const gc = store.gc().then(r => { order.push('gc'); return r })
    await new Promise(resolve => setTimeout(resolve, 50))
    release()
    await fetching
    await gc
    expect(order).to.deep.equal(['fetch', 'gc'])
    // many dead chunks spread over packs: gc reclaims the disk and keeps the live one readable
    for (let i = 0; i < 60; i++) await store.putChunk(chunk(i).d, chunk(i).b)
    const before = (await store.stats()).diskBytes
    await store.gc()
    const after = await store.stats()
    expect(after.diskBytes).to.be.below(before)
    expect(after.chunks).to.equal(1)
    expect(Buffer.from((await store.getChunk(keep.d))!).equals(Buffer.from(keep.b))).to.equal(true)
    expect((await store.getStored(keep.d))?.encoding).to.equal('zstd')
  })

  describe('materialize', () => {
    async function release (src: string, version: string, text: string): Promise<Manifest> {
      await mkdir(join(src, 'sub'), { recursive: true })
      await writeFile(join(src, 'sub', 'data.txt'), text)
      await writeFile(join(src, 'top.txt'), version)
      const built = await buildRelease(src, { dataset: 'ds', version, onChunk: async (d, b) => { await store!.putChunk(d, b) } })
      await store!.pin('ds', version, manifestChunkIndex(built.manifest).digests)
      return built.manifest
    }

    it('should write identical files, switch current atomically, and roll back', async () => {
      store = await Store.open(join(dir, 'store'))
      const root = join(dir, 'releases')
      const m1 = await release(join(dir, 's1'), 'v1', 'first '.repeat(1000))
      const m2 = await release(join(dir, 's2'), 'v2', 'second '.repeat(1000))
      const p1 = await materialize(store, m1, { root })
      expect(await readFile(join(p1, 'sub', 'data.txt'), 'utf8')).to.equal('first '.repeat(1000))
      await materialize(store, m2, { root })
      expect(await readlink(join(root, 'ds', 'current'))).to.equal('v2')
      expect(await readFile(join(root, 'ds', 'current', 'top.txt'), 'utf8')).to.equal('v2')
      expect(await store.getCurrent('ds')).to.equal('v2')
      await switchCurrent(root, 'ds', 'v1')
      expect(await readFile(join(root, 'ds', 'current', 'top.txt'), 'utf8')).to.equal('v1')
      expect((await verifyMaterialized(store, m2, root)).badFiles).to.deep.equal([])
      await writeFile(join(root, 'ds', 'v2', 'top.txt'), 'tampered')
      expect((await verifyMaterialized(store, m2, root)).badFiles).to.deep.equal(['top.txt'])
    })

    it('should take chunks written while fetching, in any order, and fill in the rest from the store', async () => {
      store = await Store.open(join(dir, 'store'))
      const root = join(dir, 'releases')
      // a chunk that occurs twice, several chunks per file
      const block = randomBytes(300_000)
      const text = Buffer.concat([block, randomBytes(500_000), block]).toString('base64')
      const m = await release(join(dir, 's1'), 'v1', text)
      const chunks = m.files.flatMap(f => Array.from({ length: f.chunkSizes.length }, (_, i) => f.chunks.subarray(i * 32, i * 32 + 32)))
      expect(chunks.length).to.be.greaterThan(3)
      const staged = await StagedRelease.open(store, m, { root })
      // not visible while staged
      expect((await readdir(join(root, 'ds'))).filter(n => !n.startsWith('.'))).to.deep.equal([])
      // half the chunks "arrive", last first; the others come from the store at finish
      for (const d of chunks.slice(0, Math.ceil(chunks.length / 2)).reverse()) staged.write(d, (await store.getChunk(d))!)
      const path = await staged.finish()
      expect(await readFile(join(path, 'sub', 'data.txt'), 'utf8')).to.equal(text)
      expect(await readFile(join(path, 'top.txt'), 'utf8')).to.equal('v1')
      expect((await verifyMaterialized(store, m, root)).badFiles).to.deep.equal([])
      expect((await readdir(join(root, 'ds'))).filter(n => n.startsWith('.staging-'))).to.deep.equal([])
    })

    it('should leave nothing behind when a staged release is aborted', async () => {
      store = await Store.open(join(dir, 'store'))
      const root = join(dir, 'releases')
      const m = await release(join(dir, 's1'), 'v1', 'abc '.repeat(1000))
      const staged = await StagedRelease.open(store, m, { root })
      const d = m.files[0].chunks.subarray(0, 32)
      staged.write(d, (await store.getChunk(d))!)
      await staged.abort()
      expect(await readdir(join(root, 'ds'))).to.deep.equal([])
    })

    it('should leave nothing visible and keep current when a chunk is missing', async () => {
      store = await Store.open(join(dir, 'store'))
      const root = join(dir, 'releases')
      const m1 = await release(join(dir, 's1'), 'v1', 'one')
      await materialize(store, m1, { root })
      const m2 = await release(join(dir, 's2'), 'v2', 'two '.repeat(100))
      await store.unpin('ds', 'v2')
      await store.gc()
      try {
        await materialize(store, m2, { root })
        expect.fail('materialized without its chunks')
      } catch (err: any) { expect(err.code).to.equal('NOT_FOUND') }
      expect((await readdir(join(root, 'ds'))).filter(n => !n.startsWith('.v'))).to.deep.equal(['current', 'v1'])
      expect(await readlink(join(root, 'ds', 'current'))).to.equal('v1')
    })

    it('should refuse a manifest whose names escape the root', async () => {
      store = await Store.open(join(dir, 'store'))
      const evil = { format: 1, dataset: '..', version: 'x', chunker: { ...DEFAULT_CHUNKER }, files: [], encodings: [], createdAt: 0 } as Manifest
      try {
        await materialize(store, evil, { root: join(dir, 'releases') })
        expect.fail('accepted')
      } catch (err: any) { expect(err.code).to.equal('PATH_ESCAPE') }
    })
  })

  it('should import existing files so that only the delta remains', async () => {
    store = await Store.open(join(dir, 'store'))
    const old = join(dir, 'old')
    await mkdir(old)
    const r = prng(3)
    const body = Buffer.from(Array.from({ length: 3_000_000 }, () => Math.floor(r() * 256)))
    await writeFile(join(old, 'db.bin'), body)
    const imported = await importDirectory(store, old)
    expect(imported.newChunks).to.equal(imported.chunks)
    const next = join(dir, 'next')
    await mkdir(next)
    await writeFile(join(next, 'db.bin'), Buffer.concat([body, Buffer.from('appended tail')]))
    let fresh = 0
    const built = await buildRelease(next, { dataset: 'ds', version: 'v2', onChunk: async (d, b) => { if (await store!.putChunk(d, b)) fresh++ } })
    expect(fresh).to.be.at.most(2)
    expect(manifestChunkIndex(built.manifest).count).to.be.greaterThan(fresh)
  })
})
