// A scripted misbehaving peer: a real js-libp2p node (TCP, Noise, Yamux, identify, ping) speaking Herald's
// wire protocols with Herald's own codecs. It advertises a full have-bitmap for a release and answers chunk
// requests with the seed's replies passed through `mutate`, so a lab takes it for a peer holding everything.
// It can also serve release records and manifests of its own making.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import type { PeerId } from '@libp2p/interface'
import * as m from '../../protocol/exchange/messages.js'

export interface HostilePeerInit {
  /** answer for each OK chunk reply of the seed: the encoded frame to send instead */
  mutate?: (r: m.ChunkResponse) => Uint8Array | Uint8ArrayList
  /** source address of outgoing connections (e.g. 127.0.0.2: another host on loopback) */
  localAddress?: string
  releases?: Map<string, Uint8Array>
  /** manifest bytes by CID string; `announce` overrides the size the header announces */
  manifests?: Map<string, { bytes: Uint8Array, announce?: number }>
  /** have-bitmaps to advertise, by manifest CID string (default: whatever the seed advertises, all bits set) */
  services?: boolean
}

export class HostilePeer {
  readonly node: Libp2p
  readonly init: HostilePeerInit
  seed?: PeerId
  chunkRequests = 0
  manifestBytesSent = 0
  readonly #cache = new Map<string, m.ChunkResponse>()

  private constructor (node: Libp2p, init: HostilePeerInit) { this.node = node; this.init = init }

  static async start (init: HostilePeerInit = {}): Promise<HostilePeer> {
    const node = await createLibp2p({
      addresses: { listen: [`/ip4/${init.localAddress ?? '127.0.0.1'}/tcp/0`] },
      transports: [tcp(init.localAddress != null ? { dialOpts: { localAddress: init.localAddress } } as any : {})],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      nodeInfo: { userAgent: 'heraldd/0.1.0' },
      services: { identify: identify(), ping: ping() }
    })
    const peer = new HostilePeer(node as unknown as Libp2p, init)
    if (init.services !== false) await peer.#handlers()
    return peer
  }

  async #handlers (): Promise<void> {
    const opts = { maxInboundStreams: 256, maxOutboundStreams: 256 }
    await this.node.handle('/herald/have/1.0.0', async (stream) => {
      const lp = lpStream(stream)
      try {
        const cid = CID.decode(m.decodeHaveRequest(await lp.read()))
        const count = await this.#entries(cid)
        if (count == null) {
          await lp.write(m.encodeHaveMessage({ type: 'bitmap', status: m.Status.NOT_FOUND, count: 0, bitmap: new Uint8Array(0) }))
        } else {
          await lp.write(m.encodeHaveMessage({ type: 'bitmap', status: m.Status.OK, count, bitmap: new Uint8Array(Math.ceil(count / 8)).fill(0xff) }))
        }
        await stream.close()
      } catch (err: any) { stream.abort(err) }
    }, opts)
    await this.node.handle('/herald/chunk/1.0.0', async (stream) => {
      const lp = lpStream(stream, { maxDataLength: 4096 })
      try {
        while (true) {
          let req
          try { req = m.decodeChunkRequestFull(await lp.read()) } catch { break }
          this.chunkRequests++
          for (const digest of req.digests) {
            const r = await this.#fromSeed(digest)
            const out = r.status === m.Status.OK && this.init.mutate != null ? this.init.mutate(r) : m.encodeChunkResponseList(r)
            await lp.write(out)
          }
        }
        await stream.close()
      } catch (err: any) { stream.abort(err) }
    }, opts)
    await this.node.handle('/herald/release/1.0.0', async (stream) => {
      const lp = lpStream(stream)
      try {
        const { dataset, version } = m.decodeReleaseRequest(await lp.read())
        const rec = this.init.releases?.get(`${dataset}@${version}`)
        await lp.write(m.encodeReleaseResponse(rec != null ? m.Status.OK : m.Status.NOT_FOUND, rec))
        await stream.close()
      } catch (err: any) { stream.abort(err) }
    }, opts)
    await this.node.handle('/herald/manifest/1.0.0', async (stream) => {
      const lp = lpStream(stream)
      try {
        const cid = CID.decode(m.decodeManifestRequest(await lp.read()))
        const man = this.init.manifests?.get(cid.toString())
        if (man == null) {
          await lp.write(m.encodeManifestHeader(m.Status.NOT_FOUND, 0))
        } else {
          await lp.write(m.encodeManifestHeader(m.Status.OK, man.announce ?? man.bytes.byteLength))
          for (let o = 0; o < man.bytes.byteLength; o += m.MANIFEST_FRAME_BYTES) {
            const part = man.bytes.subarray(o, o + m.MANIFEST_FRAME_BYTES)
            await lp.write(part)
            this.manifestBytesSent += part.byteLength
          }
        }
        await stream.close()
      } catch (err: any) { stream.abort(err) }
    }, opts)
  }

  readonly #entryCounts = new Map<string, number | undefined>()

  /** Learn a release's have-entries from the seed now, so the first lab that asks gets its bitmap at once. */
  async prime (manifestCid: string): Promise<void> {
    const cid = CID.parse(manifestCid)
    this.#entryCounts.set(cid.toString(), await this.#entries(cid))
  }

  /** the number of have-entries of a manifest, as the seed advertises it */
  async #entries (cid: CID): Promise<number | undefined> {
    if (this.#entryCounts.has(cid.toString())) return this.#entryCounts.get(cid.toString())
    if (this.seed == null) return undefined
    const stream = await this.node.dialProtocol(this.seed, '/herald/have/1.0.0')
    const lp = lpStream(stream, { maxDataLength: m.MAX_HAVE_FRAME })
    await lp.write(m.encodeHaveRequest(cid.bytes))
    const first = m.decodeHaveMessage(await lp.read())
    stream.abort(new Error('done'))
    return first.type === 'bitmap' && first.status === m.Status.OK ? first.count : undefined
  }

  /** the seed's reply for one chunk, zstd accepted (cached) */
  async #fromSeed (digest: Uint8Array): Promise<m.ChunkResponse> {
    const key = Buffer.from(digest).toString('hex')
    const hit = this.#cache.get(key)
    if (hit != null) return hit
    const stream = await this.node.dialProtocol(this.seed!, '/herald/chunk/1.0.0')
    const lp = lpStream(stream, { maxDataLength: m.MAX_CHUNK_FRAME })
    await lp.write(m.encodeChunkRequest([digest], m.ACCEPT_ZSTD))
    const r = m.decodeChunkResponse((await lp.read()).subarray())
    await stream.close().catch(() => {})
    const copy = { ...r, digest: r.digest.slice(), data: r.data.slice() }
    if (copy.status === m.Status.OK) this.#cache.set(key, copy)
    return copy
  }

  async connectSeed (addrs: string[]): Promise<void> {
    const conn = await this.node.dial(multiaddr(addrs[0]))
    this.seed = conn.remotePeer
  }

  async dial (addrs: string[]): Promise<void> { await this.node.dial(multiaddr(addrs[0])) }

  async stop (): Promise<void> { await this.node.stop() }
}
