// LAN discovery by mDNS on real daemons: two daemons on one LAN (a bridge in a network namespace, the
// only way to have multicast between processes without touching the host's interfaces), with no
// bootstrap address, find each other and trade a release; a daemon with mDNS off is not found.
import { expect } from 'chai'
import { join } from 'node:path'
import { daemonFixture, type DaemonProcess } from '../helpers/daemon-process.js'
import { NetLab, netnsUnavailable } from '../helpers/netns.js'
import { generateRelease } from '../fixtures/release-gen.js'

/** Poll a daemon's peer list until it holds `peerId` (bounded). */
async function waitPeer (d: DaemonProcess, peerId: string, timeoutMs: number): Promise<number> {
  const started = Date.now()
  while (Date.now() - started < timeoutMs) {
    if ((await d.client.peers()).some(p => p.peerId === peerId)) return Date.now() - started
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  throw new Error(`${d.peerId} did not find ${peerId} in ${timeoutMs} ms`)
}

describe('mDNS discovery (real daemons on a namespace LAN)', function () {
  this.timeout(180_000)
  const fx = daemonFixture('herald-mdns-')
  let lab: NetLab | undefined
  let unavailable: string | undefined

  before(async function () {
    unavailable = await netnsUnavailable()
    if (unavailable != null) {
      console.log(`      skipped: ${unavailable}`)
      this.skip()
    }
  })
  afterEach(async () => { await lab?.destroy(); lab = undefined })

  it('should let two daemons with no bootstrap find each other on the LAN and fetch', async () => {
    lab = new NetLab()
    const subnet = `10.${100 + Math.floor(Math.random() * 50)}.0`
    const sw = await lab.switch('lan')
    const hosts: Array<{ ns: string, addr: string, api: string }> = []
    for (const [i, role] of ['a', 'b', 'c'].entries()) {
      const ns = await lab.namespace(role)
      const addr = `${subnet}.${i + 2}`
      await lab.attach(ns, sw, 'lan0', `${addr}/24`)
      // multicast leaves by the LAN interface (there is no default route)
      await lab.exec(ns, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lan0')
      hosts.push({ ns, addr, api: await lab.management(ns) })
    }
    const input = join(fx.dir, 'in')
    await generateRelease({ seed: 91, entries: 600, dir: input })
    const mdns = { mdns: true, mdnsIntervalMs: 1_000 }
    const at = (h: { ns: string, addr: string, api: string }, discovery: object): object => ({
      netns: h.ns, host: h.addr, config: { api: { host: h.api, port: 0 }, discovery }
    })
    const a = await fx.start('a', { seed: true, ...at(hosts[0], mdns) })
    const published = await a.client.publish({ name: 'lan@1', dir: input })
    const b = await fx.start('b', { trust: [await a.publisherKey()], ...at(hosts[1], mdns) })
    const c = await fx.start('c', { ...at(hosts[2], { mdns: false }) })

    const foundMs = await waitPeer(b, a.peerId, 30_000)
    console.log(`      b found a by mDNS ${foundMs} ms after its start`)
    const got = await b.fetch('lan@1')
    expect(got.state, JSON.stringify(got.error)).to.equal('done')
    expect(got.manifestCid).to.equal(published.manifestCid)
    // c answers no mDNS queries and asks none: after several query intervals nobody knows it
    await waitPeer(a, b.peerId, 10_000)
    for (const d of [a, b]) expect((await d.client.peers()).map(p => p.peerId)).to.not.include(c.peerId)
    expect(await c.client.peers()).to.deep.equal([])
  })
})
