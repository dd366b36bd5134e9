// The HTTP Source and the per-fetch source directory, against a local node:http server.
import { expect } from 'chai'
import { createServer, type Server } from 'node:http'
import { multiaddr } from '@multiformats/multiaddr'
import { cidFromDigest, sha256 } from '../../../protocol/cid.js'
import { HttpChunkSource } from '../../../daemon/fetch/http-source.js'
import { FetchSources } from '../../../daemon/fetch/source-directory.js'
import type { Reply } from '../../../daemon/fetch/source.js'

/** any valid peer ID */
const PEER = '12D3KooWEeSMgRJz4uEDpCWg6qZVeixQU5cxn6pnzRoNvavHMKFP'

describe('HTTP source', () => {
  const chunks = Array.from({ length: 6 }, (_, i) => new TextEncoder().encode(`chunk ${i} `.repeat(300)))
  const byCid = new Map(chunks.map(c => [cidFromDigest(sha256(c)).toString(), c]))
  let server: Server
  let url: string
  /** what the server does with chunk 3 */
  let mode: 'ok' | 'long' | 'missing' = 'ok'
  let open = 0
  const held: Array<() => void> = []
  let peak = 0

  before(async () => {
    server = createServer((req, res) => {
      open++
      peak = Math.max(peak, open)
      res.on('close', () => { open-- })
      const cid = (req.url ?? '').replace(/^\/ipfs\//, '').replace(/\?.*$/, '')
      const body = byCid.get(cid)
      if (body == null || (mode === 'missing' && body === chunks[3])) { res.writeHead(404).end(); return }
      const out = mode === 'long' && body === chunks[3] ? Buffer.concat([body, Buffer.from('extra')]) : body
      // held until a second request is open (or 200 ms pass): a client that pipelines gets them answered at once
      held.push(() => { res.writeHead(200, { 'content-type': 'application/vnd.ipld.raw', 'content-length': out.byteLength }).end(out) })
      const flush = (): void => { for (const f of held.splice(0)) f() }
      if (held.length >= 2) flush()
      else setTimeout(flush, 200).unref()
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as any).port}`
  })
  after(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })
  beforeEach(() => { mode = 'ok'; peak = 0 })

  async function ask (source: HttpChunkSource): Promise<Reply[]> {
    const out: Reply[] = []
    for await (const r of source.request(chunks.map(c => sha256(c)), chunks.map(c => c.byteLength), AbortSignal.timeout(10_000))) out.push(r)
    return out
  }

  it('should yield the batch in order, pipelined within its window, NOT_FOUND as a status', async () => {
    const source = new HttpChunkSource({ id: 'peer-1', kind: 'peer', baseUrl: url, window: 3 })
    try {
      mode = 'missing'
      const replies = await ask(source)
      expect(replies.map(r => r.status)).to.deep.equal(['ok', 'ok', 'ok', 'not-found', 'ok', 'ok'])
      expect(Buffer.from(replies[5].bytes!).equals(Buffer.from(chunks[5]))).to.equal(true)
      expect(peak).to.be.greaterThan(1).and.at.most(3)
    } finally { source.close() }
  })

  it('should end the request with SourceMisbehavedError when a body breaks its bound', async () => {
    const source = new HttpChunkSource({ id: 'peer-1', kind: 'peer', baseUrl: url, window: 2 })
    try {
      mode = 'long'
      const err = await ask(source).then(() => undefined, (e: any) => e)
      expect(err?.code).to.equal('SOURCE_MISBEHAVED')
      expect(err?.reason).to.equal('too_large')
    } finally { source.close() }
  })

  it('should give a peer its HTTP source once its announced address is known, libp2p before and when httpPeers is off', async () => {
    const port = Number(new URL(url).port)
    const chunkExchange = { fetch: async function * () {} } as any
    let lookups = 0
    const addressesOf = async (): Promise<any[]> => { lookups++; return [multiaddr('/ip4/127.0.0.1/tcp/4480'), multiaddr(`/ip4/127.0.0.1/tcp/${port}/http`)] }
    const dir = new FetchSources({ chunks: chunkExchange, window: 4, httpPeers: true, addressesOf, httpWindow: 8, origins: ['http://origin.test/x'] })
    try {
      expect(dir.forPeer(PEER, false).transport).to.equal('libp2p')
      await new Promise(resolve => setImmediate(resolve))
      const s = dir.forPeer(PEER, false)
      expect(s.transport).to.equal('http')
      expect(s.id).to.equal(PEER)
      expect(s.kind).to.equal('peer')
      expect(s.window).to.equal(8)
      expect(dir.forPeer(PEER, true).kind).to.equal('seed')
      expect(lookups).to.equal(1)
      expect(dir.origins().map(o => [o.id, o.kind, o.transport])).to.deep.equal([['http://origin.test/x', 'origin', 'http']])
    } finally { dir.close() }
    const off = new FetchSources({ chunks: chunkExchange, window: 4, httpPeers: false, addressesOf, httpWindow: 8 })
    const before = lookups
    off.forPeer(PEER, false)
    await new Promise(resolve => setImmediate(resolve))
    expect(off.forPeer(PEER, false).transport).to.equal('libp2p')
    expect(off.forPeer(PEER, false).window).to.equal(4)
    expect(lookups).to.equal(before)
    off.close()
  })
})
