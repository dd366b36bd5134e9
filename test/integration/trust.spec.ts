// Trust scoped to dataset names, on real daemons: two publishers, a lab that trusts each for its own
// datasets, a record whose name disagrees with its manifest, and a peer that calls itself a seed.
import { expect } from 'chai'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { daemonFixture } from '../helpers/daemon-process.js'
import { generateRelease } from '../fixtures/release-gen.js'
import { loadPublisherKey } from '../../daemon/keys.js'
import { parseCid } from '../../protocol/cid.js'
import { signRelease } from '../../protocol/release.js'
import { Store } from '../../store/store.js'

describe('scoped trust (real daemons on loopback)', function () {
  this.timeout(180_000)
  const fx = daemonFixture('herald-trust-')
  const start = fx.start

  it('should accept each publisher only for its own datasets, and refuse a record naming another manifest', async () => {
    const inA = join(fx.dir, 'in-a')
    const inB = join(fx.dir, 'in-b')
    await generateRelease({ seed: 41, entries: 1_500, dir: inA })
    await generateRelease({ seed: 42, entries: 1_500, dir: inB })
    const a = await start('seed-a', { seed: true })
    const b = await start('seed-b', { seed: true })
    const lab = await start('lab', {
      bootstrap: [...a.listen, ...b.listen],
      trust: [`uniprot=${await a.publisherKey()}`, `ncbi-*=${await b.publisherKey()}`]
    })
    const fromA = await a.client.publish({ name: 'uniprot@1', dir: inA })
    // B publishes the same name with other content: a trusted key, but not for this dataset
    await b.client.publish({ name: 'uniprot@1', dir: inB })
    await b.client.publish({ name: 'uniprot@2', dir: inB })
    await b.client.publish({ name: 'ncbi-nr@1', dir: inB })

    const got = await lab.fetch('uniprot@1')
    expect(got.state, JSON.stringify(got.error)).to.equal('done')
    expect(got.manifestCid).to.equal(fromA.manifestCid)
    const refused = await lab.fetch('uniprot@2')
    expect(refused.state).to.equal('failed')
    expect(refused.error?.code).to.equal('UNTRUSTED_PUBLISHER')
    expect((await lab.fetch('ncbi-nr@1')).state).to.equal('done')

    // A signs uniprot@7 pointing at the manifest of its misc@x: the names disagree, the lab refuses
    const misc = await a.client.publish({ name: 'misc@x', dir: inB })
    await a.stop()
    const key = await loadPublisherKey(a.opts.dataDir)
    const record = { dataset: 'uniprot', version: '7', manifestCid: parseCid(misc.manifestCid), seq: 1, publishedAt: Date.now() }
    const store = await Store.open(join(a.opts.dataDir, 'store'))
    try {
      await store.putRelease(record, await signRelease(record, key!))
    } finally {
      await store.close()
    }
    await a.launch()
    const lab2 = await start('lab2', { bootstrap: a.listen, trust: [`*=${await a.publisherKey()}`] })
    const misnamed = await lab2.fetch('uniprot@7')
    expect(misnamed.state).to.equal('failed')
    expect(misnamed.error?.code).to.equal('INVALID_MANIFEST')
    expect(misnamed.error?.message).to.match(/misc@x/)
    expect(await readdir(join(lab2.opts.dataDir, 'releases')).catch(() => [])).to.not.include('misc')
  })

  it('should take the seed from configuration, not from a peer that calls itself one', async () => {
    const input = join(fx.dir, 'in')
    await generateRelease({ seed: 43, entries: 6_000, dir: input })
    // the real seed is capped, so the lab wants the spoofer's bytes if it can have them
    const seed = await start('seed', { seed: true, uploadBytesPerSecond: 1_000_000 })
    await seed.client.publish({ name: 'spoof@1', dir: input })
    const trust = [await seed.publisherKey()]
    // a peer that holds the release and runs with --seed (its own publisher key): its agent says "(seed)"
    const spoofer = await start('spoofer', { bootstrap: seed.listen, trust })
    expect((await spoofer.fetch('spoof@1')).state).to.equal('done')
    await spoofer.stop()
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const { HERALDD } = await import('../helpers/daemon-process.js')
    await promisify(execFile)(process.execPath, [HERALDD, 'init', '--seed', '--data-dir', spoofer.opts.dataDir])
    const { readFile, writeFile } = await import('node:fs/promises')
    const cfgPath = join(spoofer.opts.dataDir, 'config.json')
    await writeFile(cfgPath, JSON.stringify({ ...JSON.parse(await readFile(cfgPath, 'utf8')), seed: true }))
    await spoofer.launch()

    const lab = await start('lab', { bootstrap: [...seed.listen, ...spoofer.listen], trust, config: { seeds: [seed.peerId] } })
    const done = await lab.fetch('spoof@1')
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    const peers = await lab.client.peers()
    expect(peers.find(p => p.peerId === seed.peerId)?.seed).to.equal(true)
    expect(peers.find(p => p.peerId === spoofer.peerId)?.seed).to.equal(false)
    // the spoofer's bytes count as a peer's, not the seed's
    expect(done.wireBytes.peer).to.be.greaterThan(0)
  })
})
