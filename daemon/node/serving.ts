// Serving policy and accounting: what this node uploads (libp2p and HTTP), when it last did (the announcer
// holds back DHT work meanwhile), and super-seeding on a seed. Built before libp2p: the chunk services
// report through it.
import { digestHex } from '../../protocol/cid.js'
import { SuperSeedPolicy } from './super-seed.js'
import type { PeerStats } from '../fetch/peer-stats.js'
import type { HeraldMetrics } from '../metrics.js'
import type { PeerId } from '@libp2p/interface'

export class Serving {
  readonly #stats: PeerStats
  readonly #metrics?: HeraldMetrics
  readonly #superSeed?: SuperSeedPolicy
  #served = 0
  #lastServedAt = 0

  constructor (init: { stats: PeerStats, metrics?: HeraldMetrics, superSeed: boolean }) {
    this.#stats = init.stats
    this.#metrics = init.metrics
    if (init.superSeed) this.#superSeed = new SuperSeedPolicy()
  }

  /** bytes uploaded since start */
  get served (): number { return this.#served }

  /** served anything in the last `ms` */
  servedWithin (ms: number): boolean { return Date.now() - this.#lastServedAt < ms }

  /** `peer`: a libp2p peer, or `http:<address>` for the HTTP chunk listener */
  onServed (peer: PeerId | string, bytes: number): void {
    this.#served += bytes
    this.#lastServedAt = Date.now()
    this.#stats.recordSent(peer.toString(), bytes)
    this.#metrics?.serveSentBytesTotal.inc(bytes)
    this.#metrics?.serveChunksTotal.inc({ result: 'ok' })
  }

  /** The super-seeding decision for one request, when this node super-seeds. */
  get policy (): ((peer: PeerId, digest: Uint8Array) => 'serve' | 'rate-limited') | undefined {
    const s = this.#superSeed
    return s == null ? undefined : (peer, digest) => s.decide(peer.toString(), digestHex(digest))
  }
}

/** What the fetches are doing right now (the announcer holds back DHT provides while any is busy). */
export class TransferActivity {
  transfers = 0
  materializing = 0
  get busy (): boolean { return this.transfers > 0 || this.materializing > 0 }
}
