import { expect } from 'chai'
import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { EventBus } from '../../../daemon/events/bus.js'
import { PostSwitchHook } from '../../../daemon/events/hook.js'
import { createEventsMetrics } from '../../../daemon/events/metrics.js'
import { Webhooks } from '../../../daemon/events/webhooks.js'

const SECRET = 'a-shared-secret-of-some-length'

interface Received { headers: IncomingHttpHeaders, body: string, status: number }

/** A real HTTP receiver answering each request with the next status of `statuses` (then 200); `wait(n)` resolves at n requests. */
async function receiver (statuses: number[] = [], hangFirst = false): Promise<{ url: string, got: Received[], wait: (n: number) => Promise<void>, server: Server }> {
  const got: Received[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  let hung = !hangFirst
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (!hung) { hung = true; return } // never answers: the sender's timeout must end it
      const status = statuses.shift() ?? 200
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString(), status })
      res.writeHead(status).end()
      for (const w of waiters.filter(w => got.length >= w.n)) { waiters.splice(waiters.indexOf(w), 1); w.resolve() }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as any).port as number
  return {
    url: `http://127.0.0.1:${port}/hook?token=x`,
    got,
    server,
    wait: async (n) => { if (got.length >= n) return; await new Promise<void>(resolve => waiters.push({ n, resolve })) }
  }
}

function sig (body: string): string { return 'sha256=' + createHmac('sha256', SECRET).update(body).digest('hex') }

async function counter (registry: Registry, name: string, labels: string): Promise<number> {
  const text = await registry.metrics()
  const line = text.split('\n').find(l => l.startsWith(`${name}{${labels}}`))
  return line != null ? Number(line.split(' ').pop()) : 0
}

describe('webhooks', function () {
  this.timeout(20_000)
  const closers: Array<() => Promise<void>> = []
  afterEach(async () => { for (const c of closers.splice(0)) await c() })

  it('should POST each event as JSON signed with HMAC-SHA256 over the body, in order', async () => {
    const r = await receiver()
    closers.push(async () => { r.server.closeAllConnections(); r.server.close() })
    const hooks = new Webhooks({ targets: [{ url: r.url, secret: SECRET }] })
    closers.push(async () => { await hooks.stop() })
    const bus = new EventBus({ peerId: 'p1' })
    bus.subscribe(e => { hooks.enqueue(e) })
    bus.publish({ type: 'release.fetched', release: 'u@1', dataset: 'u', version: '1', origin: 'fetch' })
    bus.publish({ type: 'release.switched', release: 'u@1', dataset: 'u', version: '1', path: '/r/u/1', origin: 'fetch' })
    await r.wait(2)
    expect(r.got.map(g => JSON.parse(g.body).type)).to.deep.equal(['release.fetched', 'release.switched'])
    for (const g of r.got) {
      expect(g.headers['content-type']).to.equal('application/json')
      expect(g.headers['x-herald-signature-256']).to.equal(sig(g.body))
      expect(g.headers['x-herald-delivery']).to.match(/^p1-\d+$/)
    }
    // a receiver with another secret would not accept it
    expect(r.got[0].headers['x-herald-signature-256']).to.not.equal('sha256=' + createHmac('sha256', 'another-secret-xxxxxx').update(r.got[0].body).digest('hex'))
  })

  it('should retry with backoff when the receiver answers 500 or hangs, and give up on a 4xx', async () => {
    const r = await receiver([500, 503], true)
    closers.push(async () => { r.server.closeAllConnections(); r.server.close() })
    const registry = new Registry()
    const metrics = createEventsMetrics(registry)
    const hooks = new Webhooks({ targets: [{ url: r.url, secret: SECRET, backoffMs: 50, timeoutMs: 500, maxAttempts: 5 }], metrics })
    closers.push(async () => { await hooks.stop() })
    const bus = new EventBus({ peerId: 'p1' })
    bus.subscribe(e => { hooks.enqueue(e) })
    const t0 = Date.now()
    bus.publish({ type: 'release.failed', release: 'u@2', dataset: 'u', version: '2', origin: 'fetch', error: { code: 'NO_SOURCE', message: 'x' } })
    await r.wait(3)
    // the hung attempt, then 500, then 503, then 200: four attempts, one delivery id
    expect(r.got.map(g => g.status)).to.deep.equal([500, 503, 200])
    expect(new Set(r.got.map(g => g.headers['x-herald-delivery'])).size).to.equal(1)
    expect(Date.now() - t0).to.be.greaterThan(500 + 50 + 100)
    await hooks.idle()
    expect(await counter(registry, 'herald_webhook_deliveries_total', 'result="retry"')).to.equal(3)
    expect(await counter(registry, 'herald_webhook_deliveries_total', 'result="ok"')).to.equal(1)

    const r4 = await receiver([404])
    closers.push(async () => { r4.server.closeAllConnections(); r4.server.close() })
    const registry4 = new Registry()
    const h4 = new Webhooks({ targets: [{ url: r4.url, secret: SECRET, backoffMs: 10 }], metrics: createEventsMetrics(registry4) })
    h4.enqueue(bus.publish({ type: 'release.fetched', release: 'u@2', dataset: 'u', version: '2', origin: 'fetch' }))
    await r4.wait(1)
    await h4.idle()
    expect(r4.got).to.have.length(1)
    expect(await counter(registry4, 'herald_webhook_deliveries_total', 'result="failed"')).to.equal(1)
  })

  it('should never block the publisher and drop past its queue bound, counting the drops', async () => {
    const registry = new Registry()
    // nothing listens on this port: each delivery fails and backs off
    const hooks = new Webhooks({ targets: [{ url: 'http://127.0.0.1:9/x', secret: SECRET, queueMax: 3, backoffMs: 60_000 }], metrics: createEventsMetrics(registry) })
    closers.push(async () => { await hooks.stop() })
    const bus = new EventBus({ peerId: 'p1' })
    bus.subscribe(e => { hooks.enqueue(e) })
    const t0 = performance.now()
    for (let i = 0; i < 10; i++) bus.publish({ type: 'release.fetched', release: `u@${i}`, dataset: 'u', version: String(i), origin: 'fetch' })
    expect(performance.now() - t0).to.be.lessThan(50)
    expect(hooks.backlog).to.equal(3)
    expect(await counter(registry, 'herald_webhook_deliveries_total', 'result="dropped"')).to.equal(7)
  })

  it('should turn release announcements into release.available events', () => {
    const bus = new EventBus({ peerId: 'p' })
    let announce: (r: { dataset: string, version: string, manifestCid: string }) => void = () => {}
    const stop = bus.attachAvailable({ onReleaseAvailable: (l) => { announce = l; return () => { announce = () => {} } } })
    announce({ dataset: 'u', version: '7', manifestCid: 'bafy-x' })
    stop()
    announce({ dataset: 'u', version: '8', manifestCid: 'bafy-y' })
    expect(bus.since().map(e => `${e.type} ${e.release} ${e.manifestCid ?? ''} ${e.origin}`)).to.deep.equal(['release.available u@7 bafy-x announce'])
  })

  it('should replay buffered events after a Last-Event-ID', () => {
    const bus = new EventBus({ peerId: 'p', bufferSize: 3 })
    for (let i = 1; i <= 5; i++) bus.publish({ type: 'release.fetched', release: `u@${i}`, dataset: 'u', version: String(i), origin: 'fetch' })
    expect(bus.since(3).map(e => e.id)).to.deep.equal([4, 5])
    expect(bus.since().map(e => e.id)).to.deep.equal([3, 4, 5])
  })
})

describe('post-switch hook', function () {
  this.timeout(20_000)
  let dir = ''
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-hook-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should run the command with the release in its environment, count a failure and kill it at its time limit', async () => {
    const registry = new Registry()
    const metrics = createEventsMetrics(registry)
    const out = join(dir, 'out.txt')
    const bus = new EventBus({ peerId: 'p' })
    const ok = new PostSwitchHook({ command: ['sh', '-c', `echo "$HERALD_RELEASE $HERALD_RELEASE_PATH $HERALD_PREVIOUS_VERSION" >> ${out}`], metrics })
    ok.enqueue(bus.publish({ type: 'release.switched', release: 'u@2', dataset: 'u', version: '2', path: '/srv/u/2', previous: '1', origin: 'rollback' }))
    ok.enqueue(bus.publish({ type: 'release.fetched', release: 'u@3', dataset: 'u', version: '3', origin: 'fetch' }))
    await ok.stop()
    expect(await readFile(out, 'utf8')).to.equal('u@2 /srv/u/2 1\n')

    const failing = new PostSwitchHook({ command: ['sh', '-c', 'exit 3'], metrics })
    failing.enqueue(bus.publish({ type: 'release.switched', release: 'u@2', dataset: 'u', version: '2', origin: 'fetch' }))
    await failing.stop()
    const slow = new PostSwitchHook({ command: ['sleep', '30'], timeoutMs: 200, metrics })
    const t0 = Date.now()
    slow.enqueue(bus.publish({ type: 'release.switched', release: 'u@2', dataset: 'u', version: '2', origin: 'fetch' }))
    await slow.stop()
    expect(Date.now() - t0).to.be.lessThan(5_000)
    expect(await counter(registry, 'herald_hook_runs_total', 'result="ok"')).to.equal(1)
    expect(await counter(registry, 'herald_hook_runs_total', 'result="failed"')).to.equal(1)
    expect(await counter(registry, 'herald_hook_runs_total', 'result="timeout"')).to.equal(1)
  })
})
