// The per-host inbound connection cap (a libp2p connection gater).
import { expect } from 'chai'
import { multiaddr } from '@multiformats/multiaddr'
import { HostConnectionLimit, hostKey } from '../../daemon/node/host-limit.js'

/** the part of a MultiaddrConnection the gater uses */
function conn (addr: string): any {
  const target = new EventTarget() as any
  target.remoteAddr = multiaddr(addr)
  target.status = 'open'
  target.close = () => { target.status = 'closed'; target.dispatchEvent(new Event('close')) }
  return target
}

describe('HostConnectionLimit', () => {
  it('should refuse a host over its cap, count until close, and leave other hosts alone', () => {
    const limit = new HostConnectionLimit(2)
    const a = [conn('/ip4/10.0.0.1/tcp/1'), conn('/ip4/10.0.0.1/tcp/2'), conn('/ip4/10.0.0.1/tcp/3')]
    expect(a.map(c => limit.denyInboundConnection(c))).to.deep.equal([false, false, true])
    expect(limit.denyInboundConnection(conn('/ip4/10.0.0.2/tcp/1'))).to.equal(false)
    expect(limit.openFrom('10.0.0.1')).to.equal(2)
    a[0].close()
    a[0].close()
    expect(limit.openFrom('10.0.0.1')).to.equal(1)
    expect(limit.denyInboundConnection(conn('/ip4/10.0.0.1/tcp/4'))).to.equal(false)
    expect(limit.refused).to.equal(1)
  })

  it('should count an IPv6 /64 as one host and IPv4-mapped addresses as IPv4', () => {
    expect(hostKey('2001:db8:1:2:aaaa::1')).to.equal(hostKey('2001:0db8:0001:0002:ffff:1:2:3'))
    expect(hostKey('2001:db8:1:2::1')).to.not.equal(hostKey('2001:db8:1:3::1'))
    expect(hostKey('::ffff:192.0.2.7')).to.equal('192.0.2.7')
    const limit = new HostConnectionLimit(1)
    expect(limit.denyInboundConnection(conn('/ip6/2001:db8:1:2::5/tcp/1'))).to.equal(false)
    expect(limit.denyInboundConnection(conn('/ip6/2001:db8:1:2::6/tcp/1'))).to.equal(true)
  })
})
