// One suite for every implementation of the store's contract (store/interface.ts), run by
// compliance.spec.ts against the LevelDB store and the in-memory store.
import { expect } from 'chai'
import { CID } from 'multiformats/cid'
import { bitGet, popcount } from '../../protocol/bitmap.js'
import { sha256 } from '../../protocol/cid.js'
import { compressChunk } from '../../protocol/encoding/compression.js'
import { prng } from '../fixtures/release-gen.js'
import type { HeraldStore } from '../../store/interface.js'

export interface StoreFactory {
  /** a fresh, empty store */
  open: () => Promise<HeraldStore>
  /** close and open the same store again (durable implementations only) */
  reopen?: (store: HeraldStore) => Promise<HeraldStore>
  /** remove what `open` made */
  cleanup: () => Promise<void>
}

const cidA = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')
const cidB = CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')

export function chunk (n: number): { d: Uint8Array, b: Uint8Array } {
  const b = new TextEncoder().encode(`chunk number ${n} `.repeat(20 + n % 7))
  return { d: sha256(b), b }
}

export function pack (ds: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(ds.length * 32)
  ds.forEach((d, i) => out.set(d, i * 32))
  return out
}

function same (a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && Buffer.from(a).equals(Buffer.from(b))
}

async function code (p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err: any) {
    return err.code ?? err.name
  }
  return undefined
}

export function storeCompliance (name: string, factory: StoreFactory): void {
  describe(`store contract: ${name}`, function () {
    this.timeout(30_000)
    let store: HeraldStore
    beforeEach(async () => { store = await factory.open() })
    afterEach(async () => {
      await store.close()
      await factory.cleanup()
    })

    it('should put, get, has and drop chunks, verifying each against its digest', async () => {
      const a = chunk(1)
      const b = chunk(2)
      expect(await store.putChunk(a.d, a.b)).to.equal(true)
      expect(await store.putChunk(a.d, a.b), 'second put').to.equal(false)
      expect(await code(store.putChunk(b.d, a.b))).to.equal('HASH_MISMATCH')
      expect(await store.hasChunk(b.d), 'refused bytes are not stored').to.equal(false)
      expect(same(await store.getChunk(a.d), a.b)).to.equal(true)
      expect(await store.getChunk(b.d)).to.equal(undefined)
      const stored = await store.getStored(a.d)
      expect(stored?.encoding).to.equal('raw')
      expect(stored?.rawSize).to.equal(a.b.byteLength)
      expect(await store.chunkSize(a.d)).to.equal(a.b.byteLength)
      expect(await store.storedSize(a.d)).to.equal(a.b.byteLength)
      await store.putChunk(b.d, b.b)
      const bitmap = await store.hasChunks(pack([chunk(3).d, b.d, a.d]))
      expect([...bitmap]).to.deep.equal([0x60])
      expect((await store.stats()).chunks).to.equal(2)
      expect(await store.dropChunk(a.d)).to.equal(true)
      expect(await store.dropChunk(a.d), 'second drop').to.equal(false)
      expect(await store.hasChunk(a.d)).to.equal(false)
      expect(await store.getChunk(a.d)).to.equal(undefined)
      const stats = await store.stats()
      expect(stats.chunks).to.equal(1)
      expect(stats.bytes).to.equal(b.b.byteLength)
      // a dropped chunk can be stored again
      expect(await store.putChunk(a.d, a.b)).to.equal(true)
    })

    it('should keep a chunk as its zstd frame and read back the exact bytes', async () => {
      const a = chunk(5)
      const frame = compressChunk(a.b)!
      expect(frame).to.not.equal(undefined)
      await store.putChunk(a.d, a.b, frame)
      const stored = await store.getStored(a.d)
      expect(stored?.encoding).to.equal('zstd')
      expect(same(stored?.data, frame)).to.equal(true)
      expect(await store.storedSize(a.d)).to.equal(frame.byteLength)
      expect(await store.chunkSize(a.d)).to.equal(a.b.byteLength)
      expect(same(await store.getChunk(a.d), a.b)).to.equal(true)
    })

    it('should keep refcounts equal to a model over random pin/unpin sequences, and gc exactly the unreferenced', async () => {
      const chunks = Array.from({ length: 30 }, (_, i) => chunk(i))
      for (const c of chunks) await store.putChunk(c.d, c.b)
      const rand = prng(11)
      const releases = Array.from({ length: 5 }, () => chunks.filter(() => rand() < 0.4).map(c => c.d))
      const pinned = new Set<number>()
      for (let step = 0; step < 40; step++) {
        const r = Math.floor(rand() * releases.length)
        // a release listing a chunk twice references it once
        if (rand() < 0.5) { await store.pin('ds', `v${r}`, pack([...releases[r], ...releases[r].slice(0, 2)])); pinned.add(r) } else { await store.unpin('ds', `v${r}`); pinned.delete(r) }
      }
      for (const c of chunks) {
        const model = [...pinned].filter(p => releases[p].some(d => Buffer.from(d).equals(Buffer.from(c.d)))).length
        expect(await store.refcount(c.d)).to.equal(model)
      }
      for (let r = 0; r < releases.length; r++) expect(await store.isPinned('ds', `v${r}`)).to.equal(pinned.has(r))
      expect((await store.listPins()).map(p => p.version).sort()).to.deep.equal([...pinned].map(r => `v${r}`).sort())
      const referenced = new Set([...pinned].flatMap(p => releases[p].map(d => Buffer.from(d).toString('hex'))))
      const result = await store.gc()
      expect(result.chunksFreed).to.equal(chunks.length - referenced.size)
      for (const c of chunks) {
        const kept = referenced.has(Buffer.from(c.d).toString('hex'))
        expect(await store.hasChunk(c.d)).to.equal(kept)
        if (kept) expect(same(await store.getChunk(c.d), c.b)).to.equal(true)
      }
      expect((await store.stats()).chunks).to.equal(referenced.size)
      expect(await store.unpin('ds', 'never-pinned')).to.equal(false)
    })

    it('should hold gc back while a GC lease is held, and collect after it ends', async () => {
      const keep = chunk(40)
      const loose = chunk(41)
      const order: string[] = []
      let gc: Promise<unknown> | undefined
      await store.withGcLease(async () => {
        await store.putChunk(keep.d, keep.b)
        await store.putChunk(loose.d, loose.b)
        gc = store.gc().then(r => { order.push('gc'); return r })
        // gc is waiting on this lease: the chunks stored under it stay, and the store still works
        expect(await store.hasChunk(loose.d)).to.equal(true)
        expect(same(await store.getChunk(keep.d), keep.b)).to.equal(true)
        await store.pin('x', '1', pack([keep.d]))
        order.push('lease')
      })
      const result = await gc as { chunksFreed: number }
      expect(order).to.deep.equal(['lease', 'gc'])
      expect(result.chunksFreed).to.equal(1)
      expect(await store.hasChunk(keep.d)).to.equal(true)
      expect(await store.hasChunk(loose.d)).to.equal(false)
    })

    it('should keep manifests, release records (refusing replays), current pointers, progress and features', async () => {
      await store.putManifest(cidA, new Uint8Array([1, 2, 3]))
      await store.putManifest(cidA, new Uint8Array([9]))
      expect([...(await store.getManifest(cidA))!]).to.deep.equal([1, 2, 3])
      expect(await store.getManifest(cidB)).to.equal(undefined)
      await store.putRelease({ dataset: 'u', version: 'v', seq: 5, manifestCid: cidA, publishedAt: 1 }, new Uint8Array([5]))
      expect(await code(store.putRelease({ dataset: 'u', version: 'v', seq: 4, manifestCid: cidB, publishedAt: 2 }, new Uint8Array([4])))).to.equal('RELEASE_REPLAY')
      expect([...(await store.getRelease('u', 'v'))!]).to.deep.equal([5])
      await store.putRelease({ dataset: 'u', version: 'v', seq: 6, manifestCid: cidB, publishedAt: 3 }, new Uint8Array([6]))
      await store.putRelease({ dataset: 'a', version: '1', seq: 1, manifestCid: cidA, publishedAt: 4 }, new Uint8Array([1]))
      expect(await store.listReleases()).to.deep.equal([
        { dataset: 'a', version: '1', seq: 1, manifestCid: cidA.toString(), publishedAt: 4 },
        { dataset: 'u', version: 'v', seq: 6, manifestCid: cidB.toString(), publishedAt: 3 }
      ])
      expect(await store.getRelease('u', 'w')).to.equal(undefined)
      const stats = await store.stats()
      expect([stats.manifests, stats.releases]).to.deep.equal([1, 2])
      expect(await store.getCurrent('u')).to.equal(undefined)
      await store.setCurrent('u', 'v')
      expect(await store.getCurrent('u')).to.equal('v')
      await store.putProgress('fetches', '{"a":1}')
      expect(new TextDecoder().decode(await store.getProgress('fetches'))).to.equal('{"a":1}')
      await store.deleteProgress('fetches')
      expect(await store.getProgress('fetches')).to.equal(undefined)
      const a = chunk(7)
      await store.putFeatures(a.d, new Uint32Array([1, 2, 0xFFFFFFFF]))
      expect([...(await store.getFeatures(a.d))!]).to.deep.equal([1, 2, 0xFFFFFFFF])
      expect(await store.getFeatures(chunk(8).d)).to.equal(undefined)
    })

    it('should keep a tracked have-bitmap equal to the chunks held through puts, drops and gc', async () => {
      const chunks = Array.from({ length: 20 }, (_, i) => chunk(100 + i))
      for (const c of chunks.slice(0, 5)) await store.putChunk(c.d, c.b)
      // 18 chunks (one listed twice: two positions, one digest), then 2 delta objects (optional)
      const entries = [...chunks.slice(0, 17).map(c => c.d), chunks[3].d, chunks[18].d, chunks[19].d]
      let state = await store.trackHave(cidA, pack(entries), 18)
      expect(state).to.include({ manifestCid: cidA.toString(), entries: 20, required: 18, held: 6, heldRequired: 6, complete: false, tracked: 20 })
      const check = async (): Promise<void> => {
        const got = (await store.getHave(cidA))!
        const truth = await store.hasChunks(pack(entries))
        for (let i = 0; i < entries.length; i++) expect(bitGet(got.bitmap, i), `entry ${i}`).to.equal(bitGet(truth, i))
        expect(got.state.held).to.equal(popcount(truth, entries.length))
        expect(got.state.heldRequired).to.equal(popcount(truth, 18))
      }
      await check()
      expect(await store.trackHave(cidA, pack(entries), 18), 'tracking again').to.deep.equal(state)
      await Promise.all(chunks.slice(5, 17).map(async c => await store.putChunk(c.d, c.b)))
      await check()
      state = (await store.getHave(cidA))!.state
      expect(state.complete, 'every chunk held, no delta object').to.equal(true)
      expect(state.held).to.equal(18)
      await store.putChunk(chunks[19].d, chunks[19].b)
      await check()
      await store.dropChunk(chunks[3].d)
      await check()
      expect((await store.getHave(cidA))!.state).to.include({ held: 17, heldRequired: 16, complete: false })
      // gc takes everything unpinned: the bitmap follows
      await store.pin('d', '1', pack(chunks.slice(0, 10).map(c => c.d)))
      await store.gc()
      await check()
      expect((await store.getHave(cidA))!.state.held).to.equal(9)
      expect((await store.listHave()).map(s => s.manifestCid)).to.deep.equal([cidA.toString()])
      expect(await code(store.trackHave(cidA, pack(entries), 17))).to.equal('RangeError')
      expect(await code(store.trackHave(cidB, new Uint8Array(33), 0))).to.equal('RangeError')
      expect(await store.untrackHave(cidA, pack(entries))).to.equal(true)
      expect(await store.untrackHave(cidA, pack(entries))).to.equal(false)
      expect(await store.getHave(cidA)).to.equal(undefined)
      expect(await store.listHave()).to.deep.equal([])
      // untracked: stores no longer touch it, and tracking afresh reads the index again
      await store.putChunk(chunks[3].d, chunks[3].b)
      expect((await store.trackHave(cidA, pack(entries), 18)).held).to.equal(11)
    })

    it('should keep two manifests sharing chunks apart', async () => {
      const chunks = Array.from({ length: 6 }, (_, i) => chunk(200 + i))
      await store.trackHave(cidA, pack(chunks.slice(0, 4).map(c => c.d)), 4)
      await store.trackHave(cidB, pack(chunks.slice(2, 6).map(c => c.d)), 4)
      for (const c of chunks.slice(2, 4)) await store.putChunk(c.d, c.b)
      expect([...(await store.getHave(cidA))!.bitmap]).to.deep.equal([0x30])
      expect([...(await store.getHave(cidB))!.bitmap]).to.deep.equal([0xC0])
      await store.untrackHave(cidA, pack(chunks.slice(0, 4).map(c => c.d)))
      await store.dropChunk(chunks[2].d)
      expect([...(await store.getHave(cidB))!.bitmap]).to.deep.equal([0x40])
      expect((await store.getHave(cidB))!.state.held).to.equal(1)
    })

    it('should refuse every call once closed, with STORE_CLOSED', async () => {
      await store.close()
      expect(await code(store.putChunk(chunk(1).d, chunk(1).b))).to.equal('STORE_CLOSED')
      expect(await code(store.getChunk(chunk(1).d))).to.equal('STORE_CLOSED')
      expect(await code(store.listReleases())).to.equal('STORE_CLOSED')
      expect(await code(store.withGcLease(async () => {}))).to.equal('STORE_CLOSED')
      expect(await code(store.getHave(cidA))).to.equal('STORE_CLOSED')
    })

    if (factory.reopen != null) {
      const reopen = factory.reopen
      it('should keep chunks, records, pins and have-bitmaps across a reopen', async () => {
        const chunks = Array.from({ length: 12 }, (_, i) => chunk(300 + i))
        for (const c of chunks.slice(0, 8)) await store.putChunk(c.d, c.b, c.b.byteLength > 400 ? compressChunk(c.b) : undefined)
        await store.putManifest(cidA, new Uint8Array([7]))
        await store.putRelease({ dataset: 'u', version: 'v', seq: 2, manifestCid: cidA, publishedAt: 1 }, new Uint8Array([2]))
        await store.pin('u', 'v', pack(chunks.slice(0, 4).map(c => c.d)))
        await store.setCurrent('u', 'v')
        await store.putProgress('p', 'x')
        await store.trackHave(cidA, pack(chunks.map(c => c.d)), 12)
        store = await reopen(store)
        for (const c of chunks.slice(0, 8)) expect(same(await store.getChunk(c.d), c.b)).to.equal(true)
        expect([...(await store.getManifest(cidA))!]).to.deep.equal([7])
        expect(await code(store.putRelease({ dataset: 'u', version: 'v', seq: 1, manifestCid: cidA, publishedAt: 1 }, new Uint8Array([1])))).to.equal('RELEASE_REPLAY')
        expect(await store.refcount(chunks[0].d)).to.equal(1)
        expect(await store.getCurrent('u')).to.equal('v')
        expect(new TextDecoder().decode(await store.getProgress('p'))).to.equal('x')
        expect(await store.stats()).to.include({ chunks: 8, manifests: 1, releases: 1, pins: 1 })
        const have = (await store.getHave(cidA))!
        expect([...have.bitmap]).to.deep.equal([0xFF, 0x00])
        expect(have.state).to.include({ held: 8, complete: false })
        // kept current after the reopen too
        await store.putChunk(chunks[11].d, chunks[11].b)
        expect([...(await store.getHave(cidA))!.bitmap]).to.deep.equal([0xFF, 0x10])
        expect((await store.gc()).chunksFreed).to.equal(5)
        expect([...(await store.getHave(cidA))!.bitmap]).to.deep.equal([0xF0, 0x00])
      })
    }
  })
}
