import { expect } from 'chai'
import { parseConfig, loadConfig } from '../../../daemon/config.js'

function problem (raw: Record<string, unknown>): string {
  try {
    parseConfig({ dataDir: '/tmp/x', ...raw })
  } catch (err: any) {
    expect(err.code).to.equal('INVALID_CONFIG')
    return err.message
  }
  return expect.fail('expected INVALID_CONFIG')
}

describe('config: sync, webhooks, hooks', () => {
  it('should default to no reconciler, no webhook and no hook', () => {
    const c = parseConfig({ dataDir: '/tmp/x' })
    expect(c.sync).to.deep.equal({ intervalSeconds: 60, debounceMs: 300, maxConcurrentFetches: 2 })
    expect(c.webhooks).to.deep.equal([])
    expect(c.hooks).to.deep.equal({})
  })

  it('should refuse unknown keys, a relative sync path, a webhook without exactly one secret and a short secret', () => {
    expect(problem({ sync: { path: '/etc/s', intervalSecs: 5 } })).to.include('sync').and.include('intervalSecs')
    expect(problem({ sync: { path: 'relative/dir' } })).to.include('sync.path').and.include('absolute')
    expect(problem({ webhooks: [{ url: 'https://h/x' }] })).to.include('webhooks.0').and.include('exactly one of secret and secretFile')
    expect(problem({ webhooks: [{ url: 'https://h/x', secret: 'short' }] })).to.include('webhooks.0.secret')
    expect(problem({ webhooks: [{ url: 'ftp://h/x', secret: 'x'.repeat(16) }] })).to.include('webhooks.0.url')
    expect(problem({ webhooks: [{ url: 'https://h/x', secret: 'x'.repeat(16), events: ['release.done'] }] })).to.include('webhooks.0.events.0')
    expect(problem({ hooks: { postSwitch: { command: [] } } })).to.include('hooks.postSwitch.command')
    expect(problem({ hooks: { preSwitch: { command: ['true'] } } })).to.include('preSwitch')
  })

  it('should take the sync path from HERALD_SYNC_PATH (resolved) and --sync over the file', () => {
    const env = { HERALD_DATA_DIR: '/tmp/herald-none', HERALD_SYNC_PATH: 'dbs' }
    expect(loadConfig({}, env).sync.path).to.equal(`${process.cwd()}/dbs`)
    expect(loadConfig({ syncPath: '/etc/flag' }, env).sync.path).to.equal('/etc/flag')
  })
})
