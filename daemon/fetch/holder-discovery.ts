// Finding the holders of a release while it is fetched: every connected peer is asked for its
// have-bitmap (and watched for HAVE updates); the DHT is asked for the manifest's providers at the start,
// then at doubling intervals from 2 s up to 60 s; peers the DHT or the peer store know of are dialled
// (bounded). A DHT query is the expensive part (every node on the path decodes it and updates its peer
// store and routing table), and on release day every downloader would run one each second: the peers
// that matter are usually connected already (the seed, the DHT neighbours, whoever connected to us), so
// lookups only need to find the rest.
import { logger } from '@libp2p/logger'
import type { HaveExchange, PexExchange } from '../../protocol/exchange/index.js'
import type { ReleaseSwarm } from './swarm.js'
import type { Libp2p, PeerId } from '@libp2p/interface'

const log = logger('herald:discovery')

/** connected peers are re-examined this often, ms */
const DISCOVERY_INTERVAL_MS = 1_000
/** findProviders intervals: right away, then from 2 s doubling up to 60 s (a new provider does not reset it) */
const FIND_PROVIDERS_MIN_MS = 2_000
const FIND_PROVIDERS_MAX_MS = 60_000
/** a fetch is young for this long: the peer store is scanned for peers to dial */
const YOUNG_MS = 20_000
/** how often the peer store is scanned for peers to dial, ms */
const PEER_STORE_SCAN_MS = 5_000
/** peers known from the DHT that one fetch dials to look for holders */
const MAX_FETCH_DIALS = 32
/** each watched peer is asked for others at most this often while the fetch is young, and later, ms */
const PEX_YOUNG_MS = 2_000
const PEX_LATER_MS = 15_000
/** errors of a have stream that are the peer's doing: a frame that does not decode, or one over the limit */
const MALFORMED = new Set(['MalformedMessageError', 'InvalidDataLengthError', 'InvalidMessageLengthError', 'InvalidDataLengthLengthError'])

export interface HolderDiscoveryInit {
  libp2p: Pick<Libp2p, 'peerId' | 'getPeers' | 'getConnections' | 'dial' | 'peerStore' | 'contentRouting'>
  have: HaveExchange
  /** peer exchange: holders ask each other who else fetches or holds the release */
  pex?: PexExchange
  swarm: ReleaseSwarm
  isSeed: (peer: PeerId) => Promise<boolean>
  onPeers?: (count: number) => void
  /** a peer sent a malformed have frame */
  onMisbehaviour?: (peer: PeerId, reason: string) => void
  /** how often connected peers are re-examined, ms (tests) */
  intervalMs?: number
}

export class HolderDiscovery {
  readonly #init: HolderDiscoveryInit
  readonly #watching = new Map<string, AbortController>()
  /**
   * Peers whose whole bitmap arrived (a seed, a lab that holds the release): their watch ends there, as
   * nothing will change, and they are not watched again while they count as complete. Re-watching them
   * every pass cost each holder a stream and a whole bitmap per downloader per second.
   */
  readonly #complete = new Set<string>()
  readonly #dialed = new Set<string>()
  readonly #controller = new AbortController()
  #finding = false
  #findInterval = FIND_PROVIDERS_MIN_MS
  #findTimer: ReturnType<typeof setTimeout> | undefined
  #discoverTimer: ReturnType<typeof setInterval> | undefined
  #started = 0
  #lastPeerStoreScan = 0
  /** per peer: when it was last asked for others (peer exchange) */
  readonly #pexAsked = new Map<string, number>()

  constructor (init: HolderDiscoveryInit) {
    this.#init = init
  }

  #parent: AbortSignal | undefined
  readonly #onParentAbort = (): void => { this.stop() }

  start (parent: AbortSignal): void {
    this.#parent = parent
    parent.addEventListener('abort', this.#onParentAbort, { once: true })
    this.#started = Date.now()
    this.#discover()
    this.#findLoop()
    this.#discoverTimer = setInterval(() => { this.#discover() }, this.#init.intervalMs ?? DISCOVERY_INTERVAL_MS)
  }

  stop (): void {
    // the fetch's signal outlives this: the listener (and all it holds) goes now
    this.#parent?.removeEventListener('abort', this.#onParentAbort)
    this.#controller.abort()
    clearInterval(this.#discoverTimer)
    clearTimeout(this.#findTimer)
  }

  get #signal (): AbortSignal { return this.#controller.signal }

  #watch (peer: PeerId): void {
    const { libp2p, swarm } = this.#init
    const id = peer.toString()
    if (this.#signal.aborted || this.#watching.has(id) || peer.equals(libp2p.peerId)) return
    if (this.#complete.has(id)) {
      if (swarm.remotes.get(id)?.complete === true) return
      // it answered NOT_FOUND for some chunk since, or its claims were dropped: ask it again
      this.#complete.delete(id)
    }
    const ctl = new AbortController()
    this.#watching.set(id, ctl)
    void (async () => {
      const seed = await this.#init.isSeed(peer)
      await this.#init.have.watch(peer, swarm.manifestCid, {
        onBitmap: (bitmap) => { swarm.setRemote(id, bitmap, seed) },
        onUpdate: (indices, complete) => { swarm.updateRemote(id, indices, complete) }
      }, { signal: AbortSignal.any([this.#signal, ctl.signal]) })
    })().catch((err: any) => {
      // a malformed frame (bad bitmap, index out of range) counts against the peer
      if (MALFORMED.has(err?.name) || err?.code === 'MALFORMED_MESSAGE') {
        this.#init.onMisbehaviour?.(peer, 'malformed_have')
        swarm.removeRemote(id)
      }
      log('have watch of %s ended: %s', id, err.message)
    }).finally(() => {
      this.#watching.delete(id)
      const remote = swarm.remotes.get(id)
      if (remote != null && !remote.complete) swarm.removeRemote(id)
      else if (remote?.complete === true) this.#complete.add(id)
    })
  }

  #discover (): void {
    const { libp2p } = this.#init
    for (const peer of libp2p.getPeers()) this.#watch(peer)
    this.#init.onPeers?.(this.#init.swarm.remotes.size)
    this.#exchange()
    // peers the DHT has told us about may be fetching the same release: connect to a bounded number,
    // looking at the peer store (costly: it decodes every record) every few seconds while the fetch is young
    if (libp2p.getPeers().length >= MAX_FETCH_DIALS) return
    const now = Date.now()
    if (now - this.#started > YOUNG_MS || now - this.#lastPeerStoreScan < PEER_STORE_SCAN_MS) return
    this.#lastPeerStoreScan = now
    void libp2p.peerStore.all().then(known => {
      for (const p of known) {
        const id = p.id.toString()
        if (this.#dialed.size >= MAX_FETCH_DIALS || this.#dialed.has(id) || p.id.equals(libp2p.peerId) || p.addresses.length === 0) continue
        if (libp2p.getConnections(p.id).length > 0) continue
        this.#dialed.add(id)
        libp2p.dial(p.id, { signal: AbortSignal.any([this.#signal, AbortSignal.timeout(5_000)]) }).then(() => { this.#watch(p.id) }, () => {})
      }
    }, () => {})
  }

  /**
   * Peer exchange: ask the peers this fetch watches (the seed among them) who else fetches or holds the
   * release, and dial those (bounded, like any dial of this fetch): downloaders trade from the first
   * seconds instead of after DHT provider records have spread.
   */
  #exchange (): void {
    const { libp2p, swarm, pex } = this.#init
    if (pex == null) return
    const now = Date.now()
    const every = now - this.#started < YOUNG_MS ? PEX_YOUNG_MS : PEX_LATER_MS
    for (const id of this.#watching.keys()) {
      if (now - (this.#pexAsked.get(id) ?? 0) < every) continue
      this.#pexAsked.set(id, now)
      const peer = libp2p.getPeers().find(p => p.toString() === id)
      if (peer == null) continue
      void pex.peers(peer, swarm.manifestCid, { signal: AbortSignal.any([this.#signal, AbortSignal.timeout(5_000)]) }).then(async found => {
        for (const { id: other, addrs } of found) {
          const key = other.toString()
          if (other.equals(libp2p.peerId) || this.#watching.has(key)) continue
          if (libp2p.getConnections(other).length > 0) { this.#watch(other); continue }
          if (this.#dialed.size >= MAX_FETCH_DIALS || this.#dialed.has(key) || addrs.length === 0) continue
          this.#dialed.add(key)
          await libp2p.peerStore.merge(other, { multiaddrs: addrs }).catch(() => {})
          libp2p.dial(other, { signal: AbortSignal.any([this.#signal, AbortSignal.timeout(5_000)]) }).then(() => { this.#watch(other) }, () => {})
        }
      }, (err: any) => {
        if (err?.code === 'MALFORMED_MESSAGE') this.#init.onMisbehaviour?.(peer, 'malformed_pex')
        log('pex with %s failed: %s', id, err.message)
      })
    }
  }

  async #findProviders (): Promise<void> {
    const { libp2p, swarm } = this.#init
    try {
      for await (const p of libp2p.contentRouting.findProviders(swarm.manifestCid, { signal: AbortSignal.any([this.#signal, AbortSignal.timeout(10_000)]) })) {
        if (p.id.equals(libp2p.peerId)) continue
        if (libp2p.getConnections(p.id).length === 0) {
          try {
            await libp2p.dial(p.id, { signal: AbortSignal.any([this.#signal, AbortSignal.timeout(5_000)]) })
          } catch { continue }
        }
        this.#watch(p.id)
      }
    } catch (err: any) {
      log('findProviders ended: %s', err.message)
    }
  }

  #findLoop (): void {
    if (this.#signal.aborted || this.#finding) return
    this.#finding = true
    void this.#findProviders().finally(() => {
      this.#finding = false
      if (this.#signal.aborted) return
      this.#findTimer = setTimeout(() => { this.#findLoop() }, this.#findInterval)
      this.#findInterval = Math.min(FIND_PROVIDERS_MAX_MS, this.#findInterval * 2)
    })
  }
}
