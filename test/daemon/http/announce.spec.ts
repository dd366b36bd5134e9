import { expect } from 'chai'
import { httpAnnounceAddrs, httpUrlOf } from '../../../daemon/http/announce.js'
import { parseConfig } from '../../../daemon/config.js'

describe('HTTP listener announcement', () => {
  it('should announce the listener as /ip4/…/tcp/N/http (or /tls/http) only when enabled and at a specific address', () => {
    const base = { dataDir: '/tmp/x' }
    expect(httpAnnounceAddrs(parseConfig(base))).to.deep.equal([])
    expect(httpAnnounceAddrs(parseConfig({ ...base, http: { enabled: true, host: '10.0.0.5', port: 4481 } }))).to.deep.equal(['/ip4/10.0.0.5/tcp/4481/http'])
    expect(httpAnnounceAddrs(parseConfig({ ...base, http: { enabled: true, host: '::1', port: 4481, tlsCert: '/c', tlsKey: '/k' } }))).to.deep.equal(['/ip6/::1/tcp/4481/tls/http'])
    // a wildcard or ephemeral port says nothing a peer could dial: http.announce is needed then
    expect(httpAnnounceAddrs(parseConfig({ ...base, http: { enabled: true, host: '0.0.0.0', port: 4481 } }))).to.deep.equal([])
    expect(httpAnnounceAddrs(parseConfig({ ...base, http: { enabled: true, host: '127.0.0.1', port: 0 } }))).to.deep.equal([])
    expect(httpAnnounceAddrs(parseConfig({ ...base, http: { enabled: true, host: '0.0.0.0', port: 4481, announce: ['/dns4/lab.example.org/tcp/443/tls/http'] } }))).to.deep.equal(['/dns4/lab.example.org/tcp/443/tls/http'])
  })

  it('should read the base URL back from an announced multiaddr and ignore every other address', () => {
    expect(httpUrlOf('/ip4/10.0.0.5/tcp/4481/http')).to.equal('http://10.0.0.5:4481')
    expect(httpUrlOf('/ip4/10.0.0.5/tcp/443/tls/http')).to.equal('https://10.0.0.5:443')
    expect(httpUrlOf('/ip6/::1/tcp/8080/http')).to.equal('http://[::1]:8080')
    expect(httpUrlOf('/dns4/cdn.example.org/tcp/443/tls/http')).to.equal('https://cdn.example.org:443')
    expect(httpUrlOf('/ip4/10.0.0.5/tcp/4480')).to.equal(undefined)
    expect(httpUrlOf('/ip4/10.0.0.5/tcp/4480/p2p/12D3KooWGRUVh1hxZgVr7nqQ8BqCkWqGjnbLSj1JqFSJvsmC8cTz')).to.equal(undefined)
    expect(httpUrlOf('/ip4/10.0.0.5/udp/4481/http')).to.equal(undefined)
    expect(httpUrlOf('not a multiaddr')).to.equal(undefined)
  })

  it('should take origins only as http(s) URLs', () => {
    expect(parseConfig({ dataDir: '/tmp/x', origins: ['https://cdn.example.org/herald'] }).origins).to.deep.equal(['https://cdn.example.org/herald'])
    expect(() => parseConfig({ dataDir: '/tmp/x', origins: ['ftp://x.org/'] })).to.throw(/origin/)
    expect(() => parseConfig({ dataDir: '/tmp/x', origins: ['nope'] })).to.throw(/origins/)
  })
})
