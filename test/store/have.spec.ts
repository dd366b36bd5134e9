// Persisted have-bitmaps against the real store: what start-up reads (counted, not timed), and that no
// crash or repair leaves a bitmap claiming a chunk the index lacks.
import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, stat, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { bitGet, popcount } from '../../protocol/bitmap.js'
import { SEGMENT_BITS } from '../../store/have.js'
import { packName } from '../../store/packs.js'
import { Store } from '../../store/store.js'
import { prng } from '../fixtures/release-gen.js'
import { powerCut, randomChunk } from '../helpers/power-cut.js'
import { pack } from './compliance.js'

async function cidOf (n: number): Promise<CID> {
  return CID.createV1(raw.code, await sha256Hasher.digest(new TextEncoder().encode(`manifest ${n}`)))
}

/** The bitmap equals the index, entry for entry, and its state counts it. */
async function expectMatchesIndex (store: Store, cid: CID, entries: Uint8Array, required: number): Promise<void> {
  const n = entries.byteLength / 32
  const have = (await store.getHave(cid))!
  const truth = await store.hasChunks(entries)
  for (let i = 0; i < n; i++) {
    if (bitGet(have.bitmap, i) !== bitGet(truth, i)) expect.fail(`entry ${i}: bitmap says ${bitGet(have.bitmap, i)}, the index ${bitGet(truth, i)}`)
  }
  expect(have.state.held).to.equal(popcount(truth, n))
  expect(have.state.heldRequired).to.equal(popcount(truth, required))
}

describe('store have-bitmaps', function () {
  this.timeout(120_000)
  let dir: string
  const open: Store[] = []
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-have-')) })
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('should start up reading one record per release and its bitmap segments, not the index per chunk', async () => {
    const path = join(dir, 's')
    let store = await Store.open(path)
    const rand = prng(5)
    const chunks = Array.from({ length: 400 }, () => randomChunk(rand, 200))
    for (const c of chunks) await store.putChunk(c.d, c.b)
    // three releases of 20,000 entries each: the stored chunks among entries nobody holds
    const N = 20_000
    const manifests: Array<{ cid: CID, entries: Uint8Array }> = []
    for (let m = 0; m < 3; m++) {
      const entries = randomBytes(N * 32)
      chunks.forEach((c, i) => entries.set(c.d, ((i * 37 + m * 1000) % N) * 32))
      manifests.push({ cid: await cidOf(m), entries })
      await store.trackHave(manifests[m].cid, entries, N - 10)
    }
    await store.close()
    store = await Store.open(path)
    open.push(store)
    const atOpen = store.reads
    const states = await store.listHave()
    const bitmaps = []
    for (const m of manifests) bitmaps.push((await store.getHave(m.cid))!)
    const segments = 3 * Math.ceil(N / SEGMENT_BITS)
    // open: schema, stats, the pack ends, the have counter and one state per release; then the segments
    expect(atOpen, 'index keys read by open').to.be.at.most(10)
    expect(store.reads, 'index keys read to list and load the bitmaps').to.equal(atOpen + segments)
    expect(states.map(s => s.held)).to.deep.equal([400, 400, 400])
    expect(states.every(s => !s.complete)).to.equal(true)
    expect(bitmaps.map(b => popcount(b.bitmap, N))).to.deep.equal([400, 400, 400])
    // what it replaces: the index once per entry
    const before = store.reads
    await store.hasChunks(manifests[0].entries)
    expect(store.reads - before).to.equal(N)
    for (const m of manifests) await expectMatchesIndex(store, m.cid, m.entries, N - 10)
  })

  it('should leave bitmaps equal to the index after a power cut during writes', async () => {
    for (let trial = 0; trial < 2; trial++) {
      const store = await Store.open(join(dir, `s${trial}`), { packMaxBytes: 128 * 1024 })
      open.push(store)
      const rand = prng(200 + trial)
      const chunks = Array.from({ length: 200 }, () => randomChunk(rand, 1024 + Math.floor(rand() * 4000)))
      const cid = await cidOf(trial)
      const entries = pack(chunks.map(c => c.d))
      await store.trackHave(cid, entries, 180)
      let done = 0
      const cutAfter = 20 + Math.floor(rand() * 150)
      await new Promise<void>((resolve, reject) => {
        const writes = chunks.map(async c => {
          await store.putChunk(c.d, c.b)
          if (++done === cutAfter) powerCut(store, join(dir, `cut${trial}`)).then(resolve, reject)
        })
        void Promise.all(writes)
      })
      const copy = await Store.open(join(dir, `cut${trial}`), { packMaxBytes: 128 * 1024 })
      open.push(copy)
      expect((await copy.getHave(cid))!.state.held).to.be.at.least(cutAfter)
      await expectMatchesIndex(copy, cid, entries, 180)
    }
  })

  it('should clear the bits of chunks dropped by recovery of a short pack', async () => {
    const path = join(dir, 's')
    let store = await Store.open(path)
    const rand = prng(9)
    const chunks = Array.from({ length: 60 }, () => randomChunk(rand, 3000 + Math.floor(rand() * 3000)))
    const cid = await cidOf(1)
    const entries = pack(chunks.map(c => c.d))
    await store.trackHave(cid, entries, 60)
    for (const c of chunks) await store.putChunk(c.d, c.b)
    expect((await store.getHave(cid))!.state.complete).to.equal(true)
    await store.close()
    const file = join(path, 'packs', packName(1))
    await truncate(file, Math.floor((await stat(file)).size * 0.5))
    store = await Store.open(path)
    open.push(store)
    expect(store.recovery.droppedChunks).to.be.greaterThan(0)
    const have = (await store.getHave(cid))!
    expect(have.state.held).to.equal(60 - store.recovery.droppedChunks)
    expect(have.state.complete).to.equal(false)
    await expectMatchesIndex(store, cid, entries, 60)
  })

  it('should track across bitmap segments, with chunks stored while tracking, and resume after a cut mid-tracking', async () => {
    const path = join(dir, 's')
    const store = await Store.open(path)
    open.push(store)
    const rand = prng(13)
    const N = SEGMENT_BITS * 12 + 123
    const chunks = Array.from({ length: 300 }, () => randomChunk(rand, 100))
    const entries = randomBytes(N * 32)
    chunks.forEach((c, i) => entries.set(c.d, ((i * 4099) % N) * 32))
    for (const c of chunks.slice(0, 100)) await store.putChunk(c.d, c.b)
    const cid = await cidOf(2)
    const tracking = store.trackHave(cid, entries, N)
    // once the first slices are tracked: store more chunks meanwhile, and take what a power cut would leave
    let state = (await store.listHave())[0]
    for (let spins = 0; spins < 100_000 && (state === undefined || state.tracked === 0); spins++) {
      await new Promise(resolve => setImmediate(resolve))
      state = (await store.listHave())[0]
    }
    expect(state?.tracked, 'caught tracking in progress').to.be.within(1, N - 1)
    const stored = Promise.all(chunks.slice(100).map(async c => await store.putChunk(c.d, c.b)))
    await powerCut(store, join(dir, 'cut'))
    await Promise.all([tracking, stored])
    await expectMatchesIndex(store, cid, entries, N)
    expect((await store.getHave(cid))!.state.held).to.equal(300)
    // the copy holds a partly tracked bitmap: tracking again finishes it, agreeing with the index
    const copy = await Store.open(join(dir, 'cut'))
    open.push(copy)
    const partial = (await copy.listHave())[0]
    expect(partial.tracked).to.be.below(N)
    expect(partial.complete).to.equal(false)
    expect((await copy.trackHave(cid, entries, N)).tracked).to.equal(N)
    await expectMatchesIndex(copy, cid, entries, N)
  })
})
