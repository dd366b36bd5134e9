// Real heraldd processes on loopback: a seed publishes, peers fetch from each other and fall back to it.
import { expect } from 'chai'
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { untilProgress } from '../helpers/progress.js'
import { chunkStream, DEFAULT_CHUNKER } from '../../protocol/chunker.js'
import { digestHex, sha256 } from '../../protocol/cid.js'
import { walkRelease } from '../../protocol/ingest.js'
import { generateRelease, generateNextRelease } from '../fixtures/release-gen.js'

async function listFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  async function walk (d: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else out.push(relative(dir, p))
    }
  }
  await walk(dir)
  return out.sort()
}

/** The chunk digests (hex) of a release directory, as publish sees it (decompressed). */
async function chunkSet (dir: string): Promise<Map<string, number>> {
  const chunks = new Map<string, number>()
  for await (const file of walkRelease(dir)) {
    for await (const chunk of chunkStream(file.open(), DEFAULT_CHUNKER)) chunks.set(digestHex(sha256(chunk)), chunk.byteLength)
  }
  return chunks
}

async function expectSameTree (published: string, materialized: string): Promise<void> {
  const files = await listFiles(published)
  expect(await listFiles(materialized)).to.deep.equal(files)
  for (const f of files) {
    const [a, b] = await Promise.all([readFile(join(published, f)), readFile(join(materialized, f))])
    expect(b.equals(a), `${f} differs`).to.equal(true)
  }
}

describe('swarm (real daemons on loopback)', function () {
  this.timeout(180_000)
  let dir: string
  const daemons: DaemonProcess[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-swarm-'))
  })

  afterEach(async () => {
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  async function startSeed (uploadBytesPerSecond = 0): Promise<DaemonProcess> {
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, uploadBytesPerSecond })
    daemons.push(seed)
    return seed
  }

  async function startPeer (name: string, seed: DaemonProcess, extra: Partial<Parameters<typeof DaemonProcess.start>[0]> = {}): Promise<DaemonProcess> {
    const peer = await DaemonProcess.start({
      dataDir: join(dir, name),
      bootstrap: seed.listen,
      trust: [await seed.publisherKey()],
      ...extra
    })
    daemons.push(peer)
    return peer
  }

  it('should fetch from the seed, then from a peer, then move only the delta of an update', async () => {
    const v1 = join(dir, 'in-v1')
    const v2 = join(dir, 'in-v2')
    await generateRelease({ seed: 1, entries: 12_000, dir: v1 })
    await generateNextRelease(v1, v2, { seed: 2, modifyFraction: 0.0005, deleteFraction: 0.0002, appendFraction: 0.02, insertFraction: 0 })
    const seed = await startSeed()
    const pub1 = await seed.client.publish({ name: 'uniprot@2024-03', dir: v1 })
    expect(pub1.chunks).to.be.greaterThan(10)

    const a = await startPeer('a', seed)
    const fa = await a.fetch('uniprot@2024-03')
    expect(fa.state, JSON.stringify(fa.error)).to.equal('done')
    expect(fa.wireBytes.peer).to.equal(0)
    expect(fa.doneBytes).to.equal(fa.totalBytes)
    // chunks travel zstd-compressed: FASTA text shrinks well
    expect(fa.wireBytes.seed).to.be.below(0.6 * fa.totalBytes)
    await expectSameTree(v1, fa.path!)

    const b = await startPeer('b', seed)
    const fb = await b.fetch('uniprot@2024-03')
    expect(fb.state, JSON.stringify(fb.error)).to.equal('done')
    const total = fb.wireBytes.seed + fb.wireBytes.peer
    expect(fb.doneBytes).to.equal(fb.totalBytes)
    // the seed is the origin of last resort: B got (nearly) everything from A
    expect(fb.wireBytes.seed / total, `seed share ${fb.wireBytes.seed}/${total}`).to.be.below(0.2)
    await expectSameTree(v1, fb.path!)

    // the update: A already holds v1, so only chunks new in v2 move
    const pub2 = await seed.client.publish({ name: 'uniprot@2024-04', dir: v2 })
    expect(pub2.newChunks).to.be.lessThan(pub2.chunks)
    const old = await chunkSet(v1)
    let deltaBytes = 0
    for (const [d, size] of await chunkSet(v2)) if (!old.has(d)) deltaBytes += size
    const fa2 = await a.fetch('uniprot@2024-04')
    expect(fa2.state, JSON.stringify(fa2.error)).to.equal('done')
    const moved = fa2.wireBytes.seed + fa2.wireBytes.peer
    // exactly the chunks new in v2 were fetched and verified; on the wire they were smaller (compressed)
    expect(fa2.doneBytes).to.equal(deltaBytes)
    expect(moved).to.be.greaterThan(0).and.below(deltaBytes)
    expect(moved).to.be.below(0.6 * fa2.totalBytes)
    expect(fa2.reusedBytes).to.equal(fa2.totalBytes - deltaBytes)
    await expectSameTree(v2, fa2.path!)
    // current points at the new release; the old one is still there for a rollback
    const releases = await a.client.listReleases()
    expect(releases.find(r => r.version === '2024-04')?.current).to.equal(true)
    const rb = await a.client.rollback('uniprot')
    expect(rb.to).to.equal('2024-03')
    const cur = await stat(join(fa.path!, '..', 'current'))
    expect(cur.isDirectory()).to.equal(true)
  })

  it('should let simultaneous downloaders trade so the capped seed sends far less than 3× the release', async () => {
    const v1 = join(dir, 'in')
    await generateRelease({ seed: 3, entries: 16_000, dir: v1 })
    const seed = await startSeed(4 * 1024 * 1024)
    const pub = await seed.client.publish({ name: 'fresh@1', dir: v1 })
    const peers = await Promise.all(['p1', 'p2', 'p3'].map(async n => await startPeer(n, seed)))
    // let the DHT and connections settle so peers know each other
    await new Promise(resolve => setTimeout(resolve, 2_000))
    const results = await Promise.all(peers.map(async p => await p.fetch('fresh@1', 150_000)))
    for (const r of results) expect(r.state, JSON.stringify(r.error)).to.equal('done')
    const status = await seed.client.status()
    const ratio = status.served / pub.bytes
    expect(ratio, `seed served ${status.served} for a ${pub.bytes}-byte release`).to.be.below(2)
    const fromPeers = results.reduce((n, r) => n + r.wireBytes.peer, 0)
    expect(fromPeers).to.be.greaterThan(0)
  })

  it('should resume after the daemon is SIGKILLed mid-fetch', async () => {
    const v1 = join(dir, 'in')
    await generateRelease({ seed: 4, entries: 16_000, dir: v1 })
    const seed = await startSeed(2 * 1024 * 1024)
    await seed.client.publish({ name: 'resume@1', dir: v1 })
    const a = await startPeer('a', seed)
    const started = await a.client.startFetch({ name: 'resume@1' })
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const p = await a.client.getFetch(started.id)
      if (p.doneChunks >= 3) break
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    await a.kill()
    await a.launch()
    const status = await a.client.status()
    const resumed = status.fetches.find(f => f.name === 'resume@1')
    expect(resumed, 'the interrupted fetch was resumed at start').to.not.equal(undefined)
    const done = await a.waitFetch(resumed!.id, 120_000)
    // what was stored before the kill was not fetched again
    expect(done.reusedChunks).to.be.at.least(3)
    expect(done.doneChunks).to.equal(done.totalChunks - done.reusedChunks)
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    await expectSameTree(v1, done.path!)
    const verify = await a.client.verify('resume@1')
    expect(verify.ok).to.equal(true)
  })

  it('should complete from other peers when one source dies mid-transfer, and without the seed', async () => {
    const v1 = join(dir, 'in')
    await generateRelease({ seed: 5, entries: 12_000, dir: v1 })
    const seed = await startSeed()
    await seed.client.publish({ name: 'ha@1', dir: v1 })
    // both sources capped, so the fetch below lasts seconds and A provably dies while it runs
    const a = await startPeer('a', seed, { uploadBytesPerSecond: 512 * 1024 })
    expect((await a.fetch('ha@1')).state).to.equal('done')
    const b = await startPeer('b', seed, { uploadBytesPerSecond: 512 * 1024 })
    expect((await b.fetch('ha@1')).state).to.equal('done')
    // the seed goes away; a new peer that knows A and B still gets record, manifest and chunks
    await seed.stop()
    const c = await DaemonProcess.start({
      dataDir: join(dir, 'c'),
      bootstrap: [...a.listen, ...b.listen],
      trust: [await seed.publisherKey()],
      uploadBytesPerSecond: 0,
      // bootstrapped from labs, so the operator names the seed (otherwise bootstrap peers are taken as seeds)
      config: { seeds: [seed.peerId], limits: { maxInflightPerPeer: 2, batchSize: 2 } }
    })
    daemons.push(c)
    const started = await c.client.startFetch({ name: 'ha@1' })
    // kill one of the two sources as soon as chunks flow (a progress event, not a poll)
    const flowing = await untilProgress(c, started.id, p => p.doneChunks >= 2)
    expect(flowing.state).to.equal('fetching')
    await a.kill()
    // the fetch was still running after A died: part of the release is still to come, from B alone
    const atKill = await c.client.getFetch(started.id)
    expect(atKill.state, 'the fetch was over before the source died').to.equal('fetching')
    expect(atKill.doneChunks).to.be.below(atKill.totalChunks)
    const done = await c.waitFetch(started.id, 120_000)
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    expect(done.doneChunks).to.be.greaterThan(atKill.doneChunks)
    expect(done.wireBytes.seed).to.equal(0)
    await expectSameTree(v1, done.path!)
  })

  it('should move an update with scattered edits as delta objects, and whole chunks to a peer without the base', async () => {
    const v1 = join(dir, 'in-v1')
    const v2 = join(dir, 'in-v2')
    await generateRelease({ seed: 11, entries: 8_000, dir: v1 })
    // 3% of entries edited all over the file: nearly every chunk changes
    await generateNextRelease(v1, v2, { seed: 12, modifyFraction: 0.03, deleteFraction: 0.001, appendFraction: 0.01, insertFraction: 0.001 })
    const seed = await startSeed()
    await seed.client.publish({ name: 'uniprot@2024-03', dir: v1 })
    const pub2 = await seed.client.publish({ name: 'uniprot@2024-04', dir: v2 })
    expect(pub2.delta?.base).to.equal('uniprot@2024-03')
    expect(pub2.delta?.encoded).to.be.greaterThan(0.8 * (pub2.delta?.candidates ?? 0))

    const a = await startPeer('a', seed)
    expect((await a.fetch('uniprot@2024-03')).state).to.equal('done')
    const plan = await a.client.plan('uniprot@2024-04')
    expect(plan.deltaChunks).to.equal(pub2.delta?.encoded)
    expect(plan.toMove.delta).to.be.greaterThan(0).and.below(0.05 * plan.releaseBytes)
    const fa = await a.fetch('uniprot@2024-04')
    expect(fa.state, JSON.stringify(fa.error)).to.equal('done')
    const moved = fa.wireBytes.seed + fa.wireBytes.peer
    // every chunk new in v2 was rebuilt and verified; the wire carried a small fraction of them
    expect(fa.doneBytes).to.equal(fa.totalBytes - fa.reusedBytes)
    expect(fa.doneBytes).to.be.greaterThan(0.9 * fa.totalBytes)
    expect(moved, `moved ${moved} of ${fa.totalBytes}`).to.be.below(0.1 * fa.totalBytes)
    await expectSameTree(v2, fa.path!)
    expect((await a.client.verify('uniprot@2024-04')).ok).to.equal(true)

    // B also holds v1: A now holds the delta objects too and serves them
    const b = await startPeer('b', seed)
    expect((await b.fetch('uniprot@2024-03')).state).to.equal('done')
    const fb = await b.fetch('uniprot@2024-04')
    expect(fb.state, JSON.stringify(fb.error)).to.equal('done')
    expect(fb.wireBytes.seed + fb.wireBytes.peer).to.be.below(0.1 * fb.totalBytes)
    await expectSameTree(v2, fb.path!)

    // C holds nothing: it cannot use the deltas and fetches the chunks themselves
    const c = await startPeer('c', seed)
    const fc = await c.fetch('uniprot@2024-04')
    expect(fc.state, JSON.stringify(fc.error)).to.equal('done')
    expect(fc.doneBytes).to.equal(fc.totalBytes)
    expect(fc.wireBytes.seed + fc.wireBytes.peer).to.be.greaterThan(0.3 * fc.totalBytes)
    await expectSameTree(v2, fc.path!)
  })

  it('should give a lab that skipped a release deltas against the one it holds (N-2 → N)', async () => {
    const v1 = join(dir, 'in-v1')
    const v2 = join(dir, 'in-v2')
    const v3 = join(dir, 'in-v3')
    await generateRelease({ seed: 21, entries: 6_000, dir: v1 })
    await generateNextRelease(v1, v2, { seed: 22, modifyFraction: 0.03 })
    await generateNextRelease(v2, v3, { seed: 23, modifyFraction: 0.03 })
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, config: { publish: { deltaReleases: 2 } } })
    daemons.push(seed)
    await seed.client.publish({ name: 'uniprot@2024-01', dir: v1 })
    const a = await startPeer('a', seed)
    expect((await a.fetch('uniprot@2024-01')).state).to.equal('done')
    await seed.client.publish({ name: 'uniprot@2024-02', dir: v2 })
    const pub3 = await seed.client.publish({ name: 'uniprot@2024-03', dir: v3 })
    expect(pub3.delta?.base).to.equal('uniprot@2024-02')
    expect(pub3.olderDeltas?.[0].base).to.equal('uniprot@2024-01')
    expect(pub3.olderDeltas?.[0].encoded).to.be.greaterThan(0)
    // A never fetched 2024-02: only the deltas against 2024-01 are usable to it
    const plan = await a.client.plan('uniprot@2024-03')
    expect(plan.deltaChunks).to.equal(pub3.olderDeltas?.[0].encoded)
    const f = await a.fetch('uniprot@2024-03')
    expect(f.state, JSON.stringify(f.error)).to.equal('done')
    expect(f.wireBytes.seed + f.wireBytes.peer).to.be.below(0.15 * f.totalBytes)
    await expectSameTree(v3, f.path!)
  })

  it('should refuse a release signed by a publisher it does not trust', async () => {
    const v1 = join(dir, 'in')
    await generateRelease({ seed: 6, entries: 2_000, dir: v1 })
    const seed = await startSeed()
    await seed.client.publish({ name: 'evil@1', dir: v1 })
    const other = await DaemonProcess.start({ dataDir: join(dir, 'other'), seed: true })
    daemons.push(other)
    const peer = await startPeer('p', seed, { trust: [await other.publisherKey()] })
    const res = await peer.fetch('evil@1')
    expect(res.state).to.equal('failed')
    expect(res.error?.code).to.equal('UNTRUSTED_PUBLISHER')
    expect(await peer.client.listReleases()).to.deep.equal([])
  })
})
