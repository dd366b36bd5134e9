// The HTTP chunk client against a hostile server: every bound (size, frame rules, trailing bytes,
// unasked encodings) and the CID check hold, with a typed error naming the fault.
import { expect } from 'chai'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { HttpChunkClient } from '../../../daemon/http/client.js'
import { HttpSourceError } from '../../../daemon/http/errors.js'
import { chunkCid, sha256 } from '../../../protocol/cid.js'

const require = createRequire(import.meta.url)
const zstd = require('zstd-napi') as { compress: (d: Uint8Array) => Buffer }

const text = Buffer.from('ACDEFGHIKLMNPQRSTVWY\n'.repeat(4_000))
const digest = sha256(text)
const cid = chunkCid(text).toString()
const frame = zstd.compress(text)

type Behaviour = (res: ServerResponse) => void

describe('HttpChunkClient', function () {
  let server: Server
  let baseUrl: string
  let behaviour: Behaviour
  let lastHeaders: Record<string, unknown> = {}

  before(async () => {
    server = createServer((req, res) => {
      lastHeaders = req.headers
      if (req.url !== `/ipfs/${cid}?format=raw`) { res.writeHead(404).end(); return }
      behaviour(res)
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const a = server.address()
    baseUrl = `http://127.0.0.1:${typeof a === 'object' && a != null ? a.port : 0}`
  })

  after(async () => {
    await new Promise<void>(resolve => { server.close(() => { resolve() }); server.closeAllConnections() })
  })

  async function expectFault (reason: string, acceptZstd = true): Promise<void> {
    try {
      await new HttpChunkClient({ baseUrl, acceptZstd }).fetchOne({ digest, size: text.byteLength })
    } catch (err: any) {
      expect(err).to.be.instanceOf(HttpSourceError)
      expect(err.reason, err.message).to.equal(reason)
      return
    }
    expect.fail(`expected ${reason}`)
  }

  const send = (status: number, headers: Record<string, string>, body?: Uint8Array, chunked = false): Behaviour => (res) => {
    if (!chunked && body != null) headers['content-length'] = String(body.byteLength)
    res.writeHead(status, headers)
    if (body != null && chunked) {
      // no content-length: the client must stop at its own bound
      for (let i = 0; i < body.byteLength; i += 16_384) res.write(body.subarray(i, i + 16_384))
      res.end()
    } else res.end(body)
  }

  it('should accept the raw block and a zstd frame of it, each verified, asking with the trustless-gateway headers', async () => {
    behaviour = send(200, { 'content-type': 'application/vnd.ipld.raw' }, text)
    const raw = await new HttpChunkClient({ baseUrl }).fetchOne({ digest, size: text.byteLength })
    expect(raw.status).to.equal('ok')
    expect(Buffer.from(raw.bytes!).equals(text)).to.equal(true)
    expect(lastHeaders.accept).to.equal('application/vnd.ipld.raw')
    expect(lastHeaders['accept-encoding']).to.equal('zstd')
    behaviour = send(200, { 'content-encoding': 'zstd' }, frame)
    const z = await new HttpChunkClient({ baseUrl }).fetchOne({ digest, size: text.byteLength })
    expect(z.encoding).to.equal('zstd')
    expect(z.wireBytes).to.equal(frame.byteLength)
    expect(Buffer.from(z.frame!).equals(frame)).to.equal(true)
    expect(Buffer.from(z.bytes!).equals(text)).to.equal(true)
  })

  it('should refuse a response larger than the expected size, announced or not', async () => {
    const bigger = Buffer.concat([text, Buffer.from('X')])
    behaviour = send(200, {}, bigger)
    await expectFault('too_large')
    behaviour = send(200, {}, Buffer.concat([text, randomBytes(1_000_000)]), true)
    await expectFault('too_large')
  })

  it('should refuse a short body', async () => {
    behaviour = send(200, {}, text.subarray(0, text.byteLength - 1))
    await expectFault('short_body')
  })

  it('should report a response that breaks off as a short body', async () => {
    behaviour = (res) => {
      res.writeHead(200, { 'content-length': String(text.byteLength) })
      res.write(text.subarray(0, 1000), () => { res.destroy() })
    }
    await expectFault('short_body')
  })

  it('should catch a corrupted body by the CID check', async () => {
    const bad = Buffer.from(text)
    bad[1234] ^= 1
    behaviour = send(200, {}, bad)
    await expectFault('bad_digest')
    const badFrame = zstd.compress(bad)
    behaviour = send(200, { 'content-encoding': 'zstd' }, badFrame)
    await expectFault('bad_digest')
  })

  it('should refuse a zstd body that is not exactly one frame of the expected size', async () => {
    behaviour = send(200, { 'content-encoding': 'zstd' }, Buffer.concat([frame, Buffer.from([1, 2, 3])]))
    await expectFault('bad_compression')
    behaviour = send(200, { 'content-encoding': 'zstd' }, Buffer.concat([frame, zstd.compress(Buffer.from('more'))]))
    await expectFault('bad_compression')
    behaviour = send(200, { 'content-encoding': 'zstd' }, zstd.compress(text.subarray(0, 1000)))
    await expectFault('bad_compression')
    behaviour = send(200, { 'content-encoding': 'zstd' }, randomBytes(500))
    await expectFault('bad_compression')
    // a frame that inflates far beyond the chunk is refused on its declared size, before it is inflated
    behaviour = send(200, { 'content-encoding': 'zstd' }, zstd.compress(Buffer.alloc(64 * 1024 * 1024)))
    await expectFault('bad_compression')
  })

  it('should refuse an encoding it did not ask for', async () => {
    behaviour = send(200, { 'content-encoding': 'zstd' }, frame)
    await expectFault('bad_response', false)
    behaviour = send(200, { 'content-encoding': 'gzip' }, text)
    await expectFault('bad_response')
  })

  it('should report 404 as not-found, 429 as rate-limited with its Retry-After, and other statuses as faults', async () => {
    const client = new HttpChunkClient({ baseUrl })
    behaviour = send(404, {}, Buffer.from('{}'))
    expect((await client.fetchOne({ digest, size: text.byteLength })).status).to.equal('not-found')
    behaviour = send(429, { 'retry-after': '7' }, Buffer.from('{}'))
    const limited = await client.fetchOne({ digest, size: text.byteLength })
    expect(limited.status).to.equal('rate-limited')
    expect(limited.retryAfterMs).to.equal(7_000)
    behaviour = send(500, {}, Buffer.from('{}'))
    await expectFault('bad_response')
  })

  it('should yield a batch in order and stop at the first bad reply', async () => {
    behaviour = send(200, {}, text)
    const client = new HttpChunkClient({ baseUrl, window: 3 })
    const wants = Array.from({ length: 7 }, () => ({ digest, size: text.byteLength }))
    let n = 0
    for await (const r of client.fetch(wants)) { expect(r.status).to.equal('ok'); n++ }
    expect(n).to.equal(7)
    let served = 0
    behaviour = (res) => { served++; send(200, {}, served === 3 ? Buffer.alloc(text.byteLength) : text)(res) }
    n = 0
    try {
      for await (const _ of client.fetch(wants)) n++
      expect.fail('a bad reply went through')
    } catch (err: any) {
      expect(err.reason).to.equal('bad_digest')
    }
    expect(n).to.equal(2)
  })
})
