// The exchange services between two real libp2p nodes on loopback (TCP + Noise + Yamux).
import { expect } from 'chai'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { randomBytes } from 'node:crypto'
import { sha256 } from '../../../protocol/cid.js'
import { compressChunk, decompressChunk } from '../../../protocol/encoding/compression.js'
import { chunkExchange, haveExchange, releaseExchange, type ChunkExchange, type HaveExchange, type ReleaseExchange, type StoredChunk } from '../../../protocol/exchange/index.js'

type Node = Libp2p<{ chunks: ChunkExchange, have: HaveExchange, releases: ReleaseExchange }>

describe('exchange services', function () {
  this.timeout(30_000)
  // incompressible, so that the upload cap sees full-size chunks
  const blobs = Array.from({ length: 8 }, () => new Uint8Array(randomBytes(512 * 1024)))
  const text = new TextEncoder().encode('>sp|P12345|TEST_HUMAN test OS=Homo sapiens\nMKTAYIAKQRQISFVKSHFSRQ\n'.repeat(8000))
  // as a store keeps them: the text as its zstd frame, the incompressible blobs raw
  const stored = new Map<string, StoredChunk>([
    ...blobs.map(b => [Buffer.from(sha256(b)).toString('hex'), { encoding: 'raw', data: b, rawSize: b.byteLength }] as const),
    [Buffer.from(sha256(text)).toString('hex'), { encoding: 'zstd', data: compressChunk(text)!, rawSize: text.byteLength }]
  ])
  // a chunk of the largest size a manifest allows (4 MiB): its frame is larger than libp2p's default read buffer
  const largest = new Uint8Array(randomBytes(4 * 1024 * 1024))
  stored.set(Buffer.from(sha256(largest)).toString('hex'), { encoding: 'raw', data: largest, rawSize: largest.byteLength })
  const manifest = new Uint8Array(2_500_000).map((_, i) => i % 251)
  const manifestCid = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')
  let server: Node
  let client: Node
  const misbehaved: string[] = []
  let listeners: Array<(i: number[], c: boolean) => void> = []
  /** called when a watcher subscribes on the server */
  let onSubscribe: () => void = () => {}

  async function node (upload = 0, acceptCompressed = true): Promise<Node> {
    return await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        chunks: chunkExchange({
          getStored: async d => stored.get(Buffer.from(d).toString('hex')),
          uploadBytesPerSecond: upload,
          acceptCompressed,
          onPeerMisbehaved: (_p, reason) => { misbehaved.push(reason) }
        }),
        have: haveExchange({
          getHave: cid => cid.equals(manifestCid) ? { bitmap: new Uint8Array([0x80]), count: 4 } : undefined,
          subscribe: (_cid, l) => { listeners.push(l); onSubscribe(); return () => { listeners = listeners.filter(x => x !== l) } }
        }),
        releases: releaseExchange({
          getRelease: async (d, v) => d === 'uniprot' && v === '1' ? new Uint8Array([1, 2, 3]) : undefined,
          getManifest: async cid => cid.equals(manifestCid) ? manifest : undefined,
          maxManifestBytes: 3_000_000
        })
      }
    }) as unknown as Node
  }

  before(async () => {
    server = await node(8 * 1024 * 1024)
    client = await node()
    await client.dial(server.getMultiaddrs()[0])
  })
  after(async () => { await client?.stop(); await server?.stop() })

  it('should serve a batch in order with NOT_FOUND for unknown chunks, under the upload cap', async () => {
    const started = performance.now()
    const ask = [sha256(blobs[0]), new Uint8Array(32), ...blobs.slice(1).map(b => sha256(b))]
    const replies = []
    for await (const r of client.services.chunks.fetch(server.peerId, ask)) replies.push(r)
    expect(replies.map(r => r.status)).to.deep.equal(['ok', 'not-found', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'])
    expect(Buffer.from(replies[2].bytes!).equals(Buffer.from(blobs[1]))).to.equal(true)
    // 12 MiB in all through an 8 MiB/s cap whose burst is one second (8 MiB): at least 0.5 s
    for await (const _ of client.services.chunks.fetch(server.peerId, blobs.map(b => sha256(b)))) { void _ }
    for await (const _ of client.services.chunks.fetch(server.peerId, blobs.map(b => sha256(b)))) { void _ }
    expect((performance.now() - started) / 1000).to.be.at.least(0.48)
  })

  it('should carry successive batches on one stream, and open another when the server closed it', async () => {
    const chunkStreams = (): number => client.getConnections(server.peerId).flatMap(c => c.streams).filter(st => st.protocol === '/herald/chunk/1.0.0' && st.status === 'open').length
    for (let round = 0; round < 5; round++) {
      const replies = []
      for await (const r of client.services.chunks.fetch(server.peerId, [sha256(blobs[round])])) replies.push(r)
      expect(replies[0].status).to.equal('ok')
    }
    expect(chunkStreams()).to.equal(1)
    // the server side goes away (as after its idle timeout): the next batch still arrives, on a new stream
    const kept = client.getConnections(server.peerId).flatMap(c => c.streams).filter(st => st.protocol === '/herald/chunk/1.0.0')
    // the client has seen the close once its stream reports the remote's end (an event, not a pause)
    const seen = Promise.all(kept.map(async st => await new Promise(resolve => {
      st.addEventListener('remoteCloseWrite', resolve, { once: true })
      st.addEventListener('close', resolve, { once: true })
    })))
    for (const st of server.getConnections(client.peerId).flatMap(c => c.streams)) {
      if (st.protocol === '/herald/chunk/1.0.0') await st.close()
    }
    await seen
    const replies = []
    for await (const r of client.services.chunks.fetch(server.peerId, [sha256(blobs[6])])) replies.push(r)
    expect(replies[0].status).to.equal('ok')
    expect(Buffer.from(replies[0].bytes!).equals(Buffer.from(blobs[6]))).to.equal(true)
  })

  it('should send compressible chunks zstd-compressed and give back the exact bytes', async () => {
    const replies = []
    for await (const r of client.services.chunks.fetch(server.peerId, [sha256(text), sha256(blobs[0])])) replies.push(r)
    expect(replies.map(r => r.encoding)).to.deep.equal(['zstd', 'raw'])
    expect(Buffer.from(replies[0].bytes!).equals(Buffer.from(text))).to.equal(true)
    expect(replies[0].wireBytes).to.be.below(text.byteLength / 10)
  })

  it('should send a stored frame as it is, and decompress it for a client that does not accept zstd', async () => {
    const frame = stored.get(Buffer.from(sha256(text)).toString('hex'))!.data
    const replies = []
    for await (const r of client.services.chunks.fetch(server.peerId, [sha256(text)])) replies.push(r)
    // the frame the store holds, byte for byte (no recompression on the serving path)
    expect(Buffer.from(replies[0].frame!).equals(Buffer.from(frame))).to.equal(true)
    const plain = await node(0, false)
    try {
      await plain.dial(server.getMultiaddrs()[0])
      const raw = []
      for await (const r of plain.services.chunks.fetch(server.peerId, [sha256(text)])) raw.push(r)
      expect(raw[0].encoding).to.equal('raw')
      expect(Buffer.from(raw[0].bytes!).equals(Buffer.from(text))).to.equal(true)
      expect(raw[0].wireBytes).to.be.above(text.byteLength)
    } finally {
      await plain.stop()
    }
  })

  it('should carry chunks of the largest size, two in one batch', async () => {
    const replies = []
    for await (const r of client.services.chunks.fetch(server.peerId, [sha256(largest), sha256(largest)], { sizes: [largest.byteLength, largest.byteLength] })) replies.push(r)
    expect(replies.map(r => r.status)).to.deep.equal(['ok', 'ok'])
    expect(Buffer.from(sha256(replies[1].bytes!)).equals(Buffer.from(sha256(largest)))).to.equal(true)
  })

  it('should refuse a reply of another size than the manifest gives, and count the peer', async () => {
    misbehaved.length = 0
    let error: any
    try {
      for await (const r of client.services.chunks.fetch(server.peerId, [sha256(blobs[1])], { sizes: [blobs[1].byteLength - 1] })) void r
    } catch (err) { error = err }
    expect(error?.code).to.equal('MALFORMED_MESSAGE')
    expect(misbehaved).to.include('wrong_size')
    error = undefined
    try {
      for await (const r of client.services.chunks.fetch(server.peerId, [sha256(text)], { sizes: [text.byteLength + 1] })) void r
    } catch (err) { error = err }
    expect(error?.code).to.equal('MALFORMED_MESSAGE')
    expect(misbehaved).to.include('bad_compression')
  })

  it('should refuse compressed frames that lie about their size (no unbounded inflation)', () => {
    const frame = compressChunk(text)!
    expect(() => decompressChunk(frame, text.byteLength + 1)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
    expect(() => decompressChunk(frame, 64 * 1024 * 1024)).to.throw(/limit/)
    expect(() => decompressChunk(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 8)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
    expect(Buffer.from(decompressChunk(frame, text.byteLength)).equals(Buffer.from(text))).to.equal(true)
    expect(compressChunk(blobs[0])).to.equal(undefined)
  })

  it('should abort a stream that sends garbage, count the peer, and keep serving', async () => {
    misbehaved.length = 0
    const stream = await client.dialProtocol(server.peerId, '/herald/chunk/1.0.0')
    const lp = lpStream(stream)
    await lp.write(new Uint8Array([9, 9, 9]))
    // the only way this read may end is the server resetting the stream: a timeout here is a failure
    const timeout = AbortSignal.timeout(10_000)
    const outcome = await lp.read({ signal: timeout }).then(() => 'answered', (err: any) => err)
    expect(outcome, 'garbage was answered').to.not.equal('answered')
    expect(timeout.aborted, 'the server did not end the stream: the read timed out').to.equal(false)
    expect(outcome.name).to.be.oneOf(['StreamResetError', 'StreamAbortError', 'UnexpectedEOFError', 'StreamStateError'])
    // counted before the stream was aborted, so before the client saw the reset
    expect(misbehaved).to.deep.equal(['malformed_request'])
    const replies = []
    for await (const r of client.services.chunks.fetch(server.peerId, [sha256(blobs[3])])) replies.push(r)
    expect(replies[0].status).to.equal('ok')
  })

  it('should send the have-bitmap and then updates', async () => {
    const bitmaps: number[] = []
    const updates: number[][] = []
    let firstUpdate: () => void = () => {}
    const updated = new Promise<void>(resolve => { firstUpdate = resolve })
    const watched = new Promise<void>(resolve => { onSubscribe = resolve })
    const watching = client.services.have.watch(server.peerId, manifestCid, {
      onBitmap: (b, count) => { bitmaps.push(b[0], count) },
      onUpdate: (indices, complete) => { updates.push([...indices, complete ? -1 : 0]); firstUpdate() }
    })
    await watched
    listeners.forEach(l => { l([2], false) })
    // the second update only once the first has arrived: two separate messages on the wire
    await updated
    listeners.forEach(l => { l([1, 3], true) })
    await watching
    expect(bitmaps).to.deep.equal([0x80, 4])
    expect(updates[0]).to.deep.equal([2, 0])
    expect(updates.flat()).to.include.members([2, 1, 3, -1])
  })

  it('should fetch records and multi-frame manifests, and refuse an oversized one', async () => {
    expect([...(await client.services.releases.fetchRelease(server.peerId, 'uniprot', '1'))!]).to.deep.equal([1, 2, 3])
    expect(await client.services.releases.fetchRelease(server.peerId, 'uniprot', '2')).to.equal(undefined)
    const got = await client.services.releases.fetchManifest(server.peerId, manifestCid)
    expect(Buffer.from(got!).equals(Buffer.from(manifest))).to.equal(true)
    const small = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { releases: releaseExchange({ getRelease: async () => undefined, getManifest: async () => undefined, maxManifestBytes: 1_000_000 }) }
    })
    try {
      await small.dial(server.getMultiaddrs()[0])
      await small.services.releases.fetchManifest(server.peerId, manifestCid)
      expect.fail('accepted an oversized manifest')
    } catch (err: any) {
      // refused on the announced size: an honest peer may hold a manifest over this node's limit
      expect(err.code).to.equal('INVALID_MANIFEST')
      expect(err.message).to.match(/over the 1000000-byte limit/)
    } finally {
      await small.stop()
    }
  })
})
