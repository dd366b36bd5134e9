import { expect } from 'chai'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, parseConfig } from '../../daemon/config.js'

describe('config', () => {
  let dir: string

  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-config-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should fill defaults', () => {
    const c = parseConfig({ dataDir: dir })
    expect(c.api).to.deep.equal({ host: '127.0.0.1', port: 7480, allowedHosts: [] })
    expect(c.listen).to.deep.equal(['/ip4/0.0.0.0/tcp/4480'])
    expect(c.limits.batchSize).to.equal(8)
    expect(c.seed).to.equal(false)
  })

  it('should reject unknown keys at any depth with a message naming them', () => {
    expect(() => parseConfig({ dataDir: dir, lisen: [] })).to.throw(/lisen/)
    expect(() => parseConfig({ dataDir: dir, limits: { batchsize: 3 } })).to.throw(/batchsize/)
  })

  it('should reject values of the wrong type with code INVALID_CONFIG', () => {
    try {
      parseConfig({ dataDir: dir, api: { port: 'eighty' } })
      expect.fail('accepted')
    } catch (err: any) {
      expect(err.code).to.equal('INVALID_CONFIG')
      expect(err.message).to.match(/api\.port/)
    }
  })

  it('should apply flags over environment over file over defaults', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ api: { port: 1111 }, metrics: { port: 2222 }, log: { level: 'debug' } }))
    const env = { HERALD_API_PORT: '3333', HERALD_LOG_LEVEL: 'warn' }
    const c = loadConfig({ dataDir: dir, logLevel: 'error' }, env)
    expect(c.api.port).to.equal(3333)
    expect(c.metrics.port).to.equal(2222)
    expect(c.log.level).to.equal('error')
    expect(c.dataDir).to.equal(dir)
  })

  it('should reject an unknown HERALD_ environment variable and a malformed file', async () => {
    expect(() => loadConfig({ dataDir: dir }, { HERALD_APIPORT: '1' })).to.throw(/HERALD_APIPORT/)
    await writeFile(join(dir, 'config.json'), '{ not json')
    expect(() => loadConfig({ dataDir: dir }, {})).to.throw(/not valid JSON/)
  })
})

describe('config: values that would fail later are refused at start', () => {
  let dir: string
  const key = 'ed25519:' + Buffer.alloc(32, 7).toString('base64url')

  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-config-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  function problem (fn: () => unknown): Error & { code?: string } {
    try {
      fn()
    } catch (err: any) {
      return err
    }
    throw new Error('accepted')
  }

  it('should refuse a config file named by --config or HERALD_CONFIG that does not exist, but not a missing default one', () => {
    const byFlag = problem(() => loadConfig({ dataDir: dir, config: join(dir, 'nope.json') }, {}))
    expect(byFlag.code).to.equal('INVALID_CONFIG')
    expect(byFlag.message).to.equal(`config file ${join(dir, 'nope.json')} (--config) does not exist`)
    expect(problem(() => loadConfig({ dataDir: dir }, { HERALD_CONFIG: join(dir, 'nope.json') })).message).to.match(/\(HERALD_CONFIG\) does not exist/)
    expect(loadConfig({ dataDir: dir }, {}).dataDir).to.equal(dir)
  })

  it('should refuse a trusted key that does not parse, and a key file that does not hold one', async () => {
    expect(parseConfig({ dataDir: dir, trustedPublishers: [key] }).trustedPublishers).to.deep.equal([key])
    const bad = problem(() => parseConfig({ dataDir: dir, trustedPublishers: [key, 'ed25519:notakey'] }))
    expect(bad.code).to.equal('INVALID_CONFIG')
    expect(bad.message).to.match(/trustedPublishers\.1: "ed25519:notakey" is not a publisher key .*32 bytes/)
    await writeFile(join(dir, 'pub.key'), 'this is not a key\n')
    expect(problem(() => parseConfig({ dataDir: dir, trustedPublishers: [join(dir, 'pub.key')] })).message).to.match(/key file .*pub\.key does not hold a publisher key/)
    expect(problem(() => parseConfig({ dataDir: dir, trustedPublishers: [join(dir, 'absent.pub')] })).message).to.match(/cannot read key file .*absent\.pub: ENOENT/)
    await writeFile(join(dir, 'good.pub'), key + '\n')
    expect(parseConfig({ dataDir: dir, trustedPublishers: [join(dir, 'good.pub')] }).trustedPublishers).to.have.length(1)
    // scoped entries: NAMES=KEY and NAMES=FILE
    expect(parseConfig({ dataDir: dir, trustedPublishers: [`uniprot=${key}`, `ncbi-*=${join(dir, 'good.pub')}`] }).trustedPublishers).to.have.length(2)
    expect(problem(() => parseConfig({ dataDir: dir, trustedPublishers: [`Bad Name=${key}`] })).message).to.match(/not a dataset name or pattern/)
  })

  it('should refuse listen, announce and bootstrap entries that are not multiaddrs, with the multiaddr to write', () => {
    const listen = problem(() => parseConfig({ dataDir: dir, listen: ['127.0.3.4:23031'] }))
    expect(listen.code).to.equal('INVALID_CONFIG')
    expect(listen.message).to.match(/listen\.0: "127\.0\.3\.4:23031" is not a multiaddr: .* \(write \/ip4\/127\.0\.3\.4\/tcp\/23031\)/)
    expect(problem(() => parseConfig({ dataDir: dir, bootstrap: ['/dns4/ok.example.org/tcp/4480', 'seed.example.org:4480'] })).message)
      .to.match(/bootstrap\.1: .*\(write \/dns4\/seed\.example\.org\/tcp\/4480\)/)
    expect(problem(() => parseConfig({ dataDir: dir, announce: ['/ip4/1.2.3.999/tcp/1'] })).message).to.match(/announce\.0/)
    expect(parseConfig({ dataDir: dir, bootstrap: ['/dns4/seed.example.org/tcp/4480'] }).bootstrap).to.have.length(1)
  })

  it('should name every unknown HERALD_ variable, not only the first', () => {
    const err = problem(() => loadConfig({ dataDir: dir }, { HERALD_APIPORT: '1', HERALD_LISTN: 'x', HERALD_DATA_DIR: dir }))
    expect(err.message).to.match(/^unknown environment variables HERALD_APIPORT, HERALD_LISTN \(known:/)
  })

  it('should take fetch.outRoots only as absolute paths', () => {
    expect(parseConfig({ dataDir: dir, fetch: { outRoots: ['/srv/data'] } }).fetch.outRoots).to.deep.equal(['/srv/data'])
    expect(problem(() => parseConfig({ dataDir: dir, fetch: { outRoots: ['data'] } })).message).to.match(/fetch\.outRoots\.0: must be an absolute path/)
  })
})
