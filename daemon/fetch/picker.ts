// Which entries to ask a holder for, and what each entry's requests have shown so far. Rarest first within
// a window of the want list's order; the seed and origins (sources of last resort) only for entries no
// usable peer can serve, or that peers failed to deliver within the seed deadline.
import { bitClear, bitGet } from './swarm.js'
import type { PeerStats } from './peer-stats.js'
import type { Holder, Source } from './source.js'
import type { ReleaseSwarm } from './swarm.js'
import type { WantList } from './want-list.js'

/** how many candidate chunks are scanned for the rarest per batch */
const RAREST_WINDOW = 512
/** a chunk the seed deferred (super-seeding) is not asked from the seed again for this long, ms */
const SEED_DEFER_MS = 1_500

export interface ChunkState {
  /** requests currently carrying this chunk */
  inflight: number
  /** of which requests to unproven peers (the seed does not wait for those) */
  probes: number
  /** failed deliveries from peers (not the seed) */
  peerFailures: number
  /** not asked from the seed before this time */
  seedNotBefore: number
  /** first time we asked a peer, for the seed deadline */
  firstPeerAsk: number
}

/** what the picker needs to know of the scheduler's view at the moment */
export interface PickerView {
  holders: () => Holder[]
  usable: (source: Source, now: number) => boolean
  /** an unproven peer stalled or failed in this fetch: a claim alone keeps no chunk from the seed */
  doubtClaims: () => boolean
}

/** the seed and origins: asked last */
export function lastResort (s: Source): boolean { return s.kind !== 'peer' }

export class Picker {
  readonly #swarm: ReleaseSwarm
  readonly #want: WantList
  readonly #stats: PeerStats
  readonly #view: PickerView
  readonly #seedDeadlineMs: number
  readonly #startedAt: number
  readonly #state = new Map<number, ChunkState>()
  #cursor = 0

  constructor (swarm: ReleaseSwarm, want: WantList, stats: PeerStats, view: PickerView, seedDeadlineMs: number, startedAt: number) {
    this.#swarm = swarm
    this.#want = want
    this.#stats = stats
    this.#view = view
    this.#seedDeadlineMs = seedDeadlineMs
    this.#startedAt = startedAt
  }

  chunk (i: number): ChunkState {
    let s = this.#state.get(i)
    if (s == null) {
      s = { inflight: 0, probes: 0, peerFailures: 0, seedNotBefore: 0, firstPeerAsk: 0 }
      this.#state.set(i, s)
    }
    return s
  }

  claim (i: number, probe: boolean): void {
    const s = this.chunk(i)
    s.inflight++
    if (probe) s.probes++
  }

  unclaim (i: number, probe: boolean): void {
    const s = this.chunk(i)
    s.inflight = Math.max(0, s.inflight - 1)
    if (probe) s.probes = Math.max(0, s.probes - 1)
  }

  /** A reply other than the bytes: NOT_FOUND (stop believing the holder), RATE_LIMITED, or an error. */
  answered (holder: Holder, i: number, status: 'not-found' | 'rate-limited' | 'error', now: number): void {
    const last = lastResort(holder.source)
    if (status === 'rate-limited') {
      if (last) this.chunk(i).seedNotBefore = now + SEED_DEFER_MS
      else this.#stats.backoff(holder.source.id, 250, now)
      return
    }
    if (!last) this.chunk(i).peerFailures++
    if (status !== 'not-found') return
    if (holder.source.kind === 'origin') {
      if (bitGet(holder.bitmap, i)) { bitClear(holder.bitmap, i); holder.held-- }
    } else {
      this.#swarm.forgetRemoteChunk(holder.source.id, i)
    }
  }

  /** Delta objects nobody can serve (after the seed deadline) or that peers failed thrice: their chunks instead. */
  objectsToDrop (now: number): number[] {
    const out: number[] = []
    if (!this.#want.hasObjects || now - this.#startedAt < this.#seedDeadlineMs) return out
    for (const [e, run] of this.#want.objects()) {
      if (this.#want.allHeld(run)) continue
      const s = this.#state.get(e)
      if (s != null && s.inflight > 0) continue
      const served = this.#view.holders().some(h => bitGet(h.bitmap, e) && this.#view.usable(h.source, now))
      if (!served || (s != null && s.peerFailures >= 3)) out.push(e)
    }
    return out
  }

  /** Choose up to `size` missing entries this holder has, rarest first within a window. */
  pick (holder: Holder, now: number, size: number): number[] {
    const missing = this.#want.missing
    const n = missing.length
    if (n === 0) return []
    const last = lastResort(holder.source)
    // give peer discovery the seed deadline before a source of last resort is used at all
    if (last && now - this.#startedAt < this.#seedDeadlineMs) return []
    if (this.#cursor >= n) this.#cursor = 0
    const candidates: Array<{ i: number, rarity: number }> = []
    const window = Math.min(n, RAREST_WINDOW)
    let scanned = 0
    for (let k = 0; k < n && scanned < window * 4 && candidates.length < window; k++) {
      const i = missing[(this.#cursor + k) % n]
      scanned++
      if (this.#swarm.hasLocal(i) || !bitGet(holder.bitmap, i)) continue
      const s = this.chunk(i)
      // a chunk that only a probe carries may go to the seed as well: the probe may never answer
      if (s.inflight - (last ? s.probes : 0) > 0) continue
      const rarity = this.#swarm.holders(i)
      if (last) {
        if (now < s.seedNotBefore) continue
        // the seed only for chunks no usable peer can serve, or that peers failed to deliver in time
        const peerCanServe = rarity > 0 && s.peerFailures < 2 && (s.firstPeerAsk === 0 || now - s.firstPeerAsk < this.#seedDeadlineMs)
        if (peerCanServe && this.#anyUsableHolder(i, now)) continue
      }
      candidates.push({ i, rarity })
    }
    this.#cursor = (this.#cursor + size) % Math.max(1, n)
    candidates.sort((a, b) => a.rarity - b.rarity)
    const batch = candidates.slice(0, size).map(c => c.i)
    for (const i of batch) {
      const s = this.chunk(i)
      if (!last && s.firstPeerAsk === 0) s.firstPeerAsk = now
    }
    return batch
  }

  /**
   * A peer that may serve entry i soon: usable and not stalled; once an unproven peer has stalled or failed
   * in this fetch (identities that claim everything and answer nothing), only peers that have delivered
   * before keep an entry from the seed past the seed deadline.
   */
  #anyUsableHolder (i: number, now: number): boolean {
    const young = now - this.#startedAt < this.#seedDeadlineMs
    const doubt = this.#view.doubtClaims()
    for (const h of this.#view.holders()) {
      if (lastResort(h.source) || !bitGet(h.bitmap, i) || !this.#view.usable(h.source, now)) continue
      if (young || !doubt || this.#stats.proven(h.source.id)) return true
    }
    return false
  }
}
