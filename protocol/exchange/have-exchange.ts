// /herald/have/1.0.0: the watcher names a manifest CID; the holder answers with its bitmap over that
// manifest's deduplicated chunk list, then, while the stream stays open, HAVE updates batched per stream:
// every 250 ms while a node has at most two watchers, longer as it has more (250 ms per two watchers, up to
// 1 s), so that what a node sends, and what each update costs the watchers it wakes (every update starts a
// scheduling pass there), stays near 8 messages a second however many peers trade the release. A chunk is
// fetchable from a downloading peer within at most a second of its arrival. A `complete` update ends the
// stream.
import { logger } from '@libp2p/logger'
import { lpStream } from '@libp2p/utils'
import { CID } from 'multiformats/cid'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { allSet } from '../bitmap.js'
import { isPeerFault, MalformedMessageError, ProtocolStatusError } from './errors.js'
import { decodeHaveMessage, decodeHaveRequest, encodeHaveMessage, encodeHaveRequest, MAX_HAVE_CHUNKS, MAX_HAVE_FRAME, Status } from './messages.js'

const log = logger('herald:have')

export const HAVE_PROTOCOL_VERSION = '1.0.0'
/** HAVE updates are batched for at least this long (one or two watchers) */
export const HAVE_BATCH_MS = 250
/** and for at most this long, however many watchers: a chunk's availability is never older than this */
export const HAVE_MAX_BATCH_MS = 1_000

/**
 * The batch interval when a node has `watchers` subscription streams open: 250 ms per two watchers, between
 * HAVE_BATCH_MS and HAVE_MAX_BATCH_MS. Each update wakes the watcher's scheduler, so a fixed interval makes a
 * node's update work grow with the number of peers trading the release; this keeps it about constant.
 */
export function haveBatchMs (watchers: number, min = HAVE_BATCH_MS, max = HAVE_MAX_BATCH_MS): number {
  return Math.min(max, min * Math.max(1, Math.ceil(watchers / 2)))
}
/** a subscription stream with no update for this long is closed (the watcher re-opens it) */
const DEFAULT_IDLE_TIMEOUT = 10 * 60_000
const MAX_STREAMS = 256
/** an idle subscription looks at its idle timeout this often */
const IDLE_CHECK_MS = 1_000

export interface HaveSnapshot { bitmap: Uint8Array, count: number }

export interface HaveExchangeInit {
  protocolPrefix?: string
  /** may load the release's ledger on first ask (a held release is opened lazily after a start) */
  getHave: (manifestCid: CID) => HaveSnapshot | undefined | Promise<HaveSnapshot | undefined>
  subscribe: (manifestCid: CID, listener: (indices: number[], complete: boolean) => void) => () => void
  maxChunks?: number
  timeout?: number
  /** the shortest and longest HAVE batch interval, ms (defaults HAVE_BATCH_MS, HAVE_MAX_BATCH_MS) */
  batchMs?: number
  maxBatchMs?: number
  onPeerMisbehaved?: (peer: PeerId, reason: string) => void
  /** a peer asked for a release's bitmap: it fetches or holds it (peer exchange tells others) */
  onWatch?: (manifestCid: CID, peer: PeerId) => void
}

export interface HaveExchangeComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
}

export interface HaveHandlers {
  onBitmap: (bitmap: Uint8Array, count: number) => void
  onUpdate: (indices: number[], complete: boolean) => void
}

export interface HaveExchange {
  watch: (peer: PeerId, manifestCid: CID, handlers: HaveHandlers, options?: { signal?: AbortSignal }) => Promise<void>
}

class DefaultHaveExchange implements HaveExchange, Startable {
  readonly protocol: string
  readonly #components: HaveExchangeComponents
  readonly #init: HaveExchangeInit
  readonly #idle: number
  readonly #batchMs: number
  readonly #maxBatchMs: number
  /** subscription streams open now (all manifests): what the batch interval scales with */
  #watchers = 0

  constructor (components: HaveExchangeComponents, init: HaveExchangeInit) {
    this.#components = components
    this.#init = init
    this.protocol = `${init.protocolPrefix ?? '/herald'}/have/${HAVE_PROTOCOL_VERSION}`
    this.#idle = init.timeout ?? DEFAULT_IDLE_TIMEOUT
    this.#batchMs = init.batchMs ?? HAVE_BATCH_MS
    this.#maxBatchMs = Math.max(this.#batchMs, init.maxBatchMs ?? HAVE_MAX_BATCH_MS)
  }

  async start (): Promise<void> {
    await this.#components.registrar.handle(this.protocol, (stream, connection) => {
      this.#handle(stream, connection).catch(err => {
        if (err instanceof TypeError || err instanceof RangeError) throw err
        log('have stream from %p ended: %s', connection.remotePeer, err.message)
      })
    }, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })
  }

  async stop (): Promise<void> {
    await this.#components.registrar.unhandle(this.protocol)
  }

  async #handle (stream: Stream, connection: Connection): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: 256 })
    let cid: CID
    try {
      cid = CID.decode(decodeHaveRequest(await lp.read({ signal: AbortSignal.timeout(10_000) })))
    } catch (err: any) {
      this.#init.onPeerMisbehaved?.(connection.remotePeer, 'malformed_have_request')
      stream.abort(err instanceof MalformedMessageError ? err : new MalformedMessageError('bad have request', { cause: err }))
      return
    }
    this.#init.onWatch?.(cid, connection.remotePeer)
    const have = await this.#init.getHave(cid)
    if (have == null) {
      await lp.write(encodeHaveMessage({ type: 'bitmap', status: Status.NOT_FOUND, count: 0, bitmap: new Uint8Array(0) }))
      await stream.close()
      return
    }
    // subscribe before sending the bitmap, so nothing stored in between is missed (duplicates are harmless)
    let pending: number[] = []
    let complete = false
    let wake: (() => void) | undefined
    const unsubscribe = this.#init.subscribe(cid, (indices, done) => {
      pending.push(...indices)
      complete ||= done
      wake?.()
    })
    let closed = false
    const onClose = (): void => { closed = true; wake?.() }
    stream.addEventListener('close', onClose)
    this.#watchers++
    try {
      const snapshot = (await this.#init.getHave(cid)) ?? have
      await lp.write(encodeHaveMessage({ type: 'bitmap', status: Status.OK, count: snapshot.count, bitmap: snapshot.bitmap }))
      let full = allSet(snapshot.bitmap, snapshot.count)
      let lastSent = Date.now()
      while (!closed && !full) {
        if (pending.length === 0 && !complete) {
          let timer: ReturnType<typeof setTimeout> | undefined
          await new Promise<void>(resolve => {
            wake = resolve
            timer = setTimeout(resolve, IDLE_CHECK_MS)
          })
          clearTimeout(timer)
          wake = undefined
          if (pending.length === 0 && !complete) {
            if (Date.now() - lastSent > this.#idle) break
            continue
          }
        }
        // the interval is taken when the batch starts: watchers that come or go change the next one
        await new Promise(resolve => setTimeout(resolve, haveBatchMs(this.#watchers, this.#batchMs, this.#maxBatchMs)))
        const indices = pending
        pending = []
        full = complete
        await lp.write(encodeHaveMessage({ type: 'update', complete, indices }))
        lastSent = Date.now()
      }
      if (!closed) await stream.close()
    } catch (err: any) {
      stream.abort(err)
    } finally {
      this.#watchers--
      unsubscribe()
      stream.removeEventListener('close', onClose)
    }
  }

  async watch (peer: PeerId, manifestCid: CID, handlers: HaveHandlers, options: { signal?: AbortSignal } = {}): Promise<void> {
    const stream = await this.#components.connectionManager.openStream(peer, this.protocol, { signal: options.signal })
    const lp = lpStream(stream, { maxDataLength: MAX_HAVE_FRAME })
    const maxChunks = Math.min(this.#init.maxChunks ?? MAX_HAVE_CHUNKS, MAX_HAVE_CHUNKS)
    const onAbort = (): void => { stream.abort(new Error('watch stopped')) }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await lp.write(encodeHaveRequest(manifestCid.bytes))
      const first = decodeHaveMessage(await lp.read({ signal: options.signal }))
      if (first.type !== 'bitmap') throw new MalformedMessageError('have stream must start with a bitmap')
      if (first.status === Status.NOT_FOUND) {
        await stream.close().catch(() => {})
        throw new ProtocolStatusError('NOT_FOUND', 'peer does not hold this manifest')
      }
      if (first.status !== Status.OK) throw new ProtocolStatusError('ERROR', `peer answered status ${first.status}`)
      if (first.count > maxChunks) throw new MalformedMessageError('have bitmap larger than the manifest allows')
      handlers.onBitmap(first.bitmap, first.count)
      if (allSet(first.bitmap, first.count)) {
        await stream.close().catch(() => {})
        return
      }
      while (true) {
        let frame
        try {
          frame = await lp.read({ signal: options.signal })
        } catch (err: any) {
          if (err.name === 'UnexpectedEOFError') return
          throw err
        }
        const m = decodeHaveMessage(frame)
        if (m.type !== 'update') throw new MalformedMessageError('only updates may follow the bitmap')
        if (m.indices.some(i => i >= first.count)) throw new MalformedMessageError('have update index out of range')
        handlers.onUpdate(m.indices, m.complete)
        if (m.complete) {
          await stream.close().catch(() => {})
          return
        }
      }
    } catch (err: any) {
      if (isPeerFault(err)) this.#init.onPeerMisbehaved?.(peer, 'malformed_have')
      stream.abort(err)
      throw err
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }
  }
}

export function haveExchange (init: HaveExchangeInit): (components: HaveExchangeComponents) => HaveExchange {
  return (components) => new DefaultHaveExchange(components, init)
}
