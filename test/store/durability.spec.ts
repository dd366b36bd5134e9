// Power loss and disk full, against the real store: pack bytes are durable before the index names them,
// a short pack (power cut under an older build, torn tail) opens with the lost chunks reading as missing,
// and ENOSPC is a typed DISK_FULL that leaves the store consistent.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { packName } from '../../store/packs.js'
import { checkFreeSpace } from '../../store/space.js'
import { Store } from '../../store/store.js'
import { prng } from '../fixtures/release-gen.js'
import { checkWhole, powerCut, randomChunk } from '../helpers/power-cut.js'

const execFileP = promisify(execFile)

describe('store durability', function () {
  this.timeout(60_000)
  let dir: string
  const open: Store[] = []
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-durable-')) })
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('should make pack bytes durable before their index entry, one fsync per group of concurrent puts', async () => {
    const store = await Store.open(join(dir, 's'), { packMaxBytes: 256 * 1024 })
    open.push(store)
    const rand = prng(7)
    const chunks = Array.from({ length: 300 }, () => randomChunk(rand, 4096 + Math.floor(rand() * 8192)))
    let checked = 0
    await Promise.all(chunks.map(async c => {
      expect(await store.putChunk(c.d, c.b)).to.equal(true)
      // once a put resolves, its bytes survive a power cut
      const loc = (await store.locate(c.d))!
      expect(loc.offset + loc.length).to.be.at.most(store.durableLength(loc.pack))
      checked++
    }))
    expect(checked).to.equal(300)
    const { syncs, batches } = store.commits
    // grouped: one batch per chunk would be 300 (how many share one depends on the machine's load)
    expect(batches, 'index batches').to.be.below(150)
    // one per group, plus one per pack rolled over
    expect(syncs, 'fsyncs').to.be.below(150 + 20)
  })

  it('should open after a power cut during writes with every indexed chunk whole, and refetch what was lost', async () => {
    for (let trial = 0; trial < 3; trial++) {
      const store = await Store.open(join(dir, `s${trial}`), { packMaxBytes: 128 * 1024 })
      open.push(store)
      const rand = prng(100 + trial)
      const chunks = Array.from({ length: 200 }, () => randomChunk(rand, 2048 + Math.floor(rand() * 6000)))
      let done = 0
      const cutAfter = 20 + Math.floor(rand() * 150)
      const cutDone = new Promise<void>((resolve, reject) => {
        const writes = chunks.map(async c => {
          await store.putChunk(c.d, c.b)
          if (++done === cutAfter) powerCut(store, join(dir, `cut${trial}`)).then(resolve, reject)
        })
        void Promise.all(writes)
      })
      await cutDone
      const copy = await Store.open(join(dir, `cut${trial}`), { packMaxBytes: 128 * 1024 })
      open.push(copy)
      // ordered writes: nothing indexed is past a pack's durable end
      expect(copy.recovery.droppedChunks, JSON.stringify(copy.recovery)).to.equal(0)
      const present = await checkWhole(copy, chunks)
      expect(present).to.be.at.least(cutAfter)
      expect((await copy.stats()).chunks).to.equal(present)
      for (const c of chunks) await copy.putChunk(c.d, c.b)
      expect(await checkWhole(copy, chunks)).to.equal(chunks.length)
    }
  })

  it('should open a store whose pack lost its tail (written by an older build), report it, and refill', async () => {
    const path = join(dir, 's')
    let store = await Store.open(path)
    const rand = prng(3)
    const chunks = Array.from({ length: 60 }, () => randomChunk(rand, 3000 + Math.floor(rand() * 3000)))
    for (const c of chunks) await store.putChunk(c.d, c.b)
    const ends = await Promise.all(chunks.map(async c => { const l = (await store.locate(c.d))!; return l.offset + l.length }))
    await store.close()
    const pack = join(path, 'packs', packName(1))
    const size = (await stat(pack)).size
    const cut = Math.floor(size * 0.6) + 17
    await truncate(pack, cut)
    const lost = ends.filter(e => e > cut).length
    expect(lost).to.be.greaterThan(0)
    store = await Store.open(path)
    open.push(store)
    expect(store.recovery.droppedChunks).to.equal(lost)
    expect(store.recovery.packs).to.deep.equal([{ pack: packName(1), found: cut, committed: size }])
    const bitmap = await store.hasChunks(Buffer.concat(chunks.map(c => c.d)))
    chunks.forEach((_, i) => {
      const held = (bitmap[i >> 3] & (0x80 >> (i & 7))) !== 0
      expect(held, `chunk ${i}`).to.equal(ends[i] <= cut)
    })
    expect(await checkWhole(store, chunks)).to.equal(chunks.length - lost)
    expect((await store.stats()).chunks).to.equal(chunks.length - lost)
    for (const c of chunks) await store.putChunk(c.d, c.b)
    expect(await checkWhole(store, chunks)).to.equal(chunks.length)
    await store.close()
    open.pop()
    store = await Store.open(path)
    open.push(store)
    expect(store.recovery.packs).to.deep.equal([])
    expect(await checkWhole(store, chunks)).to.equal(chunks.length)
  })

  describe('on a full filesystem (tmpfs)', () => {
    let mnt: string | undefined
    beforeEach(async function () {
      const root = process.getuid?.() === 0
      if (!root) {
        if (process.env.CI != null && process.env.CI !== '' && process.env.CI !== '0') throw new Error('disk-full tests need root (to mount a tmpfs) under CI')
        console.log('      (skipped: mounting a small tmpfs needs root; run as root or under CI=1)')
        this.skip()
      }
      mnt = join(dir, 'mnt')
      await mkdir(mnt)
      await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt])
    })
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close()
      if (mnt != null) await execFileP('umount', [mnt]).catch(async () => await execFileP('umount', ['-l', mnt!]))
      mnt = undefined
    })

    it('should raise DISK_FULL, keep every stored chunk whole and index nothing unwritten, and resume once space is freed', async () => {
      const path = join(mnt!, 'store')
      const ballast = join(mnt!, 'ballast')
      await writeFile(ballast, randomBytes(2 * 1024 * 1024))
      let store = await Store.open(path)
      open.push(store)
      const rand = prng(11)
      const stored: Array<{ d: Uint8Array, b: Uint8Array }> = []
      let failed: { d: Uint8Array, b: Uint8Array } | undefined
      let error: any
      for (let i = 0; i < 200 && failed == null; i++) {
        const c = randomChunk(rand, 256 * 1024)
        try {
          await store.putChunk(c.d, c.b)
          stored.push(c)
        } catch (err) { failed = c; error = err }
      }
      expect(error?.code, String(error)).to.equal('DISK_FULL')
      expect(error.name).to.equal('DiskFullError')
      expect(stored.length).to.be.greaterThan(10)
      expect(await store.hasChunk(failed!.d)).to.equal(false)
      expect(await checkWhole(store, stored)).to.equal(stored.length)
      // the pack holds exactly the stored chunks: the partial write was cut off
      expect((await stat(join(path, 'packs', packName(1)))).size).to.equal(stored.length * 256 * 1024)
      // the space check says so before writing
      try {
        await checkFreeSpace([{ path, bytes: 4 * 1024 * 1024 }])
        expect.fail('checkFreeSpace passed on a full disk')
      } catch (err: any) {
        expect(err.code).to.equal('DISK_FULL')
        expect(err.needed).to.be.greaterThan(err.available)
      }
      // space freed: the same store goes on, and reopens whole
      await rm(ballast)
      expect(await store.putChunk(failed!.d, failed!.b)).to.equal(true)
      stored.push(failed!)
      await store.close()
      open.pop()
      store = await Store.open(path)
      open.push(store)
      expect(store.recovery.packs).to.deep.equal([])
      expect(await checkWhole(store, stored)).to.equal(stored.length)
      expect((await store.stats()).chunks).to.equal(stored.length)
    })
  })
})
