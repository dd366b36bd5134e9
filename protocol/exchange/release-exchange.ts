// /herald/release/1.0.0 (a signed release record by name) and /herald/manifest/1.0.0 (manifest bytes by
// CID, in frames of at most 1 MiB). Any peer is as good a source as the seed: records are signed and
// manifests content-addressed, and the caller checks both.
import { logger } from '@libp2p/logger'
import { lpStream } from '@libp2p/utils'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { InvalidManifestError } from '../errors.js'
import { isPeerFault, MalformedMessageError, ProtocolStatusError } from './errors.js'
import {
  decodeManifestHeader, decodeManifestRequest, decodeReleaseRequest, decodeReleaseResponse, encodeManifestHeader,
  encodeManifestRequest, encodeReleaseRequest, encodeReleaseResponse, MANIFEST_FRAME_BYTES, Status
} from './messages.js'

const log = logger('herald:release')

export const RELEASE_PROTOCOL_VERSION = '1.0.0'
const DEFAULT_TIMEOUT = 60_000
/** protocol/manifest.ts MAX_MANIFEST_BYTES: a larger announced manifest is refused before any of it is read */
const DEFAULT_MAX_MANIFEST_BYTES = 256 * 1024 * 1024
const MAX_RECORD_BYTES = 4096
const MAX_STREAMS = 32

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
  fetchManifest: (peer: PeerId, cid: CID, options?: { signal?: AbortSignal }) => Promise<Uint8Array | undefined>
}

class DefaultReleaseExchange implements ReleaseExchange, Startable {
  readonly releaseProtocol: string
  readonly manifestProtocol: string
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
    this.#timeout = init.timeout ?? DEFAULT_TIMEOUT
    this.#maxManifest = init.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES
  }

  async start (): Promise<void> {
    const opts = { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS }
    await this.#components.registrar.handle(this.releaseProtocol, (s, c) => { this.#guard(this.#handleRelease(s, c), s, c) }, opts)
    await this.#components.registrar.handle(this.manifestProtocol, (s, c) => { this.#guard(this.#handleManifest(s, c), s, c) }, opts)
  }

  async stop (): Promise<void> {
    await this.#components.registrar.unhandle(this.releaseProtocol)
    await this.#components.registrar.unhandle(this.manifestProtocol)
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

  async fetchManifest (peer: PeerId, cid: CID, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(this.#timeout)])
    const stream = await this.#components.connectionManager.openStream(peer, this.manifestProtocol, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: MANIFEST_FRAME_BYTES })
      await lp.write(encodeManifestRequest(cid.bytes), { signal })
      const header = decodeManifestHeader(await lp.read({ signal }))
      if (header.status === Status.NOT_FOUND) {
        await stream.close({ signal }).catch(() => {})
        return undefined
      }
      if (header.status !== Status.OK) throw new ProtocolStatusError('ERROR', `peer answered status ${header.status}`)
      // refused on the announced size, before any of it is read (an honest peer may hold a manifest over our limit)
      if (header.total > this.#maxManifest) throw new InvalidManifestError(`manifest of ${header.total} bytes is over the ${this.#maxManifest}-byte limit`)
      const data = new Uint8ArrayList()
      while (data.byteLength < header.total) {
        const frame = await lp.read({ signal })
        if (data.byteLength + frame.byteLength > header.total) throw new MalformedMessageError('manifest longer than announced')
        data.append(frame)
      }
      await stream.close({ signal }).catch(() => {})
      return data.subarray()
    } catch (err: any) {
      if (isPeerFault(err)) this.#init.onPeerMisbehaved?.(peer, 'malformed_manifest')
      stream.abort(err)
      throw err
    }
  }
}

export function releaseExchange (init: ReleaseExchangeInit): (components: ReleaseExchangeComponents) => ReleaseExchange {
  return (components) => new DefaultReleaseExchange(components, init)
}
