// The chunk HTTP listener over a real LevelDB store: per-client limits, super-seeding refusals, the
// upload budget, header parsing, and the HTTPS option with a certificate made by openssl at run time.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:https'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { acceptsRaw, acceptsZstd, startChunkHttpServer, type ChunkHttpServer } from '../../../daemon/http/server.js'
import { UploadBudget } from '../../../daemon/http/upload-budget.js'
import { HttpChunkClient } from '../../../daemon/http/client.js'
import { chunkCid, sha256 } from '../../../protocol/cid.js'
import { compressChunk } from '../../../protocol/encoding/compression.js'
import { Store } from '../../../store/store.js'

const execFileP = promisify(execFile)

describe('chunk HTTP server', function () {
  this.timeout(30_000)
  let dir: string
  let store: Store
  let server: ChunkHttpServer | undefined
  const text = Buffer.from('MKVLAAGIVALLLAAGCSSHA\n'.repeat(5_000))
  const cid = chunkCid(text).toString()

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-httpd-'))
    store = await Store.open(join(dir, 'store'))
    await store.putChunk(sha256(text), text, compressChunk(text))
  })

  afterEach(async () => {
    await server?.stop()
    server = undefined
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('should answer 429 to a client past its requests-at-once limit, and serve it again once they finish', async () => {
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    let waiting = 0
    let arrived!: () => void
    const bothArrived = new Promise<void>(resolve => { arrived = resolve })
    server = await startChunkHttpServer({
      host: '127.0.0.1',
      port: 0,
      maxInflightPerClient: 2,
      getStored: async (d) => {
        if (++waiting === 2) arrived()
        await gate
        return await store.getStored(d)
      }
    })
    const url = `${server.url}/ipfs/${cid}?format=raw`
    const held = [fetch(url), fetch(url)]
    await bothArrived
    const third = await fetch(url)
    expect(third.status).to.equal(429)
    expect(third.headers.get('retry-after')).to.equal('1')
    release()
    for (const r of await Promise.all(held)) {
      expect(r.status).to.equal(200)
      expect(Buffer.from(await r.arrayBuffer()).equals(text)).to.equal(true)
    }
    expect((await fetch(url)).status).to.equal(200)
  })

  it('should refuse a chunk the super-seeding policy withholds, and count only bytes it sent', async () => {
    const served: number[] = []
    server = await startChunkHttpServer({
      host: '127.0.0.1',
      port: 0,
      getStored: async (d) => await store.getStored(d),
      policy: (_client, _digest) => served.length === 0 ? 'serve' : 'rate-limited',
      onServed: (_c, bytes) => { served.push(bytes) }
    })
    const url = `${server.url}/ipfs/${cid}?format=raw`
    const first = await fetch(url, { headers: { 'accept-encoding': 'zstd' } })
    expect(first.headers.get('content-encoding')).to.equal('zstd')
    const frame = await first.arrayBuffer()
    expect(served).to.deep.equal([frame.byteLength])
    expect((await fetch(url)).status).to.equal(429)
    expect(served.length).to.equal(1)
  })

  it('should send a decompressed block when zstd is not accepted or compression is off', async () => {
    server = await startChunkHttpServer({ host: '127.0.0.1', port: 0, compress: false, getStored: async (d) => await store.getStored(d) })
    const r = await fetch(`${server.url}/ipfs/${cid}?format=raw`, { headers: { 'accept-encoding': 'zstd' } })
    expect(r.headers.get('content-encoding')).to.equal(null)
    expect(Buffer.from(await r.arrayBuffer()).equals(text)).to.equal(true)
  })

  it('should serve over HTTPS with the configured certificate', async () => {
    await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')])
    const cert = await readFile(join(dir, 'cert.pem'))
    server = await startChunkHttpServer({ host: '127.0.0.1', port: 0, tls: { cert, key: await readFile(join(dir, 'key.pem')) }, getStored: async (d) => await store.getStored(d) })
    expect(server.url).to.match(/^https:/)
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = request(`${server!.url}/ipfs/${cid}?format=raw`, { ca: cert }, res => {
        const parts: Buffer[] = []
        res.on('data', (b: Buffer) => parts.push(b))
        res.on('end', () => { resolve(Buffer.concat(parts)) })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
    expect(body.equals(text)).to.equal(true)
    // the project's client, trusting that certificate
    const client = new HttpChunkClient({ baseUrl: server.url, ca: cert })
    try {
      const r = await client.fetchOne({ digest: sha256(text), size: text.byteLength })
      expect(r.status).to.equal('ok')
      expect(r.encoding).to.equal('zstd')
      expect(Buffer.from(r.bytes!).equals(text)).to.equal(true)
    } finally { client.close() }
    // and refusing it without
    const untrusting = new HttpChunkClient({ baseUrl: server.url })
    try {
      await untrusting.fetchOne({ digest: sha256(text), size: text.byteLength })
      expect.fail('a self-signed certificate was accepted without being trusted')
    } catch (err: any) {
      expect(err.code).to.equal('DEPTH_ZERO_SELF_SIGNED_CERT')
    } finally { untrusting.close() }
  })

  it('should close connections from one client address beyond its cap', async () => {
    server = await startChunkHttpServer({ host: '127.0.0.1', port: 0, maxConnectionsPerClient: 2, getStored: async (d) => await store.getStored(d) })
    const port = Number(new URL(server.url).port)
    const sockets = Array.from({ length: 3 }, () => connect(port, '127.0.0.1'))
    try {
      // the first two stay open and are served; the third is closed by the server without an answer
      const closed = await new Promise<boolean>(resolve => { sockets[2].once('close', () => { resolve(true) }) })
      expect(closed).to.equal(true)
      const answer = await new Promise<string>((resolve, reject) => {
        let text = ''
        sockets[0].on('data', (b: Buffer) => { text += b.toString('latin1'); if (text.includes('\r\n\r\n')) resolve(text) })
        sockets[0].once('error', reject)
        sockets[0].write(`HEAD /ipfs/${cid}?format=raw HTTP/1.1\r\nHost: x\r\n\r\n`)
      })
      expect(answer).to.match(/^HTTP\/1\.1 200/)
    } finally {
      for (const s of sockets) s.destroy()
    }
  })

  it('should parse Accept and Accept-Encoding as the trustless-gateway clients send them', () => {
    expect(acceptsRaw('application/vnd.ipld.raw')).to.equal(true)
    expect(acceptsRaw('application/vnd.ipld.car, application/vnd.ipld.raw;q=0.9')).to.equal(true)
    expect(acceptsRaw('*/*')).to.equal(true)
    expect(acceptsRaw('text/html')).to.equal(false)
    expect(acceptsRaw('application/vnd.ipld.raw;q=0')).to.equal(false)
    expect(acceptsZstd('gzip, zstd')).to.equal(true)
    expect(acceptsZstd('zstd;q=0')).to.equal(false)
    expect(acceptsZstd('*')).to.equal(false)
    expect(acceptsZstd(undefined)).to.equal(false)
  })

  it('should let a response start while the budget is not in debt, make it wait when the debt is soon paid, refuse it otherwise', () => {
    const b = new UploadBudget(1_000_000)
    expect(b.reserve(3_100_000, 2_000)).to.equal(0)
    const wait = b.reserve(10, 2_000)
    expect(wait).to.be.lessThan(0)
    expect(-wait).to.be.within(2_000, 2_200)
    const unlimited = new UploadBudget(0)
    expect(unlimited.reserve(1e12, 0)).to.equal(0)
    const soon = new UploadBudget(1_000_000)
    soon.reserve(1_500_000, 2_000)
    expect(soon.reserve(10, 2_000)).to.be.within(400, 600)
  })
})
