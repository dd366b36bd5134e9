// /herald/release/1.0.0 (a signed release record by name) and /herald/manifest/1.0.0 (manifest bytes by
// CID, in frames of at most 1 MiB). Any peer is as good a source as the seed: records are signed and
// manifests content-addressed, and the caller checks both.
import { logger } from '@libp2p/logger'
import { LRUCache } from 'lru-cache'
import { lpStream } from '@libp2p/utils'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { InvalidManifestError } from '../errors.js'
import { decodeManifestDelta, encodeManifestDelta } from '../manifest-delta.js'
import { isPeerFault, MalformedMessageError, ProtocolStatusError } from './errors.js'
import {
  decodeManifestHeader, decodeManifestHeaderV2, decodeManifestRequest, decodeManifestRequestV2, decodeReleaseRequest,
  decodeReleaseResponse, encodeManifestHeader, encodeManifestHeaderV2, encodeManifestRequest, encodeManifestRequestV2,
  encodeReleaseRequest, encodeReleaseResponse, MANIFEST_FRAME_BYTES, Status
} from './messages.js'

const log = logger('herald:release')

export const RELEASE_PROTOCOL_VERSION = '1.0.0'
const DEFAULT_TIMEOUT = 60_000
/** protocol/manifest.ts MAX_MANIFEST_BYTES: a larger announced manifest is refused before any of it is read */
const DEFAULT_MAX_MANIFEST_BYTES = 256 * 1024 * 1024
const MAX_RECORD_BYTES = 4096
const MAX_STREAMS = 32
/** /herald/manifest/1.1.0 answers with a delta against a base manifest the asker names, when that is smaller */
export const MANIFEST_DELTA_PROTOCOL_VERSION = '1.1.0'
/** a delta is sent only below this share of the manifest (else the raw bytes: no decode work for little gain) */
const DELTA_WORTH = 0.8
/** encoded manifest deltas kept for the next asker (release day: every lab asks for the same pair), bytes */
const DELTA_CACHE_BYTES = 64 * 1024 * 1024

export interface ReleaseExchangeInit {
  protocolPrefix?: string
  getRelease: (dataset: string, version: string) => Promise<Uint8Array | undefined>
  getManifest: (cid: CID) => Promise<Uint8Array | undefined>
  maxManifestBytes?: number
  timeout?: number
  onPeerMisbehaved?: (peer: PeerId, reason: string) => void
}

export interface ReleaseExchangeComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
}

export interface ReleaseExchange {
  fetchRelease: (peer: PeerId, dataset: string, version: string, options?: { signal?: AbortSignal }) => Promise<Uint8Array | undefined>
  /**
   * A manifest's bytes (unverified: the caller checks them against `cid`). With `base`, a manifest the
   * caller holds, a peer that holds it too may send a delta against it; `onWire` learns the bytes moved.
   */
  fetchManifest: (peer: PeerId, cid: CID, options?: ManifestFetchOptions) => Promise<Uint8Array | undefined>
}

export interface ManifestFetchOptions {
  signal?: AbortSignal
  base?: { cid: CID, bytes: Uint8Array }
  onWire?: (bytes: number, delta: boolean) => void
}

class DefaultReleaseExchange implements ReleaseExchange, Startable {
  readonly releaseProtocol: string
  readonly manifestProtocol: string
  readonly manifestDeltaProtocol: string
  readonly #deltas = new LRUCache<string, Uint8Array>({ maxSize: DELTA_CACHE_BYTES, sizeCalculation: (v) => Math.max(1, v.byteLength) })
  readonly #encoding = new Map<string, Promise<Uint8Array | undefined>>()
  readonly #components: ReleaseExchangeComponents
  readonly #init: ReleaseExchangeInit
  readonly #timeout: number
  readonly #maxManifest: number

  constructor (components: ReleaseExchangeComponents, init: ReleaseExchangeInit) {
    this.#components = components
    this.#init = init
    const prefix = init.protocolPrefix ?? '/herald'
    this.releaseProtocol = `${prefix}/release/${RELEASE_PROTOCOL_VERSION}`
    this.manifestProtocol = `${prefix}/manifest/${RELEASE_PROTOCOL_VERSION}`
    this.manifestDeltaProtocol = `${prefix}/manifest/${MANIFEST_DELTA_PROTOCOL_VERSION}`
    this.#timeout = init.timeout ?? DEFAULT_TIMEOUT
    this.#maxManifest = init.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES
  }

  async start (): Promise<void> {
    const opts = { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS }
    await this.#components.registrar.handle(this.releaseProtocol, (s, c) => { this.#guard(this.#handleRelease(s, c), s, c) }, opts)
    await this.#components.registrar.handle(this.manifestProtocol, (s, c) => { this.#guard(this.#handleManifest(s, c), s, c) }, opts)
    await this.#components.registrar.handle(this.manifestDeltaProtocol, (s, c) => { this.#guard(this.#handleManifestV2(s, c), s, c) }, opts)
  }

  async stop (): Promise<void> {
    await this.#components.registrar.unhandle(this.releaseProtocol)
    await this.#components.registrar.unhandle(this.manifestProtocol)
    await this.#components.registrar.unhandle(this.manifestDeltaProtocol)
  }

  #guard (p: Promise<void>, stream: Stream, connection: Connection): void {
    p.catch(err => {
      if (err instanceof TypeError || err instanceof RangeError) throw err
      if (isPeerFault(err)) this.#init.onPeerMisbehaved?.(connection.remotePeer, 'malformed_request')
      log('stream from %p failed: %s', connection.remotePeer, err.message)
      stream.abort(err)
    })
  }

  async #handleRelease (stream: Stream, _connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.#timeout)
    const lp = lpStream(stream, { maxDataLength: 600 })
    const { dataset, version } = decodeReleaseRequest(await lp.read({ signal }))
    let record: Uint8Array | undefined
    let status = Status.OK
    try {
      record = await this.#init.getRelease(dataset, version)
      if (record == null) status = Status.NOT_FOUND
    } catch (err: any) {
      log.error('reading release record failed: %s', err.message)
      status = Status.ERROR
    }
    await lp.write(encodeReleaseResponse(status, status === Status.OK ? record : undefined), { signal })
    await stream.close({ signal })
  }

  async #handleManifest (stream: Stream, _connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.#timeout)
    const lp = lpStream(stream, { maxDataLength: 256 })
    let cid: CID
    try {
      cid = CID.decode(decodeManifestRequest(await lp.read({ signal })))
    } catch (err) {
      throw err instanceof MalformedMessageError ? err : new MalformedMessageError('bad manifest request', { cause: err })
    }
    let bytes: Uint8Array | undefined
    let status = Status.OK
    try {
      bytes = await this.#init.getManifest(cid)
      if (bytes == null) status = Status.NOT_FOUND
    } catch (err: any) {
      log.error('reading manifest failed: %s', err.message)
      status = Status.ERROR
    }
    await lp.write(encodeManifestHeader(status, bytes?.byteLength ?? 0), { signal })
    if (bytes != null && status === Status.OK) {
      for (let o = 0; o < bytes.byteLength; o += MANIFEST_FRAME_BYTES) {
        await lp.write(bytes.subarray(o, Math.min(bytes.byteLength, o + MANIFEST_FRAME_BYTES)), { signal })
      }
    }
    await stream.close({ signal })
  }

  async #handleManifestV2 (stream: Stream, _connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.#timeout)
    const lp = lpStream(stream, { maxDataLength: 256 })
    let cid: CID
    let base: CID | undefined
    try {
      const req = decodeManifestRequestV2(await lp.read({ signal }))
      cid = CID.decode(req.cid)
      if (req.base != null) base = CID.decode(req.base)
    } catch (err) {
      throw err instanceof MalformedMessageError ? err : new MalformedMessageError('bad manifest request', { cause: err })
    }
    let bytes: Uint8Array | undefined
    let delta: Uint8Array | undefined
    let status = Status.OK
    try {
      bytes = await this.#init.getManifest(cid)
      if (bytes == null) status = Status.NOT_FOUND
      else if (base != null && !base.equals(cid)) delta = await this.#delta(cid, bytes, base)
    } catch (err: any) {
      log.error('reading manifest failed: %s', err.message)
      status = Status.ERROR
    }
    const body = status === Status.OK ? delta ?? bytes : undefined
    await lp.write(encodeManifestHeaderV2(status, status === Status.OK ? bytes?.byteLength ?? 0 : 0, delta != null, body?.byteLength ?? 0), { signal })
    if (body != null) {
      for (let o = 0; o < body.byteLength; o += MANIFEST_FRAME_BYTES) {
        await lp.write(body.subarray(o, Math.min(body.byteLength, o + MANIFEST_FRAME_BYTES)), { signal })
      }
    }
    await stream.close({ signal })
  }

  /** The delta of `cid` against `base`, when this node holds the base and the delta is worth it (cached). */
  async #delta (cid: CID, bytes: Uint8Array, base: CID): Promise<Uint8Array | undefined> {
    const key = `${cid.toString()}:${base.toString()}`
    const cached = this.#deltas.get(key)
    if (cached != null) return cached.byteLength === 0 ? undefined : cached
    let running = this.#encoding.get(key)
    if (running == null) {
      running = (async () => {
        const baseBytes = await this.#init.getManifest(base)
        if (baseBytes == null) return undefined
        const d = encodeManifestDelta(bytes, baseBytes)
        const worth = d.byteLength < bytes.byteLength * DELTA_WORTH
        // an empty entry remembers "not worth it"
        this.#deltas.set(key, worth ? d : new Uint8Array(0))
        return worth ? d : undefined
      })().finally(() => { this.#encoding.delete(key) })
      this.#encoding.set(key, running)
    }
    return await running
  }

  async fetchRelease (peer: PeerId, dataset: string, version: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(this.#timeout)])
    const stream = await this.#components.connectionManager.openStream(peer, this.releaseProtocol, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: 1 + MAX_RECORD_BYTES })
      await lp.write(encodeReleaseRequest(dataset, version), { signal })
      const r = decodeReleaseResponse(await lp.read({ signal }))
      await stream.close({ signal }).catch(() => {})
      if (r.status === Status.NOT_FOUND) return undefined
      if (r.status !== Status.OK) throw new ProtocolStatusError('ERROR', `peer answered status ${r.status}`)
      return r.record
    } catch (err: any) {
      if (isPeerFault(err)) this.#init.onPeerMisbehaved?.(peer, 'malformed_release')
      stream.abort(err)
      throw err
    }
  }

  async fetchManifest (peer: PeerId, cid: CID, options: ManifestFetchOptions = {}): Promise<Uint8Array | undefined> {
    const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(this.#timeout)])
    // the delta-capable protocol first; a peer of an older version answers the raw one
    const stream = await this.#components.connectionManager.openStream(peer, [this.manifestDeltaProtocol, this.manifestProtocol], { signal })
    const v2 = stream.protocol === this.manifestDeltaProtocol
    try {
      const lp = lpStream(stream, { maxDataLength: MANIFEST_FRAME_BYTES })
      await lp.write(v2 ? encodeManifestRequestV2(cid.bytes, options.base?.cid.bytes) : encodeManifestRequest(cid.bytes), { signal })
      const frame = await lp.read({ signal })
      const header = v2 ? decodeManifestHeaderV2(frame) : rawHeader(decodeManifestHeader(frame))
      if (header.status === Status.NOT_FOUND) {
        await stream.close({ signal }).catch(() => {})
        return undefined
      }
      if (header.status !== Status.OK) throw new ProtocolStatusError('ERROR', `peer answered status ${header.status}`)
      // refused on the announced size, before any of it is read (an honest peer may hold a manifest over our limit)
      if (header.total > this.#maxManifest) throw new InvalidManifestError(`manifest of ${header.total} bytes is over the ${this.#maxManifest}-byte limit`)
      if (header.delta && options.base == null) throw new MalformedMessageError('a manifest delta nobody asked for')
      const data = new Uint8ArrayList()
      while (data.byteLength < header.wire) {
        const frame = await lp.read({ signal })
        if (data.byteLength + frame.byteLength > header.wire) throw new MalformedMessageError('manifest longer than announced')
        data.append(frame)
      }
      await stream.close({ signal }).catch(() => {})
      options.onWire?.(header.wire, header.delta)
      if (!header.delta) return data.subarray()
      return decodeManifestDelta(data.subarray(), (options.base as { bytes: Uint8Array }).bytes, header.total, this.#maxManifest)
    } catch (err: any) {
      if (isPeerFault(err)) this.#init.onPeerMisbehaved?.(peer, 'malformed_manifest')
      stream.abort(err)
      throw err
    }
  }
}

/** a version-1 header: the raw manifest follows */
function rawHeader (h: { status: Status, total: number }): { status: Status, total: number, delta: boolean, wire: number } {
  return { ...h, delta: false, wire: h.total }
}

export function releaseExchange (init: ReleaseExchangeInit): (components: ReleaseExchangeComponents) => ReleaseExchange {
  return (components) => new DefaultReleaseExchange(components, init)
}
