// Release lifecycle on real daemons: stop mid-fetch, unpin/gc/rollback rules, gc racing a starting fetch,
// rollback racing an update.
import { expect } from 'chai'
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { daemonFixture, DaemonProcess } from '../helpers/daemon-process.js'
import { generateNextRelease, generateRelease } from '../fixtures/release-gen.js'
import type { FetchProgress } from '../../daemon/types.js'

async function expectCode (p: Promise<unknown>, code: string): Promise<Error & { code?: string }> {
  try {
    await p
  } catch (err: any) {
    expect(err.code, err.message).to.equal(code)
    return err
  }
  expect.fail(`expected ${code}`)
}

/** Poll a fetch (bounded) until `cond` holds or the fetch ends. */
async function waitFor (d: DaemonProcess, id: string, cond: (p: FetchProgress) => boolean, timeoutMs = 60_000): Promise<FetchProgress> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const p = await d.client.getFetch(id)
    if (cond(p) || p.state === 'done' || p.state === 'failed') return p
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`fetch ${id}: condition not met in ${timeoutMs} ms`)
}

describe('release lifecycle (real daemons on loopback)', function () {
  this.timeout(180_000)
  const fx = daemonFixture('herald-life-')
  const start = fx.start

  async function seedAndLab (uploadBytesPerSecond = 0): Promise<{ seed: DaemonProcess, lab: DaemonProcess }> {
    const seed = await start('seed', { seed: true, uploadBytesPerSecond })
    const lab = await start('lab', { bootstrap: seed.listen, trust: [await seed.publisherKey()] })
    return { seed, lab }
  }

  async function versions (n: number, entries = 3_000): Promise<string[]> {
    const dirs = [join(fx.dir, 'in-1')]
    await generateRelease({ seed: 31, entries, dir: dirs[0] })
    for (let i = 2; i <= n; i++) {
      dirs.push(join(fx.dir, `in-${i}`))
      await generateNextRelease(dirs[i - 2], dirs[i - 1], { seed: 31 + i, modifyFraction: 0.02, appendFraction: 0.01 })
    }
    return dirs
  }

  it('should exit 0 on SIGTERM mid-fetch, and resume the fetch at the next start', async () => {
    const [v1] = await versions(1, 20_000)
    const { seed, lab } = await seedAndLab(1_000_000)
    await seed.client.publish({ name: 'stop@1', dir: v1 })
    const started = await lab.client.startFetch({ name: 'stop@1' })
    const p = await waitFor(lab, started.id, p => p.doneChunks > 0)
    expect(p.state, 'the fetch must still be running when the daemon is stopped').to.equal('fetching')
    const t0 = Date.now()
    const code = await lab.stop()
    expect(code, lab.output.slice(-3000)).to.equal(0)
    expect(Date.now() - t0).to.be.lessThan(15_000)
    await lab.launch()
    const resumed = (await lab.client.status()).fetches.find(f => f.name === 'stop@1')
    expect(resumed, 'the interrupted fetch is resumed at start').to.not.equal(undefined)
    const done = await lab.waitFetch(resumed!.id, 120_000)
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    expect((await lab.client.verify('stop@1')).ok).to.equal(true)
  })

  it('should refuse to unpin the current release unless forced, and gc only directories neither pinned nor current', async () => {
    const [v1, v2] = await versions(2)
    const { seed, lab } = await seedAndLab()
    await seed.client.publish({ name: 'life@1', dir: v1 })
    await seed.client.publish({ name: 'life@2', dir: v2 })
    expect((await lab.fetch('life@1')).state).to.equal('done')
    expect((await lab.fetch('life@2')).state).to.equal('done')
    // a daemon started without --seed is told how to start one, not to run init again
    const notSeed = await expectCode(lab.client.startPublish({ name: 'life@9', dir: v1 }), 'NOT_PUBLISHER')
    expect(notSeed.message).to.match(/heraldd start --seed/)
    const err = await expectCode(lab.client.unpin('life@2'), 'CONFLICT')
    expect(err.message).to.match(/current/)
    expect((await lab.client.listReleases()).find(r => r.name === 'life@2')?.pinned).to.equal(true)

    const datasetDir = join(lab.opts.dataDir, 'releases', 'life')
    expect(await readdir(datasetDir)).to.include.members(['1', '2'])
    await lab.client.unpin('life@1')
    const gc = await lab.client.gc()
    expect(gc.releasesRemoved).to.deep.equal(['life@1'])
    const left = await readdir(datasetDir)
    expect(left).to.include('2')
    expect(left).to.not.include('1')
    expect((await lab.client.verify('life@2')).ok).to.equal(true)

    // forced, the current release may go too — but its directory stays while it is current
    await lab.client.unpin('life@2', { force: true })
    const gc2 = await lab.client.gc()
    expect(gc2.releasesRemoved ?? []).to.deep.equal([])
    expect(await readdir(datasetDir)).to.include('2')
  })

  it('should step back through the pinned history on rollback, never forward', async () => {
    const [v1, v2, v3] = await versions(3)
    const { seed, lab } = await seedAndLab()
    for (const [n, v] of [v1, v2, v3].entries()) await seed.client.publish({ name: `hist@${n + 1}`, dir: v })
    for (const n of [1, 2, 3]) expect((await lab.fetch(`hist@${n}`)).state).to.equal('done')
    const current = async (): Promise<string> => await readlink(join(lab.opts.dataDir, 'releases', 'hist', 'current'))
    expect(await current()).to.equal('3')
    expect((await lab.client.rollback('hist')).to).to.equal('2')
    expect(await current()).to.equal('2')
    expect((await lab.client.rollback('hist')).to).to.equal('1')
    expect(await current()).to.equal('1')
    await expectCode(lab.client.rollback('hist'), 'RELEASE_NOT_FOUND')
    expect(await current()).to.equal('1')
    expect((await lab.client.rollback('hist', '3')).to).to.equal('3')
    expect(await current()).to.equal('3')
  })

  it('should never roll back to a release still being fetched', async () => {
    const [v1, v2] = await versions(2, 20_000)
    // the seed is capped, so that race@2 is still moving when rollback is asked for
    const { seed, lab } = await seedAndLab(2_000_000)
    await seed.client.publish({ name: 'race@1', dir: v1 })
    await seed.client.publish({ name: 'race@2', dir: v2, delta: false })
    expect((await lab.fetch('race@1')).state).to.equal('done')
    const started = await lab.client.startFetch({ name: 'race@2' })
    const p = await waitFor(lab, started.id, p => p.state === 'fetching')
    expect(p.state).to.equal('fetching')
    // the only other release of the dataset is the one in flight: nothing to roll back to
    await expectCode(lab.client.rollback('race'), 'RELEASE_NOT_FOUND')
    await expectCode(lab.client.rollback('race', '2'), 'CONFLICT')
    expect(await readlink(join(lab.opts.dataDir, 'releases', 'race', 'current'))).to.equal('1')
    const done = await lab.waitFetch(started.id, 120_000)
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    expect((await lab.client.verify('race@2')).ok).to.equal(true)
  })

  it('should complete a fetch that starts while a gc runs, whichever goes first', async () => {
    const [v1, v2] = await versions(2, 6_000)
    const { seed, lab } = await seedAndLab()
    await seed.client.publish({ name: 'gcr@1', dir: v1 })
    await seed.client.publish({ name: 'gcr@2', dir: v2 })
    await seed.client.publish({ name: 'gcr@3', dir: v1 })
    expect((await lab.fetch('gcr@1')).state).to.equal('done')
    // gcr@2 shares most chunks with gcr@1, whose pin goes: the chunks a gc would delete are the ones a
    // fetch of gcr@2 (and gcr@3, identical to gcr@1) finds in the store
    await lab.client.unpin('gcr@1', { force: true })
    for (const [name, gcFirst] of [['gcr@2', false], ['gcr@3', true]] as const) {
      const fetch = gcFirst ? lab.client.gc().then(async () => await lab.client.startFetch({ name })) : lab.client.startFetch({ name })
      const gc = lab.client.gc()
      const [started] = await Promise.all([fetch, gc])
      const done = await lab.waitFetch(started.id, 120_000)
      expect(done.state, `${name}: ${JSON.stringify(done.error)}`).to.equal('done')
      expect((await lab.client.verify(name)).ok).to.equal(true)
      await lab.client.unpin(name, { force: true })
    }
  })

  it('should report a corrupt stored chunk as bad (not a 500), stop serving it, and fetch it again', async () => {
    const [v1] = await versions(1)
    const { seed, lab } = await seedAndLab()
    await seed.client.publish({ name: 'rot@1', dir: v1 })
    expect((await lab.fetch('rot@1')).state).to.equal('done')
    await lab.stop()
    // flip bytes in the middle of the lab's first pack: some chunk no longer reads back right
    const packs = join(lab.opts.dataDir, 'store', 'packs')
    const pack = join(packs, (await readdir(packs)).filter(n => n.endsWith('.dat')).sort()[0])
    const bytes = await readFile(pack)
    for (let i = 0; i < 64; i++) bytes[(bytes.byteLength >> 1) + i] ^= 0xff
    await writeFile(pack, bytes)
    await lab.launch()
    const first = await lab.client.verify('rot@1')
    expect(first.ok).to.equal(false)
    expect(first.bad.length).to.be.greaterThan(0)
    // quarantined: no longer held, so the second verify counts it missing, not bad
    const second = await lab.client.verify('rot@1')
    expect(second.bad).to.deep.equal([])
    expect(second.missing).to.equal(first.bad.length)
    expect((await lab.client.listReleases()).find(r => r.name === 'rot@1')?.complete).to.equal(false)
    // repair: the next fetch moves only what was quarantined
    const repaired = await lab.fetch('rot@1')
    expect(repaired.state, JSON.stringify(repaired.error)).to.equal('done')
    expect(repaired.totalChunks - repaired.reusedChunks).to.equal(first.bad.length)
    expect((await lab.client.verify('rot@1')).ok).to.equal(true)
  })

  it('should import a copy of a release from disk, so that its fetch and the next move only the delta', async () => {
    const [v1, v2] = await versions(2, 6_000)
    const { seed, lab } = await seedAndLab()
    await seed.client.publish({ name: 'imp@1', dir: v1 })
    await seed.client.publish({ name: 'imp@2', dir: v2 })
    const imported = await lab.client.importRelease({ name: 'imp@1', dir: v1 })
    expect(imported.pinned).to.equal(true)
    expect(imported.releaseChunksHeld).to.equal(imported.releaseChunks)
    expect(imported.newChunks).to.be.greaterThan(0)
    // a gc keeps what was imported: the release is pinned
    await lab.client.gc()
    const one = await lab.fetch('imp@1')
    expect(one.state, JSON.stringify(one.error)).to.equal('done')
    expect(one.reusedChunks).to.equal(one.totalChunks)
    expect(one.wireBytes.seed + one.wireBytes.peer).to.equal(0)
    // a lab without the import moves the whole of imp@2; this one only what changed
    const other = await start('other', { bootstrap: seed.listen, trust: [await seed.publisherKey()] })
    const full = await other.fetch('imp@2')
    const delta = await lab.fetch('imp@2')
    expect(delta.state, JSON.stringify(delta.error)).to.equal('done')
    const moved = (p: FetchProgress): number => p.wireBytes.seed + p.wireBytes.peer
    expect(moved(delta)).to.be.lessThan(moved(full) / 2)
    await expectCode(lab.client.importRelease({ name: 'imp@3', dir: join(fx.dir, 'missing') }), 'INVALID_PATH')
  })
})
