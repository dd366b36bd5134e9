// Gossipsub keeps one outbound stream per peer, opened once when the connection is reported to it. When
// that open fails (a burst of new connections on a loaded host: a negotiation that times out or is reset),
// or the stream closes while the connection stays up, `@libp2p/gossipsub` 17 never opens it again: the
// peer is in its peer table, hears nothing from this node over that connection, and learns of a new
// release only through another peer or at its next fetch (measured: 1–2 of 16 peers after a burst of
// connections). This repair looks for such peers every few seconds and opens the stream again, through
// gossipsub's own method for it (so that subscriptions are sent and the stream is tracked as gossipsub
// does). A build of gossipsub without that method makes the repair a no-op, logged once.
import { logger } from '@libp2p/logger'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Connection, Libp2p, PeerId, Startable } from '@libp2p/interface'

const log = logger('herald:pubsub')

/** how often the outbound streams are checked, ms */
export const PUBSUB_REPAIR_INTERVAL_MS = 5_000

/** what of gossipsub the repair reads: its peer table, its outbound streams, its stream opener */
interface GossipInternals {
  readonly peers: Map<string, PeerId>
  readonly streamsOutbound: Map<string, unknown>
  createOutboundStream?: (peerId: PeerId, connection: Connection) => Promise<void>
}

export interface PubsubRepairInit {
  pubsub: GossipSub
  libp2p: Pick<Libp2p, 'getConnections'>
  intervalMs?: number
  /** a stream was opened again (metrics, tests) */
  onRepaired?: (peer: PeerId) => void
}

export class PubsubRepair implements Startable {
  readonly #init: PubsubRepairInit
  #timer?: ReturnType<typeof setInterval>
  #running = false
  /** streams opened again since start */
  repaired = 0

  constructor (init: PubsubRepairInit) {
    this.#init = init
  }

  start (): void {
    const internals = this.#init.pubsub as unknown as GossipInternals
    if (typeof internals.createOutboundStream !== 'function' || !(internals.streamsOutbound instanceof Map)) {
      log.error('this gossipsub build has no createOutboundStream: lost outbound streams are not reopened')
      return
    }
    this.#timer = setInterval(() => { void this.check() }, this.#init.intervalMs ?? PUBSUB_REPAIR_INTERVAL_MS)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Open again every missing outbound stream to a peer gossipsub knows over an open connection; returns how many. */
  async check (): Promise<number> {
    if (this.#running) return 0
    this.#running = true
    let opened = 0
    try {
      const g = this.#init.pubsub as unknown as GossipInternals
      if (typeof g.createOutboundStream !== 'function') return 0
      for (const [id, peer] of g.peers) {
        if (g.streamsOutbound.has(id)) continue
        const open = this.#init.libp2p.getConnections(peer).filter(c => c.status === 'open')
        const connection = open.find(c => c.limits == null) ?? open[0]
        if (connection == null) continue
        await g.createOutboundStream.call(g, peer, connection)
        if (!g.streamsOutbound.has(id)) continue
        opened++
        this.repaired++
        log('reopened the gossipsub stream to %p', peer)
        this.#init.onRepaired?.(peer)
      }
    } catch (err: any) {
      log.error('pubsub repair failed: %s', err?.message)
    } finally {
      this.#running = false
    }
    return opened
  }
}
