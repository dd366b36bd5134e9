// Who fetches or holds each release, as this node has seen it: the peers that asked it for a release's
// have-bitmap, and the holders it watches itself. Peer exchange (/herald/pex) answers from here. Bounded:
// the most recent 64 peers per release, 256 releases, entries forgotten after 10 minutes.
import { peerIdFromString } from '@libp2p/peer-id'
import { LRUCache } from 'lru-cache'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const PER_RELEASE = 64
const RELEASES = 256
const TTL_MS = 10 * 60_000

export class SwarmPeers {
  readonly #seen = new LRUCache<string, Map<string, { id: PeerId, at: number }>>({ max: RELEASES })
  readonly #holders: (cid: CID) => Iterable<string>
  readonly #now: () => number

  /** `holders`: the peers this node watches for a release (its ledger's remotes) */
  constructor (init: { holders: (cid: CID) => Iterable<string>, now?: () => number }) {
    this.#holders = init.holders
    this.#now = init.now ?? Date.now
  }

  record (cid: CID, peer: PeerId): void {
    const key = cid.toString()
    let seen = this.#seen.get(key)
    if (seen == null) { seen = new Map(); this.#seen.set(key, seen) }
    seen.delete(peer.toString())
    seen.set(peer.toString(), { id: peer, at: this.#now() })
    // a Map iterates in insertion order: the oldest go first
    for (const k of seen.keys()) {
      if (seen.size <= PER_RELEASE) break
      seen.delete(k)
    }
  }

  /** Most recent first, without `asker`; the holders this node watches after them. */
  peers (cid: CID, asker: PeerId): PeerId[] {
    const out: PeerId[] = []
    const ids = new Set<string>([asker.toString()])
    const seen = this.#seen.get(cid.toString())
    const cutoff = this.#now() - TTL_MS
    for (const { id, at } of [...(seen?.values() ?? [])].reverse()) {
      if (at < cutoff || ids.has(id.toString())) continue
      ids.add(id.toString())
      out.push(id)
    }
    for (const h of this.#holders(cid)) {
      if (ids.has(h)) continue
      ids.add(h)
      try { out.push(peerIdFromString(h)) } catch {}
    }
    return out
  }
}
