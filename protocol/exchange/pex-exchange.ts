// /herald/pex/1.0.0 — peer exchange: "who else is fetching or holding this release?" A node answers with
// the peers that recently asked it for the release's have-bitmap (and so fetch or hold it), with the
// addresses its peer store has for them. Downloaders find each other from the first seconds of a fetch, from
// the seed and from each other, instead of waiting for DHT provider records (which take seconds to
// propagate and cost every DHT node on the path). Answers are bounded (32 peers, 4 addresses each), and
// the asker decides whom it dials (holder discovery bounds that too).
import { logger } from '@libp2p/logger'
import { peerIdFromMultihash } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import * as Digest from 'multiformats/hashes/digest'
import { CID } from 'multiformats/cid'
import { isPeerFault, MalformedMessageError } from './errors.js'
import { decodeHaveRequest, decodePexResponse, encodeHaveRequest, encodePexResponse, PEX_MAX_ADDRS, PEX_MAX_PEERS } from './messages.js'
import type { Connection, PeerId, PeerStore, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'

const log = logger('herald:pex')

export const PEX_PROTOCOL_VERSION = '1.0.0'
const TIMEOUT_MS = 10_000
const MAX_STREAMS = 16
const MAX_RESPONSE_BYTES = 16 * 1024

export interface PexPeer { id: PeerId, addrs: Multiaddr[] }

export interface PexExchangeInit {
  protocolPrefix?: string
  /** peers known to fetch or hold this release, not counting `asker` (most recent first) */
  getPeers: (manifestCid: CID, asker: PeerId) => PeerId[]
  onPeerMisbehaved?: (peer: PeerId, reason: string) => void
}

export interface PexExchangeComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
  peerStore: PeerStore
}

export interface PexExchange {
  /** Ask `peer` who else fetches or holds the release `manifestCid`. */
  peers: (peer: PeerId, manifestCid: CID, options?: { signal?: AbortSignal }) => Promise<PexPeer[]>
}

class DefaultPexExchange implements PexExchange, Startable {
  readonly protocol: string
  readonly #components: PexExchangeComponents
  readonly #init: PexExchangeInit

  constructor (components: PexExchangeComponents, init: PexExchangeInit) {
    this.#components = components
    this.#init = init
    this.protocol = `${init.protocolPrefix ?? '/herald'}/pex/${PEX_PROTOCOL_VERSION}`
  }

  async start (): Promise<void> {
    await this.#components.registrar.handle(this.protocol, (stream, connection) => {
      this.#handle(stream, connection).catch(err => {
        if (isPeerFault(err)) this.#init.onPeerMisbehaved?.(connection.remotePeer, 'malformed_pex_request')
        log('pex stream from %p failed: %s', connection.remotePeer, err.message)
        stream.abort(err)
      })
    }, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })
  }

  async stop (): Promise<void> {
    await this.#components.registrar.unhandle(this.protocol)
  }

  async #handle (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(TIMEOUT_MS)
    const lp = lpStream(stream, { maxDataLength: 256 })
    let cid: CID
    try {
      cid = CID.decode(decodeHaveRequest(await lp.read({ signal })))
    } catch (err) {
      throw err instanceof MalformedMessageError ? err : new MalformedMessageError('bad pex request', { cause: err })
    }
    const entries = []
    for (const id of this.#init.getPeers(cid, connection.remotePeer)) {
      if (entries.length >= PEX_MAX_PEERS) break
      if (id.equals(connection.remotePeer)) continue
      const addrs = await this.#components.peerStore.get(id).then(p => p.addresses.map(a => a.multiaddr), () => [])
      if (addrs.length === 0) continue
      entries.push({ id: id.toMultihash().bytes, addrs: addrs.slice(0, PEX_MAX_ADDRS).map(a => a.bytes) })
    }
    await lp.write(encodePexResponse(entries), { signal })
    await stream.close({ signal })
  }

  async peers (peer: PeerId, manifestCid: CID, options: { signal?: AbortSignal } = {}): Promise<PexPeer[]> {
    const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(TIMEOUT_MS)])
    const stream = await this.#components.connectionManager.openStream(peer, this.protocol, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_RESPONSE_BYTES })
      await lp.write(encodeHaveRequest(manifestCid.bytes), { signal })
      const entries = decodePexResponse(await lp.read({ signal }))
      await stream.close({ signal }).catch(() => {})
      const out: PexPeer[] = []
      for (const e of entries) {
        try {
          out.push({ id: peerIdFromMultihash(Digest.decode(e.id)), addrs: e.addrs.map(a => multiaddr(a)) })
        } catch (err) {
          throw new MalformedMessageError('a pex entry that is not a peer id and multiaddrs', { cause: err })
        }
      }
      return out
    } catch (err: any) {
      if (isPeerFault(err)) this.#init.onPeerMisbehaved?.(peer, 'malformed_pex')
      stream.abort(err)
      throw err
    }
  }
}

export function pexExchange (init: PexExchangeInit): (components: PexExchangeComponents) => PexExchange {
  return (components) => new DefaultPexExchange(components, init)
}
