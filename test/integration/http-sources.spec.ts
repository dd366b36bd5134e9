// Chunks between peers over HTTP and from static origins, with real heraldd processes on loopback: a node
// with http.enabled announces its listener (/ip4/…/tcp/N/http) through identify and labs fetch bulk from it;
// a corrupt HTTP peer is caught by the CID check and penalised; fetch.httpPeers=false keeps bulk on libp2p;
// a lab whose seed is down fetches record, manifest and chunks from a Debian nginx serving `herald export`.
import { expect } from 'chai'
import { createServer, request as httpRequest, type Server } from 'node:http'
import { type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { freePort, startNginx } from '../helpers/nginx.js'
import { metricSum } from '../helpers/progress.js'
import { generateRelease } from '../fixtures/release-gen.js'

describe('HTTP sources (real daemons on loopback)', function () {
  this.timeout(240_000)
  let dir: string
  const daemons: DaemonProcess[] = []
  const servers: Server[] = []
  let nginx: ChildProcess | undefined

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-httpsrc-'))
  })

  afterEach(async () => {
    if (nginx != null && nginx.exitCode == null) {
      const exited = new Promise(resolve => nginx!.once('exit', resolve))
      nginx.kill('SIGTERM')
      await exited
    }
    nginx = undefined
    for (const s of servers) { s.closeAllConnections(); await new Promise(resolve => s.close(resolve)) }
    servers.length = 0
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  async function start (name: string, opts: Partial<Parameters<typeof DaemonProcess.start>[0]> = {}): Promise<DaemonProcess> {
    const d = await DaemonProcess.start({ dataDir: join(dir, name), ...opts })
    daemons.push(d)
    return d
  }

  /** a seed serving HTTP on a fixed loopback port (announced to peers), with a published release */
  async function httpSeed (entries = 6_000, http = true): Promise<{ seed: DaemonProcess, input: string, port: number }> {
    const input = join(dir, 'in')
    await generateRelease({ seed: 44, entries, dir: input })
    const port = await freePort()
    // super-seeding off: one lab asks over two paths (libp2p probes, then HTTP), which the hand-out policy
    // would see as two clients; the policy itself is tested in test/daemon/http/server.spec.ts
    const seed = await start('seed', { seed: true, config: { superSeed: false, http: { enabled: http, host: '127.0.0.1', port } } })
    await seed.client.publish({ name: 'web@1', dir: input })
    return { seed, input, port }
  }

  it('should fetch bulk over the HTTP listener the seed announces, and keep it on libp2p when fetch.httpPeers is false', async () => {
    const { seed, port } = await httpSeed()
    expect(seed.httpUrl).to.equal(`http://127.0.0.1:${port}`)
    const trust = [await seed.publisherKey()]
    // the lab serves over HTTP too once it holds the release
    const lab = await start('lab', { bootstrap: seed.listen, trust, config: { http: { enabled: true, host: '127.0.0.1', port: await freePort() } } })
    const done = await lab.fetch('web@1')
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    expect((await lab.client.verify('web@1')).ok).to.equal(true)
    const httpSent = await metricSum(seed, 'herald_serve_http_sent_bytes_total')
    const served = (await seed.client.status()).served
    // the bulk went over HTTP: only the first probes (and the manifest) over libp2p
    expect(httpSent, `HTTP ${httpSent} of ${served} bytes served`).to.be.greaterThan(0.8 * served)
    // a lab that keeps bulk on libp2p (private data) sends no request to either HTTP listener
    const priv = await start('private', { bootstrap: [...seed.listen, ...lab.listen], trust, config: { fetch: { httpPeers: false } } })
    const done2 = await priv.fetch('web@1')
    expect(done2.state, JSON.stringify(done2.error)).to.equal('done')
    expect(done2.wireBytes.seed + done2.wireBytes.peer).to.be.greaterThan(0)
    expect(await metricSum(seed, 'herald_serve_http_sent_bytes_total')).to.equal(httpSent)
    expect(await metricSum(lab, 'herald_serve_http_sent_bytes_total')).to.equal(0)
    const servedAfter = (await seed.client.status()).served + (await lab.client.status()).served
    expect(servedAfter - served, 'the private lab was served over libp2p').to.be.at.least(0.99 * (done2.wireBytes.seed + done2.wireBytes.peer))
  })

  it('should penalise a peer whose HTTP listener sends bytes that fail the CID check, and complete from the seed', async () => {
    const { seed, port: seedPort } = await httpSeed(3_000)
    const trust = [await seed.publisherKey()]
    // a proxy in front of the seed's listener that flips one byte of every chunk: right size, wrong bytes
    let corrupted = 0
    const proxy = createServer((req, res) => {
      const up = httpRequest({ host: '127.0.0.1', port: seedPort, path: req.url, method: req.method, headers: { accept: 'application/vnd.ipld.raw' } }, upRes => {
        const parts: Buffer[] = []
        upRes.on('data', (b: Buffer) => parts.push(b))
        upRes.on('end', () => {
          const body = Buffer.concat(parts)
          if (upRes.statusCode === 200 && body.length > 0) { body[body.length >> 1] ^= 0xff; corrupted++ }
          res.writeHead(upRes.statusCode ?? 502, { 'content-type': 'application/vnd.ipld.raw', 'content-length': body.length })
          res.end(body)
        })
      })
      up.on('error', () => { res.destroy() })
      up.end()
    })
    servers.push(proxy)
    const proxyPort = await new Promise<number>(resolve => proxy.listen(0, '127.0.0.1', () => { resolve((proxy.address() as any).port) }))
    // a peer that holds the release and announces the corrupting proxy as its HTTP listener
    const liar = await start('liar', { bootstrap: seed.listen, trust, config: { http: { enabled: true, host: '127.0.0.1', port: await freePort(), announce: [`/ip4/127.0.0.1/tcp/${proxyPort}/http`] } } })
    expect((await liar.fetch('web@1')).state).to.equal('done')
    // the lab knows the liar first and the seed by configuration (asked after the seed deadline)
    const lab = await start('lab', { bootstrap: [...liar.listen, ...seed.listen], trust, config: { seeds: [seed.peerId] } })
    const done = await lab.fetch('web@1')
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    expect((await lab.client.verify('web@1')).ok).to.equal(true)
    expect(corrupted, 'the corrupting listener was asked').to.be.greaterThan(0)
    expect(await metricSum(lab, 'herald_peer_errors_total', { kind: 'bad_hash' })).to.be.at.least(1)
    expect(await metricSum(lab, 'herald_peer_penalties_total')).to.be.at.least(1)
    const liarInfo = (await lab.client.peers()).find(p => p.peerId === liar.peerId)
    expect(liarInfo?.penalties, 'the liar is penalised').to.be.at.least(1)
    expect((await lab.client.peers()).find(p => p.peerId === seed.peerId)?.penalties ?? 0).to.equal(0)
  })

  it('should fetch a release from an nginx origin serving `herald export` while the seed is down, and refuse a record whose signature fails', async () => {
    const { seed } = await httpSeed(4_000, false)
    const trust = [await seed.publisherKey()]
    const exported = join(dir, 'export')
    const result = await seed.client.exportRelease('web@1', exported)
    expect(result.chunks).to.be.greaterThan(1)
    const web = await startNginx(dir, exported)
    nginx = web.child
    const bootstrap = seed.listen
    await seed.stop()
    // the lab knows only the (down) seed and the origin
    const lab = await start('lab', { bootstrap, trust, config: { origins: [web.url] } })
    const done = await lab.fetch('web@1', 180_000)
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    expect((await lab.client.verify('web@1')).ok).to.equal(true)
    // every byte came from the origin (counted with the seed: the publisher's copy), none from peers
    expect(done.wireBytes.peer).to.equal(0)
    expect(done.wireBytes.seed).to.be.greaterThan(0)
    // a record altered on the origin does not verify: nothing is fetched
    const recordPath = join(exported, 'herald', 'releases', 'web', '1')
    const record = await readFile(recordPath)
    record[record.length - 5] ^= 0x01
    await writeFile(recordPath, record)
    const lab2 = await start('lab2', { bootstrap, trust, config: { origins: [web.url] } })
    const failed = await lab2.fetch('web@1', 60_000)
    expect(failed.state).to.equal('failed')
    expect(failed.error?.code).to.equal('RELEASE_NOT_FOUND')
    expect(failed.doneChunks).to.equal(0)
  })
})
