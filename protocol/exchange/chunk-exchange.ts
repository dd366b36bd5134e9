// /herald/chunk/1.0.0: a stream carries batches, one after another. The client sends a ChunkRequest naming
// up to 64 digests; the server answers one ChunkResponse per digest, in order (the bytes, or NOT_FOUND /
// RATE_LIMITED / ERROR), reading each chunk from its store only when the previous one has been written out
// (backpressure), then waits for the client's next request on the same stream, and closes when the client
// closes its side (or stays silent too long). Reusing streams matters: opening one costs a protocol
// negotiation and a peer-store update on both sides, several milliseconds of CPU each.
// Chunks go out in the form the store keeps them: a zstd-stored chunk is sent as its frame to a client that
// accepts zstd (no compression on the serving path), decompressed for one that does not.
// The client checks the shape of every reply: its digest is the next one asked for, its size the size the
// caller expects (the manifest's, when given), and a zstd reply is exactly one frame of that content size
// with nothing around it (compression.ts), so what the caller stores is the frame it verified and nothing
// else. Any of these failing is the peer's fault: the stream is aborted and the peer reported. The caller
// checks every chunk against its digest.
import { lpStream } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { logger } from '@libp2p/logger'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { isPeerFault, MalformedMessageError } from './errors.js'
import { decompressChunk, MAX_DECOMPRESSED } from '../encoding/compression.js'
import { ACCEPT_ZSTD, decodeChunkRequestFull, decodeChunkResponse, encodeChunkRequest, encodeChunkResponseList, Encoding, MAX_BATCH, MAX_CHUNK_FRAME, Status } from './messages.js'
import { TokenBucket } from './token-bucket.js'

const log = logger('herald:chunk')

export const CHUNK_PROTOCOL_VERSION = '1.0.0'
/** one batch, end to end: generous, a capped seed may be slow */
const DEFAULT_TIMEOUT = 60_000
/** a client keeps an idle stream this long for its next batch to that peer, ms */
const CLIENT_IDLE_MS = 5_000
/** a server waits this long for the next request on a stream before closing it (longer than the client keeps it), ms */
const SERVER_IDLE_MS = 30_000
/** idle streams kept per peer */
const MAX_IDLE_PER_PEER = 8
const DEFAULT_MAX_INFLIGHT_PER_PEER = 8
/**
 * bytes a client stream may hold unread: one largest frame and most of the next. The default (4 MiB) is less
 * than one largest frame (4 MiB + 64), so a chunk near the 4 MiB limit could never be received; replies
 * that pile up past this (the server does not wait for us to read) abort the stream without inflating it.
 */
const CLIENT_READ_BUFFER = 2 * MAX_CHUNK_FRAME
/** streams (and so batches) at once, per connection */
const MAX_STREAMS = 64

/** A chunk as the serving store holds it. */
export interface StoredChunk {
  encoding: 'raw' | 'zstd'
  /** the chunk, or its zstd frame */
  data: Uint8Array
  rawSize: number
}

export interface ChunkExchangeInit {
  protocolPrefix?: string
  getStored: (digest: Uint8Array) => Promise<StoredChunk | undefined>
  policy?: (peer: PeerId, digest: Uint8Array) => 'serve' | 'not-found' | 'rate-limited'
  uploadBytesPerSecond?: number
  maxInflightPerPeer?: number
  maxBatch?: number
  timeout?: number
  /** send zstd-stored chunks compressed to peers that accept it (default true; false sends them decompressed) */
  compress?: boolean
  /** ask peers for compressed chunks (default true) */
  acceptCompressed?: boolean
  onServed?: (peer: PeerId, digest: Uint8Array, bytes: number) => void
  onPeerMisbehaved?: (peer: PeerId, reason: string) => void
}

export interface ChunkExchangeComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
}

export interface ChunkReply {
  digest: Uint8Array
  status: 'ok' | 'not-found' | 'rate-limited' | 'error'
  bytes?: Uint8Array
  wireBytes: number
  encoding?: 'raw' | 'zstd'
  /** the zstd frame as received (ZSTD only): what the store keeps once the chunk is verified */
  frame?: Uint8Array
}

export interface ChunkExchange {
  fetch: (peer: PeerId, digests: Uint8Array[], options?: ChunkFetchOptions) => AsyncGenerator<ChunkReply>
}

export interface ChunkFetchOptions {
  signal?: AbortSignal
  /** per digest, the size its bytes must have (from the manifest); a reply of another size is refused */
  sizes?: ArrayLike<number | undefined>
}

const STATUS_NAME: Record<number, ChunkReply['status']> = {
  [Status.OK]: 'ok',
  [Status.NOT_FOUND]: 'not-found',
  [Status.RATE_LIMITED]: 'rate-limited'
}

class DefaultChunkExchange implements ChunkExchange, Startable {
  readonly protocol: string
  readonly #components: ChunkExchangeComponents
  readonly #init: ChunkExchangeInit
  readonly #timeout: number
  readonly #maxInflight: number
  readonly #maxBatch: number
  readonly #bucket: TokenBucket
  readonly #inflight = new Map<string, number>()
  /** streams ready for the next batch, per peer */
  readonly #idle = new Map<string, Session[]>()

  constructor (components: ChunkExchangeComponents, init: ChunkExchangeInit) {
    this.#components = components
    this.#init = init
    this.protocol = `${init.protocolPrefix ?? '/herald'}/chunk/${CHUNK_PROTOCOL_VERSION}`
    this.#timeout = init.timeout ?? DEFAULT_TIMEOUT
    this.#maxInflight = init.maxInflightPerPeer ?? DEFAULT_MAX_INFLIGHT_PER_PEER
    this.#maxBatch = Math.min(init.maxBatch ?? MAX_BATCH, MAX_BATCH)
    this.#bucket = new TokenBucket(init.uploadBytesPerSecond ?? 0)
  }

  async start (): Promise<void> {
    await this.#components.registrar.handle(this.protocol, (stream, connection) => {
      this.#handle(stream, connection).catch(err => {
        if (err instanceof TypeError || err instanceof RangeError) throw err
        log('chunk stream from %p failed: %s', connection.remotePeer, err.message)
      })
    }, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })
  }

  async stop (): Promise<void> {
    await this.#components.registrar.unhandle(this.protocol)
    for (const sessions of this.#idle.values()) {
      for (const s of sessions) { clearTimeout(s.timer); s.stream.abort(new Error('chunk exchange stopped')) }
    }
    this.#idle.clear()
  }

  async #handle (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer
    const lp = lpStream(stream, { maxDataLength: 3 + MAX_BATCH * 32 })
    try {
      while (true) {
        let digests: Uint8Array[]
        let accept = 0
        try {
          ({ digests, accept } = decodeChunkRequestFull(await lp.read({ signal: AbortSignal.timeout(SERVER_IDLE_MS) })))
        } catch (err: any) {
          // the client closed its side after its last batch: the normal end of a stream
          if (err.name === 'UnexpectedEOFError') break
          if (isPeerFault(err)) {
            this.#init.onPeerMisbehaved?.(peer, 'malformed_request')
          }
          stream.abort(err)
          return
        }
        if (digests.length > this.#maxBatch) {
          this.#init.onPeerMisbehaved?.(peer, 'oversized_batch')
          stream.abort(new MalformedMessageError('batch too large'))
          return
        }
        await this.#serveBatch(peer, lp, digests, accept)
      }
      await stream.close({ signal: AbortSignal.timeout(this.#timeout) })
    } catch (err: any) {
      stream.abort(err)
      throw err
    }
  }

  /** Answer one batch; batches beyond the per-peer limit in progress at once get RATE_LIMITED. */
  async #serveBatch (peer: PeerId, lp: LengthPrefixedStream<Stream>, digests: Uint8Array[], accept: number): Promise<void> {
    const key = peer.toString()
    const signal = AbortSignal.timeout(this.#timeout)
    const inflight = (this.#inflight.get(key) ?? 0) + 1
    this.#inflight.set(key, inflight)
    try {
      const overloaded = inflight > this.#maxInflight
      const wantsZstd = (accept & ACCEPT_ZSTD) !== 0 && this.#init.compress !== false
      for (const digest of digests) {
        let status = overloaded ? Status.RATE_LIMITED : Status.OK
        if (status === Status.OK) {
          const decision = this.#init.policy?.(peer, digest) ?? 'serve'
          if (decision === 'rate-limited') status = Status.RATE_LIMITED
          else if (decision === 'not-found') status = Status.NOT_FOUND
        }
        let stored: StoredChunk | undefined
        if (status === Status.OK) {
          try {
            stored = await this.#init.getStored(digest)
            if (stored == null) status = Status.NOT_FOUND
            else if (stored.encoding === 'zstd' && !wantsZstd) stored = { encoding: 'raw', data: decompressChunk(stored.data, stored.rawSize), rawSize: stored.rawSize }
          } catch (err: any) {
            log.error('reading chunk for %p failed: %s', peer, err.message)
            status = Status.ERROR
            stored = undefined
          }
        }
        const payload = stored?.data ?? new Uint8Array(0)
        if (stored != null) await this.#bucket.take(payload.byteLength, signal)
        await lp.write(encodeChunkResponseList({ status, encoding: stored?.encoding === 'zstd' ? Encoding.ZSTD : Encoding.RAW, digest, data: payload, rawSize: stored?.rawSize }), { signal })
        if (stored != null) this.#init.onServed?.(peer, digest, payload.byteLength)
      }
    } finally {
      const n = (this.#inflight.get(key) ?? 1) - 1
      if (n <= 0) this.#inflight.delete(key)
      else this.#inflight.set(key, n)
    }
  }

  /** An idle stream to this peer that can carry another batch, or a new one. */
  async #session (peer: PeerId, signal: AbortSignal): Promise<{ session: Session, reused: boolean }> {
    const idle = this.#idle.get(peer.toString())
    while (idle != null && idle.length > 0) {
      const s = idle.pop()!
      clearTimeout(s.timer)
      if (s.stream.status === 'open' && s.stream.writeStatus === 'writable' && s.stream.remoteWriteStatus === 'writable') return { session: s, reused: true }
      s.stream.abort(new Error('stale chunk stream'))
    }
    const stream = await this.#components.connectionManager.openStream(peer, this.protocol, { signal })
    return { session: { stream, lp: lpStream(stream, { maxDataLength: MAX_CHUNK_FRAME, maxBufferSize: CLIENT_READ_BUFFER }) }, reused: false }
  }

  /** Keep a stream whose batch was read to the end for the next batch to the same peer. */
  #park (peer: PeerId, s: Session): void {
    const key = peer.toString()
    let idle = this.#idle.get(key)
    if (idle == null) { idle = []; this.#idle.set(key, idle) }
    if (idle.length >= MAX_IDLE_PER_PEER) {
      void s.stream.close().catch(err => { s.stream.abort(err) })
      return
    }
    idle.push(s)
    s.timer = setTimeout(() => {
      const list = this.#idle.get(key)
      const at = list?.indexOf(s) ?? -1
      if (at !== -1) list!.splice(at, 1)
      if (list?.length === 0) this.#idle.delete(key)
      void s.stream.close().catch(err => { s.stream.abort(err) })
    }, CLIENT_IDLE_MS)
    s.timer.unref?.()
  }

  async * fetch (peer: PeerId, digests: Uint8Array[], options: ChunkFetchOptions = {}): AsyncGenerator<ChunkReply> {
    if (options.sizes != null && options.sizes.length !== digests.length) throw new RangeError('one size per digest')
    const signal = options.signal != null ? AbortSignal.any([options.signal, AbortSignal.timeout(this.#timeout)]) : AbortSignal.timeout(this.#timeout)
    let { session, reused } = await this.#session(peer, signal)
    let replied = 0
    let finished = false
    try {
      while (true) {
        try {
          await session.lp.write(encodeChunkRequest(digests, this.#init.acceptCompressed !== false ? ACCEPT_ZSTD : 0), { signal })
          for (const [n, digest] of digests.entries()) {
            const reply = this.#decode(peer, digest, await session.lp.read({ signal }), options.sizes?.[n])
            replied++
            yield reply
          }
          break
        } catch (err: any) {
          // a reused stream the server closed while it sat idle: one more try on a fresh stream
          if (!reused || replied > 0 || signal.aborted || err instanceof MalformedMessageError) throw err
          log('idle chunk stream to %p was closed (%s): opening another', peer, err.message)
          session.stream.abort(err)
          ;({ session, reused } = await this.#session(peer, signal))
        }
      }
      finished = true
      this.#park(peer, session)
    } catch (err: any) {
      // a frame over the protocol's length (the decoder's own faults were reported where they were found)
      if (isPeerFault(err) && !(err instanceof MalformedMessageError)) this.#init.onPeerMisbehaved?.(peer, 'oversized_response')
      session.stream.abort(err)
      throw err
    } finally {
      // the consumer stopped early (e.g. bad bytes): the stream holds unread replies, so it is not reused
      if (!finished && session.stream.status === 'open') session.stream.abort(new Error('batch abandoned'))
    }
  }

  #decode (peer: PeerId, digest: Uint8Array, frame: Uint8Array | Uint8ArrayList, expected?: number): ChunkReply {
    const wireBytes = frame.byteLength
    let r
    try {
      r = decodeChunkResponse(frame)
    } catch (err) {
      this.#init.onPeerMisbehaved?.(peer, 'malformed_response')
      throw err
    }
    if (!Buffer.from(r.digest).equals(Buffer.from(digest))) {
      this.#init.onPeerMisbehaved?.(peer, 'out_of_order')
      throw new MalformedMessageError('chunk response for a digest that was not next in the request')
    }
    if (r.status !== Status.OK) return { digest, status: STATUS_NAME[r.status] ?? 'error', wireBytes }
    if (r.encoding === Encoding.ZSTD) {
      let bytes: Uint8Array
      try {
        bytes = decompressChunk(r.data, r.rawSize ?? 0, MAX_DECOMPRESSED, expected)
      } catch (err) {
        this.#init.onPeerMisbehaved?.(peer, 'bad_compression')
        throw err
      }
      return { digest, status: 'ok', bytes, wireBytes, encoding: 'zstd', frame: r.data }
    }
    if (r.encoding !== Encoding.RAW) {
      this.#init.onPeerMisbehaved?.(peer, 'malformed_response')
      throw new MalformedMessageError(`unsupported chunk encoding ${r.encoding}`)
    }
    if (expected != null && r.data.byteLength !== expected) {
      this.#init.onPeerMisbehaved?.(peer, 'wrong_size')
      throw new MalformedMessageError(`chunk of ${r.data.byteLength} bytes, the manifest says ${expected}`)
    }
    return { digest, status: 'ok', bytes: r.data, wireBytes, encoding: 'raw' }
  }
}

interface Session {
  stream: Stream
  lp: LengthPrefixedStream<Stream>
  timer?: ReturnType<typeof setTimeout>
}

export function chunkExchange (init: ChunkExchangeInit): (components: ChunkExchangeComponents) => ChunkExchange {
  return (components) => new DefaultChunkExchange(components, init)
}
