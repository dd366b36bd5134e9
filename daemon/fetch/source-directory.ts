// The sources of one fetch: for each peer the have-ledger lists, its HTTP chunk listener when it announced
// one (an /http or /tls/http multiaddr that identify carried into the peer store) and HTTP bulk transfer
// is allowed, else the libp2p chunk exchange; plus the configured static origins. libp2p stays the control
// plane either way (have-bitmaps, records, manifests). HTTP clients keep their connections for the fetch
// and are closed with the directory.
import { logger } from '@libp2p/logger'
import { httpUrlOf } from '../http/announce.js'
import { HttpChunkSource } from './http-source.js'
import { Libp2pChunkSource } from './libp2p-source.js'
import type { Source, SourceDirectory } from './source.js'
import type { ChunkExchange } from '../../protocol/exchange/index.js'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('herald:fetch')

/** a peer whose addresses showed no HTTP listener (identify may not have run yet) is looked up again after this long, ms (a local peer-store read) */
const LOOKUP_AGAIN_MS = 500

export interface FetchSourcesInit {
  chunks: Pick<ChunkExchange, 'fetch'>
  /** requests in flight to one peer (limits.maxInflightPerPeer) */
  window: number
  /** fetch from peers' HTTP listeners when they announce one (false: bulk stays on libp2p) */
  httpPeers: boolean
  /** a peer's addresses (the peer store's); needed only when httpPeers */
  addressesOf?: (peerId: string) => Promise<Multiaddr[]>
  /** static origins: base URLs of exported releases */
  origins?: string[]
  /** requests in flight to one HTTP source */
  httpWindow: number
  /** PEM certificate(s) to trust for https sources, besides the system's */
  ca?: string | Buffer
  now?: () => number
}

export class FetchSources implements SourceDirectory {
  readonly #init: FetchSourcesInit
  readonly #now: () => number
  readonly #libp2p = new Map<string, Libp2pChunkSource>()
  readonly #http = new Map<string, HttpChunkSource>()
  /** peer → its HTTP base URL ('' none found), and when it was looked up */
  readonly #urls = new Map<string, { url: string, at: number }>()
  readonly #lookups = new Set<string>()
  readonly #origins: HttpChunkSource[]
  #closed = false

  constructor (init: FetchSourcesInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    this.#origins = (init.origins ?? []).map(url => new HttpChunkSource({ id: url, kind: 'origin', baseUrl: url, window: init.httpWindow, ca: init.ca }))
  }

  origins (): Source[] { return this.#origins }

  forPeer (peerId: string, seed: boolean): Source {
    const kind = seed ? 'seed' : 'peer'
    const url = this.#httpUrl(peerId)
    if (url != null) {
      const key = `${peerId} ${url} ${kind}`
      let s = this.#http.get(key)
      if (s == null) {
        s = new HttpChunkSource({ id: peerId, kind, baseUrl: url, window: this.#init.httpWindow, ca: this.#init.ca })
        this.#http.set(key, s)
        log('%s: chunks over HTTP from %s', peerId, url)
      }
      return s
    }
    const key = `${peerId} ${kind}`
    let s = this.#libp2p.get(key)
    if (s == null) {
      s = new Libp2pChunkSource(this.#init.chunks, peerId, kind, this.#init.window)
      this.#libp2p.set(key, s)
    }
    return s
  }

  /** The peer's HTTP URL when known; otherwise a lookup starts and the libp2p path serves meanwhile. */
  #httpUrl (peerId: string): string | undefined {
    const { httpPeers, addressesOf } = this.#init
    if (!httpPeers || addressesOf == null) return undefined
    const known = this.#urls.get(peerId)
    if (known != null && (known.url !== '' || this.#now() - known.at < LOOKUP_AGAIN_MS)) return known.url === '' ? undefined : known.url
    if (!this.#lookups.has(peerId) && !this.#closed) {
      this.#lookups.add(peerId)
      addressesOf(peerId).then(addrs => {
        const url = addrs.map(a => httpUrlOf(a)).find(u => u != null) ?? ''
        this.#urls.set(peerId, { url, at: this.#now() })
      }, () => {
        this.#urls.set(peerId, { url: '', at: this.#now() })
      }).finally(() => { this.#lookups.delete(peerId) })
    }
    return known?.url === '' || known == null ? undefined : known.url
  }

  /** HTTP sources used so far (tests, logs) */
  get httpSources (): HttpChunkSource[] { return [...this.#http.values(), ...this.#origins] }

  close (): void {
    this.#closed = true
    for (const s of this.#http.values()) s.close()
    for (const s of this.#origins) s.close()
  }
}
