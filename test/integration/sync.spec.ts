// Desired state on real daemons: DatabaseSync documents applied by two labs (fetch, switch, pin, unpin+gc),
// a pinned manifest CID that refuses other content, an invalid document that changes nothing, the schedule
// window, SIGKILL during a reconcile; release events on /v1/events and signed webhooks with retries.
import { expect } from 'chai'
import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { access, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { daemonFixture, type DaemonProcess } from '../helpers/daemon-process.js'
import { generateNextRelease, generateRelease } from '../fixtures/release-gen.js'
import type { ReleaseEvent } from '../../daemon/events/types.js'
import type { SyncStatus } from '../../daemon/sync/types.js'

const SECRET = 'webhook-secret-for-the-test'

function doc (databases: Array<Record<string, unknown>>, policy?: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'herald.io/v1', kind: 'DatabaseSync', metadata: { name: 'lab-dbs' }, spec: { databases, ...(policy != null ? { updatePolicy: policy } : {}) } }, null, 2)
}

/** A directory laid out as the kubelet lays out a ConfigMap mount, updated by the same symlink swap. */
async function configMap (dir: string): Promise<(text: string) => Promise<void>> {
  await mkdir(dir, { recursive: true })
  let n = 0
  return async (text) => {
    const version = `..2026_12_06_${++n}`
    await mkdir(join(dir, version))
    await writeFile(join(dir, version, 'dbs.yaml'), text)
    await symlink(version, join(dir, '..data_tmp'))
    await rename(join(dir, '..data_tmp'), join(dir, '..data'))
    if (n === 1) await symlink('..data/dbs.yaml', join(dir, 'dbs.yaml'))
    else await rm(join(dir, `..2026_12_06_${n - 1}`), { recursive: true })
  }
}

/** Poll (bounded) until `check` returns a value. */
async function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (err) { last = err }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`${what}: not reached in ${timeoutMs} ms${last != null ? ` (last error: ${String((last as Error).message)})` : ''}`)
}

/** Until every entry of the lab's desired state is held and `names` are the current ones. */
async function converged (lab: DaemonProcess, current: string[], timeoutMs?: number): Promise<SyncStatus> {
  return await until(`${lab.opts.dataDir} converged on ${current.join(', ')}`, async () => {
    const s = await lab.client.syncStatus()
    const ok = s.error == null && s.entries.length > 0 && s.entries.every(e => e.state === 'held' && e.pinned) &&
      current.every(c => s.entries.find(e => e.release === c)?.current === true)
    return ok ? s : undefined
  }, timeoutMs)
}

interface Delivery { headers: IncomingHttpHeaders, body: string, status: number }

/** A webhook receiver that answers 500 to its first request, then 200. */
async function webhookReceiver (): Promise<{ url: string, got: Delivery[], server: Server }> {
  const got: Delivery[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const status = got.length === 0 ? 500 : 200
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString(), status })
      res.writeHead(status).end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as any).port as number}/herald`, got, server }
}

async function metric (lab: DaemonProcess, line: string): Promise<number> {
  const text = await (await fetch(`${lab.metricsUrl}/metrics`)).text()
  const found = text.split('\n').find(l => l.startsWith(line + ' '))
  return found != null ? Number(found.split(' ').pop()) : NaN
}

describe('desired state (real daemons on loopback)', function () {
  this.timeout(240_000)
  const fx = daemonFixture('herald-sync-')
  const servers: Server[] = []
  afterEach(() => { for (const s of servers.splice(0)) { s.closeAllConnections(); s.close() } })

  async function releases (n: number, entries = 3_000): Promise<string[]> {
    const dirs = [join(fx.dir, 'in-1')]
    await generateRelease({ seed: 7, entries, dir: dirs[0] })
    for (let i = 2; i <= n; i++) {
      dirs.push(join(fx.dir, `in-${i}`))
      await generateNextRelease(dirs[i - 2], dirs[i - 1], { seed: 7 + i, modifyFraction: 0.02, appendFraction: 0.01 })
    }
    return dirs
  }

  it('should fetch, switch and pin the listed releases on two labs, then unpin and collect the one no longer listed, with signed webhooks retried after a 500 and the post-switch hook run', async () => {
    const [v1, v2] = await releases(2)
    const seed = await fx.start('seed', { seed: true })
    const p1 = await seed.client.publish({ name: 'db@1', dir: v1 })
    const p2 = await seed.client.publish({ name: 'db@2', dir: v2 })
    const receiver = await webhookReceiver()
    servers.push(receiver.server)
    const cm = join(fx.dir, 'configmap')
    const apply = await configMap(cm)
    await apply(doc([{ name: 'db', version: '1', sha256: p1.manifestCid }]))
    const labs: DaemonProcess[] = []
    for (const name of ['lab1', 'lab2']) {
      labs.push(await fx.start(name, {
        bootstrap: seed.listen,
        trust: [await seed.publisherKey()],
        config: {
          sync: { path: cm, intervalSeconds: 2, debounceMs: 100 },
          webhooks: [{ url: receiver.url, secret: SECRET, backoffMs: 100 }],
          hooks: { postSwitch: { command: ['sh', '-c', `echo "$HERALD_RELEASE $HERALD_RELEASE_PATH" >> ${join(fx.dir, name + '.hook')}`], timeoutMs: 10_000 } }
        }
      }))
    }
    for (const lab of labs) {
      const s = await converged(lab, ['db@1'])
      expect(s.files).to.deep.equal([join(cm, 'dbs.yaml')])
      const r = (await lab.client.listReleases()).find(x => x.name === 'db@1')
      expect(r).to.deep.include({ pinned: true, current: true, complete: true, manifestCid: p1.manifestCid })
      await access(join(lab.opts.dataDir, 'releases', 'db', '1'))
    }

    // the ConfigMap now lists db@2 only (keep 1): fetched, switched, db@1 unpinned and collected
    await apply(doc([{ name: 'db', version: '2', sha256: p2.manifestCid }]))
    for (const lab of labs) {
      const s = await until('db@1 unpinned and collected', async () => {
        const st = await converged(lab, ['db@2'])
        return st.removed.includes('db@1') ? st : undefined
      })
      expect(s.entries.map(e => e.release)).to.deep.equal(['db@2'])
      const old = await until('db@1 collected', async () => {
        const r = (await lab.client.listReleases()).find(x => x.name === 'db@1')
        return r != null && !r.pinned ? r : undefined
      })
      expect(old.current).to.equal(false)
      await until('the directory of db@1 removed', async () => await access(join(lab.opts.dataDir, 'releases', 'db', '1')).then(() => undefined, () => true))
      expect(await metric(lab, 'herald_sync_desired_releases')).to.equal(1)
      expect(await metric(lab, 'herald_sync_held_releases')).to.equal(1)
      expect(await metric(lab, 'herald_sync_actions_total{action="unpin"}')).to.equal(1)
      expect(await metric(lab, 'herald_sync_last_reconcile_timestamp_seconds')).to.be.greaterThan(Date.now() / 1000 - 60)
    }

    // webhooks: every lab's fetched and switched events for both releases, each signed; the first delivery
    // was answered 500 and delivered again
    const delivered = await until('webhook deliveries', async () => {
      const ok = receiver.got.filter(d => d.status === 200)
      const want = labs.flatMap(l => ['db@1', 'db@2'].flatMap(r => ['release.fetched', 'release.switched'].map(t => `${l.peerId} ${t} ${r}`)))
      const seen = new Set(ok.map(d => { const e = JSON.parse(d.body) as ReleaseEvent; return `${e.peerId} ${e.type} ${e.release}` }))
      return want.every(w => seen.has(w)) ? ok : undefined
    }, 30_000)
    for (const d of receiver.got) {
      expect(d.headers['x-herald-signature-256']).to.equal('sha256=' + createHmac('sha256', SECRET).update(d.body).digest('hex'))
    }
    const first = receiver.got[0]
    expect(first.status).to.equal(500)
    expect(delivered.some(d => d.headers['x-herald-delivery'] === first.headers['x-herald-delivery'] && d.body === first.body), 'the refused delivery is retried').to.equal(true)

    // the post-switch hook ran on each lab with the release path in its environment
    for (const [i, lab] of labs.entries()) {
      const lines = await until('hook lines', async () => {
        const text = await readFile(join(fx.dir, `lab${i + 1}.hook`), 'utf8').catch(() => '')
        const ls = text.trim().split('\n')
        return ls.some(l => l.startsWith('db@2 ')) ? ls : undefined
      }, 30_000)
      expect(lines).to.include(`db@2 ${join(lab.opts.dataDir, 'releases', 'db', '2')}`)
    }
  })

  it('should change nothing on an invalid document, then refuse a release signed for another manifest than the pinned one', async () => {
    const [v1, v2] = await releases(2)
    const seed = await fx.start('seed', { seed: true })
    const p1 = await seed.client.publish({ name: 'db@1', dir: v1 })
    const p2 = await seed.client.publish({ name: 'db@2', dir: v2 })
    const file = join(fx.dir, 'dbs.yaml')
    await writeFile(file, `apiVersion: herald.io/v1
kind: DatabaseSync
metadata: { name: lab }
spec:
  databases:
    - { name: db, version: "1", sah256: "${p1.manifestCid}" }
`)
    const lab = await fx.start('lab', { bootstrap: seed.listen, trust: [await seed.publisherKey()], config: { sync: { path: file, intervalSeconds: 60, debounceMs: 100 } } })
    const bad = await lab.client.syncNow()
    expect(bad.error?.code).to.equal('INVALID_SYNC_DOCUMENT')
    expect(bad.error?.message).to.include(file).and.include('spec.databases[0]').and.include('sah256')
    expect(await lab.client.listReleases()).to.deep.equal([])

    // the release is signed for p1, the document pins p2's manifest: refused before any chunk moves
    const events: ReleaseEvent[] = []
    let opened!: () => void
    const open = new Promise<void>(resolve => { opened = resolve })
    const failed = lab.client.followEvents(e => { events.push(e); return e.type === 'release.failed' }, { onOpen: () => { opened() } })
    await open
    const tmp = file + '.tmp'
    await writeFile(tmp, doc([{ name: 'db', version: '1', sha256: p2.manifestCid }]))
    await rename(tmp, file)
    await failed
    const ev = events.find(e => e.type === 'release.failed')
    expect(ev?.error?.code).to.equal('MANIFEST_MISMATCH')
    expect(ev?.manifestCid).to.equal(p1.manifestCid)
    const refused = await until('entry refused', async () => {
      const s = await lab.client.syncStatus()
      return s.entries[0]?.state === 'refused' ? s.entries[0] : undefined
    })
    expect(refused.error?.code).to.equal('MANIFEST_MISMATCH')
    const r = (await lab.client.listReleases()).find(x => x.name === 'db@1')
    expect(r).to.deep.include({ pinned: false, current: false, complete: false })
    expect((await lab.client.status()).store.chunks).to.equal(0)
    await access(join(lab.opts.dataDir, 'releases', 'db', '1')).then(() => expect.fail('no directory for a refused release'), () => {})
    expect(await metric(lab, 'herald_sync_errors_total{code="MANIFEST_MISMATCH"}')).to.be.greaterThan(0)

    // the same entry with the right pin is fetched; `latest` is reported as unsupported, not guessed
    await writeFile(tmp, doc([{ name: 'db', version: '1', sha256: p1.manifestCid }]))
    await rename(tmp, file)
    await converged(lab, ['db@1'])
    await writeFile(tmp, doc([{ name: 'db', version: '1', sha256: p1.manifestCid }, { name: 'other', version: 'latest' }]))
    await rename(tmp, file)
    const s = await until('latest reported', async () => {
      const st = await lab.client.syncNow()
      return st.entries.length === 2 ? st : undefined
    })
    // a build without release announcements says so; one with them waits for a release of `other`
    if (s.entries[1].state === 'unsupported') expect(s.entries[1].error?.code).to.equal('UNSUPPORTED')
    else expect(s.entries[1]).to.deep.include({ state: 'pending', error: { code: 'RELEASE_NOT_FOUND', message: 'no release of other announced to this node yet' } })
    expect(s.entries[0].state).to.equal('held')
  })

  it('should change nothing while the schedule window is closed, and apply the document once it opens', async () => {
    const [v1] = await releases(1)
    const seed = await fx.start('seed', { seed: true })
    await seed.client.publish({ name: 'db@1', dir: v1 })
    const file = join(fx.dir, 'dbs.json')
    // a daily window twelve hours from now, an hour long: provably closed now
    const now = new Date()
    const closed = `${now.getUTCMinutes()} ${(now.getUTCHours() + 12) % 24} * * *`
    await writeFile(file, doc([{ name: 'db', version: '1' }], { schedule: closed, windowMinutes: 60, timezone: 'UTC' }))
    const lab = await fx.start('lab', { bootstrap: seed.listen, trust: [await seed.publisherKey()], config: { sync: { path: file, intervalSeconds: 60, debounceMs: 100 } } })
    const s = await lab.client.syncNow()
    expect(s.window?.open).to.equal(false)
    expect(s.window?.opensAt).to.be.greaterThan(Date.now() + 11 * 3_600_000)
    expect(s.entries[0].state).to.equal('waiting')
    expect(await lab.client.listReleases()).to.deep.equal([])
    expect((await lab.client.status()).fetches).to.deep.equal([])
    // every minute, open for five: provably open now
    await writeFile(file, doc([{ name: 'db', version: '1' }], { schedule: '* * * * *', windowMinutes: 5, timezone: 'UTC' }))
    const done = await converged(lab, ['db@1'])
    expect(done.window?.open).to.equal(true)
  })

  it('should keep a fetch\'s pinned manifest across a SIGKILL: a release re-signed for other content meanwhile is refused on resume', async () => {
    const [v1, v2] = await releases(2, 20_000)
    const seed = await fx.start('seed', { seed: true, uploadBytesPerSecond: 2_000_000 })
    const p1 = await seed.client.publish({ name: 'pin@1', dir: v1 })
    const lab = await fx.start('lab', { bootstrap: seed.listen, trust: [await seed.publisherKey()] })
    // a bad pin is refused by the API before a fetch starts
    await lab.client.startFetch({ name: 'pin@1', manifestCid: 'not-a-cid' }).then(() => expect.fail('accepted'), (err) => { expect(err.code).to.equal('INVALID_CID') })
    const started = await lab.client.startFetch({ name: 'pin@1', manifestCid: p1.manifestCid })
    await until('fetch under way', async () => {
      const p = await lab.client.getFetch(started.id)
      return p.state === 'fetching' && p.doneChunks > 0 ? p : undefined
    })
    await lab.kill()
    // the publisher replaces pin@1 with other content while the lab is down
    const replaced = await seed.client.publish({ name: 'pin@1', dir: v2, force: true })
    expect(replaced.manifestCid).to.not.equal(p1.manifestCid)
    await lab.launch()
    const resumed = (await lab.client.status()).fetches.find(f => f.name === 'pin@1')
    expect(resumed, 'the interrupted fetch is resumed').to.not.equal(undefined)
    const end = await lab.waitFetch(resumed!.id, 60_000)
    expect(end.state).to.equal('failed')
    expect(end.error?.code).to.equal('MANIFEST_MISMATCH')
    const r = (await lab.client.listReleases()).find(x => x.name === 'pin@1')
    expect(r?.current).to.equal(false)
    await access(join(lab.opts.dataDir, 'releases', 'pin', '1')).then(() => expect.fail('the replaced content must not be materialized'), () => {})
  })

  it('should converge after a SIGKILL during a reconcile-driven fetch, and a pass over a converged lab should change nothing', async () => {
    const [v1] = await releases(1, 20_000)
    const seed = await fx.start('seed', { seed: true, uploadBytesPerSecond: 2_000_000 })
    const p1 = await seed.client.publish({ name: 'big@1', dir: v1 })
    const file = join(fx.dir, 'dbs.yaml')
    await writeFile(file, doc([{ name: 'big', version: '1', sha256: p1.manifestCid }]))
    const lab = await fx.start('lab', { bootstrap: seed.listen, trust: [await seed.publisherKey()], config: { sync: { path: file, intervalSeconds: 2, debounceMs: 100 } } })
    const midway = await until('fetch under way', async () => {
      const s = await lab.client.syncStatus()
      const id = s.entries[0]?.fetchId
      if (id == null) return undefined
      const p = await lab.client.getFetch(id)
      return p.state === 'fetching' && p.doneChunks > 0 ? p : undefined
    })
    expect(midway.doneChunks).to.be.lessThan(midway.totalChunks)
    await lab.kill()
    await lab.launch()
    const s = await converged(lab, ['big@1'], 120_000)
    expect(s.entries[0].heldManifestCid).to.equal(p1.manifestCid)
    expect((await lab.client.verify('big@1')).ok).to.equal(true)
    // idempotent: more passes start no fetch and change nothing
    const fetchesBefore = await metric(lab, 'herald_sync_actions_total{action="fetch"}')
    const again = await lab.client.syncNow()
    await lab.client.syncNow()
    expect(again.entries[0].state).to.equal('held')
    expect(await metric(lab, 'herald_sync_actions_total{action="fetch"}')).to.equal(fetchesBefore)
    expect((await lab.client.status()).fetches.filter(f => f.state !== 'done')).to.deep.equal([])
  })
})
