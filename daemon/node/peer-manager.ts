// Peers: which ones are seeds (from configuration only), bootstrap dials, waiting for a seed before a record
// lookup, RTTs, and the penalties a misbehaving peer earns.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { RepeatWarning } from '../repeat-warning.js'
import type { HeraldConfig } from '../config.js'
import type { PeerStats } from '../fetch/peer-stats.js'
import type { Log } from '../log.js'
import type { HeraldMetrics } from '../metrics.js'
import type { PeerInfo } from '../types.js'
import type { Libp2p, PeerId, Startable } from '@libp2p/interface'

const CONNECT_WAIT_MS = 10_000
/** how long a record lookup waits for a seed once other peers are connected (the seed is not required) */
const SEED_GRACE_MS = 2_000
const BOOTSTRAP_EVERY_MS = 10_000
const RTT_EVERY_MS = 5_000

/** Counts a peer's misbehaviour against it. Built before libp2p: the protocol services report through it. */
export class PeerPenalties {
  readonly #stats: PeerStats
  readonly #metrics?: HeraldMetrics
  readonly #log: Log

  constructor (init: { stats: PeerStats, metrics?: HeraldMetrics, log: Log }) {
    this.#stats = init.stats
    this.#metrics = init.metrics
    this.#log = init.log
  }

  penalize (peer: PeerId | string, reason: string): void {
    this.#stats.penalize(peer.toString())
    this.#metrics?.peerErrorsTotal.inc({ kind: reason })
    this.#metrics?.peerPenaltiesTotal.inc()
    this.#log.warn({ peer: peer.toString(), reason }, 'peer misbehaved')
  }
}

export interface PeerManagerInit {
  libp2p: Pick<Libp2p, 'dial' | 'getConnections' | 'getPeers' | 'addEventListener' | 'removeEventListener'>
  config: Pick<HeraldConfig, 'bootstrap' | 'seeds'>
  stats: PeerStats
  log: Log
  /** a peer disconnected: what it held is no longer a source */
  onDisconnect?: (peerId: string) => void
}

export class PeerManager implements Startable {
  readonly #init: PeerManagerInit
  readonly #warning: RepeatWarning
  /** the seeds' peer IDs: from configuration, or learned by dialing a bootstrap address */
  readonly #seeds = new Set<string>()
  #timers: Array<ReturnType<typeof setInterval>> = []
  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => { this.#init.onDisconnect?.(evt.detail.toString()) }

  constructor (init: PeerManagerInit) {
    this.#init = init
    this.#warning = new RepeatWarning(init.log)
    for (const id of init.config.seeds) this.#seeds.add(id)
    if (init.config.seeds.length === 0) {
      for (const addr of init.config.bootstrap) {
        try {
          const id = multiaddr(addr).getComponents().find(c => c.name === 'p2p')?.value
          if (id != null) this.#seeds.add(id)
        } catch {}
      }
    }
  }

  start (): void {
    this.#init.libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    void this.bootstrap()
    this.#timers.push(setInterval(() => { void this.bootstrap() }, BOOTSTRAP_EVERY_MS))
    this.#timers.push(setInterval(() => { this.#recordRtts() }, RTT_EVERY_MS))
    for (const t of this.#timers) t.unref()
  }

  stop (): void {
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    this.#init.libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
  }

  /**
   * Is this peer a seed? Only configuration says so — the `seeds` list, or, when that is empty, the peer a
   * configured bootstrap address led to — never what the peer says about itself.
   */
  isSeed (peerId: PeerId | string): boolean {
    return this.#seeds.has(peerId.toString())
  }

  /** Dial every bootstrap address not connected yet. */
  async bootstrap (): Promise<void> {
    const { libp2p, config } = this.#init
    for (const addr of config.bootstrap) {
      try {
        const ma = multiaddr(addr)
        const id = ma.getComponents().find(c => c.name === 'p2p')?.value
        if (id != null && libp2p.getConnections(peerIdFromString(id)).length > 0) continue
        if (id == null && libp2p.getConnections().some(c => c.remoteAddr.toString().startsWith(addr))) continue
        const conn = await libp2p.dial(ma, { signal: AbortSignal.timeout(10_000) })
        if (config.seeds.length === 0 && id == null && !this.#seeds.has(conn.remotePeer.toString())) {
          this.#seeds.add(conn.remotePeer.toString())
          this.#init.log.info({ addr, peer: conn.remotePeer.toString() }, 'bootstrap peer taken as the seed (name it with /p2p/<id> or `seeds` to pin it)')
        }
      } catch (err: any) {
        this.#warning.warn(addr, { addr, err: err.message }, 'bootstrap dial failed')
      }
    }
  }

  /**
   * Before asking peers for a record: right after start the bootstrap dials may still be running, and the
   * first peer connected may not be the seed (a lab, or a peer that holds nothing). Wait for a seed to be
   * connected, or, when none comes, for any peer and SEED_GRACE_MS, at most CONNECT_WAIT_MS.
   */
  async ensureConnected (signal: AbortSignal): Promise<void> {
    const { libp2p, config } = this.#init
    if (config.bootstrap.length === 0) return
    const seedUp = (): boolean => libp2p.getPeers().some(p => this.#seeds.has(p.toString()))
    if (seedUp()) return
    const started = Date.now()
    await this.bootstrap()
    const deadline = started + CONNECT_WAIT_MS
    while (!seedUp() && Date.now() < deadline) {
      if (libp2p.getPeers().length > 0 && Date.now() - started >= SEED_GRACE_MS) return
      signal.throwIfAborted()
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  /** The connected peers, with what this node measured of each. */
  peers (): PeerInfo[] {
    const { libp2p, stats } = this.#init
    return libp2p.getPeers().map(peer => {
      const id = peer.toString()
      const s = stats.get(id)
      return {
        peerId: id,
        addrs: libp2p.getConnections(peer).map(c => c.remoteAddr.toString()),
        seed: this.isSeed(id),
        rttMs: s.rttMs,
        throughput: s.throughput,
        bytesReceived: s.bytesReceived,
        bytesSent: s.bytesSent,
        penalties: s.penalties
      }
    })
  }

  /** Peer RTTs as libp2p's connection monitor measures them (a ping every 10 s per connection). */
  #recordRtts (): void {
    for (const conn of this.#init.libp2p.getConnections()) {
      if (conn.rtt != null) this.#init.stats.recordRtt(conn.remotePeer.toString(), conn.rtt)
    }
  }
}
