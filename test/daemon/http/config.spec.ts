// The `http` section of heraldd's configuration: off by default, bound only where configured, TLS files
// in pairs, unknown keys refused.
import { expect } from 'chai'
import { parseConfig } from '../../../daemon/config.js'

describe('config: http', () => {
  it('should leave the chunk listener off by default, on loopback port 4481 when enabled', () => {
    const c = parseConfig({ dataDir: '/tmp/x' })
    expect(c.http).to.deep.equal({ enabled: false, host: '127.0.0.1', port: 4481 })
    expect(parseConfig({ dataDir: '/tmp/x', http: { enabled: true } }).http).to.deep.equal({ enabled: true, host: '127.0.0.1', port: 4481 })
  })

  it('should take a certificate and a key only together', () => {
    const ok = parseConfig({ dataDir: '/tmp/x', http: { enabled: true, tlsCert: '/c.pem', tlsKey: '/k.pem' } })
    expect(ok.http.tlsCert).to.equal('/c.pem')
    expect(() => parseConfig({ dataDir: '/tmp/x', http: { enabled: true, tlsCert: '/c.pem' } })).to.throw(/tlsCert and tlsKey go together/)
  })

  it('should refuse unknown keys and out-of-range ports with INVALID_CONFIG', () => {
    for (const http of [{ enabeld: true }, { port: 70_000 }, { host: 3 }]) {
      try {
        parseConfig({ dataDir: '/tmp/x', http })
        expect.fail(`accepted ${JSON.stringify(http)}`)
      } catch (err: any) {
        expect(err.code).to.equal('INVALID_CONFIG')
      }
    }
  })
})
