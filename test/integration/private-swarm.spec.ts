// Private swarms on real daemons: a node without the swarm key (or with another key) cannot connect or
// fetch; with the key it fetches. An allow-list of peer IDs refuses any other peer at connection time.
import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { daemonFixture, type DaemonProcess } from '../helpers/daemon-process.js'
import { generateRelease } from '../fixtures/release-gen.js'
import { formatSwarmKey } from '../../daemon/net/private-swarm.js'

/** Rewrite part of a stopped daemon's config file. */
async function reconfigure (d: DaemonProcess, patch: Record<string, unknown>): Promise<void> {
  const path = join(d.opts.dataDir, 'config.json')
  await writeFile(path, JSON.stringify({ ...JSON.parse(await readFile(path, 'utf8')), ...patch }, null, 2))
}

describe('private swarm (real daemons on loopback)', function () {
  this.timeout(180_000)
  const fx = daemonFixture('herald-pnet-')

  it('should let only nodes holding the swarm key connect and fetch', async () => {
    const input = join(fx.dir, 'in')
    await generateRelease({ seed: 81, entries: 800, dir: input })
    const keyFile = join(fx.dir, 'swarm.key')
    const otherKey = join(fx.dir, 'other.key')
    await writeFile(keyFile, formatSwarmKey(randomBytes(32)))
    await writeFile(otherKey, formatSwarmKey(randomBytes(32)))
    const seed = await fx.start('seed', { seed: true, config: { swarm: { keyFile } } })
    const published = await seed.client.publish({ name: 'private@1', dir: input })
    const trust = [await seed.publisherKey()]

    const member = await fx.start('member', { bootstrap: seed.listen, trust, config: { swarm: { keyFile } } })
    const got = await member.fetch('private@1')
    expect(got.state, JSON.stringify(got.error)).to.equal('done')
    expect(got.manifestCid).to.equal(published.manifestCid)

    const outsider = await fx.start('outsider', { bootstrap: seed.listen, trust })
    const wrongKey = await fx.start('wrong-key', { bootstrap: seed.listen, trust, config: { swarm: { keyFile: otherKey } } })
    for (const d of [outsider, wrongKey]) {
      const refused = await d.fetch('private@1')
      expect(refused.state).to.equal('failed')
      expect(refused.error?.code).to.equal('RELEASE_NOT_FOUND')
      expect(await d.client.peers()).to.deep.equal([])
    }
    const seedPeers = (await seed.client.peers()).map(p => p.peerId)
    expect(seedPeers).to.include(member.peerId)
    expect(seedPeers).to.not.include(outsider.peerId)
    expect(seedPeers).to.not.include(wrongKey.peerId)
    // the seed still serves its members after refusing the others
    const member2 = await fx.start('member2', { bootstrap: seed.listen, trust, config: { swarm: { keyFile } } })
    expect((await member2.fetch('private@1')).state).to.equal('done')
  })

  it('should refuse to start with a malformed or missing swarm key file, and start again once it is fixed', async () => {
    const bad = join(fx.dir, 'bad.key')
    await writeFile(bad, 'not a key\n')
    const d = await fx.start('lab')
    const peerId = d.peerId
    await d.stop()
    for (const keyFile of [bad, join(fx.dir, 'missing.key')]) {
      await reconfigure(d, { swarm: { keyFile } })
      const err = await d.launch().then(() => undefined, (e: Error) => e)
      expect(err?.message).to.match(keyFile === bad ? /not a swarm key/ : /cannot read .*ENOENT/)
    }
    await reconfigure(d, { swarm: { keyFile: join(fx.dir, 'good.key') } })
    await writeFile(join(fx.dir, 'good.key'), formatSwarmKey(randomBytes(32)))
    await d.launch()
    expect(d.peerId).to.equal(peerId)
  })

  it('should refuse peers that are not on the allow-list at connection time', async () => {
    const input = join(fx.dir, 'in')
    await generateRelease({ seed: 82, entries: 500, dir: input })
    // peer IDs exist from the first start: start the labs once to learn them
    const allowed = await fx.start('allowed')
    const other = await fx.start('other')
    await Promise.all([allowed.stop(), other.stop()])
    const seed = await fx.start('seed', { seed: true, config: { swarm: { allowPeers: [allowed.peerId] } } })
    await seed.client.publish({ name: 'listed@1', dir: input })
    const trust = [await seed.publisherKey()]
    for (const d of [allowed, other]) {
      await reconfigure(d, { bootstrap: seed.listen, trustedPublishers: trust })
      await d.launch()
    }
    expect((await allowed.fetch('listed@1')).state).to.equal('done')
    const refused = await other.fetch('listed@1')
    expect(refused.state).to.equal('failed')
    expect(refused.error?.code).to.equal('RELEASE_NOT_FOUND')
    const seedPeers = (await seed.client.peers()).map(p => p.peerId)
    expect(seedPeers).to.include(allowed.peerId)
    expect(seedPeers).to.not.include(other.peerId)
  })
})
