// Labs behind NAT, on real daemons in network namespaces: a WAN switch with the seed and a relay node,
// two NAT routers (iptables MASQUERADE, connections from the WAN refused) each with one lab behind it.
// Lab 1 fetches from the seed and becomes reachable through the relay (circuit relay v2 reservation);
// the seed goes away; lab 2, behind the other NAT, fetches the release from lab 1 through the relay.
// DCUtR (hole punching) is enabled on both labs; whether the connection became direct is reported.
import { expect } from 'chai'
import { join } from 'node:path'
import { daemonFixture } from '../helpers/daemon-process.js'
import { NetLab, netnsUnavailable } from '../helpers/netns.js'
import { generateRelease } from '../fixtures/release-gen.js'

/** Poll until `check` returns a value (bounded). */
async function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await check()
    if (value !== undefined) return value
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`)
}

describe('labs behind NAT (real daemons in namespaces, MASQUERADE routers)', function () {
  this.timeout(300_000)
  const fx = daemonFixture('herald-nat-')
  let lab: NetLab | undefined

  before(async function () {
    const unavailable = await netnsUnavailable({ iptables: true })
    if (unavailable != null) {
      console.log(`      skipped: ${unavailable}`)
      this.skip()
    }
  })
  afterEach(async () => { await lab?.destroy(); lab = undefined })

  it('should let a lab behind NAT fetch from another lab behind NAT through a relay', async () => {
    lab = new NetLab()
    const wanNet = `10.${100 + Math.floor(Math.random() * 50)}`
    const lanNet = `10.${150 + Math.floor(Math.random() * 50)}`
    const wan = await lab.switch('wan')
    const node = async (role: string, sw: string, addr: string, gateway?: string): Promise<{ ns: string, addr: string, api: string }> => {
      const ns = await lab!.namespace(role)
      await lab!.attach(ns, sw, 'eth0', `${addr}/24`)
      if (gateway != null) await lab!.route(ns, gateway)
      return { ns, addr, api: await lab!.management(ns) }
    }
    const seedHost = await node('seed', wan, `${wanNet}.0.10`)
    const relayHost = await node('relay', wan, `${wanNet}.0.11`)
    const lan1 = await lab.natRouter('r1', wan, `${wanNet}.0.2/24`, `${lanNet}.1.1/24`)
    const lan2 = await lab.natRouter('r2', wan, `${wanNet}.0.3/24`, `${lanNet}.2.1/24`)
    const lab1Host = await node('lab1', lan1, `${lanNet}.1.2`, `${lanNet}.1.1`)
    const lab2Host = await node('lab2', lan2, `${lanNet}.2.2`, `${lanNet}.2.1`)
    const at = (h: { ns: string, addr: string, api: string }, config: Record<string, any> = {}): object => ({
      netns: h.ns, host: h.addr, config: { api: { host: h.api, port: 0 }, ...config }
    })

    const input = join(fx.dir, 'in')
    await generateRelease({ seed: 101, entries: 1_500, dir: input })
    const seed = await fx.start('seed', { seed: true, ...at(seedHost) })
    const published = await seed.client.publish({ name: 'nat@1', dir: input })
    const trust = [await seed.publisherKey()]
    const relay = await fx.start('relay', { bootstrap: seed.listen, trust, ...at(relayHost, { seeds: [seed.peerId], nat: { relayServer: true } }) })
    const relayAddr = relay.listen[0]
    const nat = { relays: [relayAddr], holePunch: true, autonat: true }

    // the NAT holds: the seed cannot reach a lab's own address
    const lab1 = await fx.start('lab1', { bootstrap: seed.listen, trust, ...at(lab1Host, { seeds: [seed.peerId], nat }) })
    const first = await lab1.fetch('nat@1')
    expect(first.state, JSON.stringify(first.error)).to.equal('done')
    const circuit = await until('lab1 reachable through the relay', async () =>
      (await lab1.client.status()).listenAddrs.find(a => a.includes('/p2p-circuit')), 30_000)
    expect(circuit.startsWith(relayAddr)).to.equal(true)
    const seedSees = (await seed.client.peers()).find(p => p.peerId === lab1.peerId)
    expect(seedSees?.addrs.some(a => a.includes(`/ip4/${wanNet}.0.2/`)), 'the seed sees lab1 as its router').to.equal(true)
    await seed.stop()

    const lab1Relayed = circuit.endsWith(`/p2p/${lab1.peerId}`) ? circuit : `${circuit}/p2p/${lab1.peerId}`
    const lab2 = await fx.start('lab2', { bootstrap: [lab1Relayed], trust, ...at(lab2Host, { seeds: [seed.peerId], nat }) })
    const got = await lab2.fetch('nat@1', 180_000)
    expect(got.state, JSON.stringify(got.error)).to.equal('done')
    expect(got.manifestCid).to.equal(published.manifestCid)
    expect(got.wireBytes.seed).to.equal(0)
    expect(got.wireBytes.peer).to.be.greaterThan(0)
    const viaLab1 = (await lab2.client.peers()).find(p => p.peerId === lab1.peerId)
    expect(viaLab1?.bytesReceived ?? 0).to.be.greaterThan(0)
    const direct = viaLab1?.addrs.some(a => !a.includes('/p2p-circuit')) === true
    console.log(`      lab2 ← lab1: ${got.wireBytes.peer} bytes; connection ${direct ? 'direct (hole punched)' : 'relayed only'}: ${viaLab1?.addrs.join(', ') ?? ''}`)
  })
})
