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
