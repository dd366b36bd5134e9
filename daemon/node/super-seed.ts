// Super-seeding: when many downloaders want a fresh release, the seed hands each chunk to one of them
// before it repeats any, and tells the others RATE_LIMITED for that chunk: they get it from the one
// that has it (its HAVE reaches them within a fraction of a second).
// A hand-out reserves the chunk for its taker for a grace period counted from the hand-out, never extended:
// - it expires, so a downloader that vanished (or never shares) strands nothing for long;
// - a peer holds at most a bounded number of reservations (its oldest lapse first), so one peer cannot
//   reserve the release;
// - a peer that asks again for a chunk it was given within its grace loses that reservation and gets
//   RATE_LIMITED: re-asking neither keeps a chunk from the others nor buys a second copy of it.

/** how long a chunk handed to one peer is withheld from others, ms */
export const SUPER_SEED_GRACE_MS = 4_000
/** reservations one peer holds at once (an honest downloader has maxInflightPerPeer × batchSize = 32 in flight by default) */
export const MAX_RESERVATIONS_PER_PEER = 64
/** bound on remembered hand-outs (about 4 GiB of 256 KiB chunks); older ones are forgotten first */
const MAX_TRACKED = 16_384

interface HandOut { peer: string, at: number }

export interface SuperSeedInit {
  graceMs?: number
  maxPerPeer?: number
}

export class SuperSeedPolicy {
  readonly #graceMs: number
  readonly #maxPerPeer: number
  /** chunk → its reservation, oldest first */
  readonly #handedTo = new Map<string, HandOut>()
  /** peer → the chunks reserved for it, oldest first */
  readonly #byPeer = new Map<string, Set<string>>()

  constructor (init: SuperSeedInit | number = {}) {
    const opts = typeof init === 'number' ? { graceMs: init } : init
    this.#graceMs = opts.graceMs ?? SUPER_SEED_GRACE_MS
    this.#maxPerPeer = opts.maxPerPeer ?? MAX_RESERVATIONS_PER_PEER
  }

  /** live reservations (tests, metrics) */
  reservations (peer?: string): number {
    return peer == null ? this.#handedTo.size : this.#byPeer.get(peer)?.size ?? 0
  }

  decide (peer: string, digestKey: string, now = Date.now()): 'serve' | 'rate-limited' {
    let prev = this.#handedTo.get(digestKey)
    if (prev != null && now - prev.at >= this.#graceMs) {
      this.#drop(digestKey, prev)
      prev = undefined
    }
    if (prev != null) {
      if (prev.peer === peer) this.#drop(digestKey, prev)
      return 'rate-limited'
    }
    this.#reserve(peer, digestKey, now)
    return 'serve'
  }

  #reserve (peer: string, key: string, now: number): void {
    let mine = this.#byPeer.get(peer)
    if (mine == null) {
      mine = new Set()
      this.#byPeer.set(peer, mine)
    }
    while (mine.size >= this.#maxPerPeer) {
      const oldest = mine.values().next().value as string
      this.#drop(oldest, this.#handedTo.get(oldest) ?? { peer, at: now })
    }
    this.#handedTo.set(key, { peer, at: now })
    mine.add(key)
    while (this.#handedTo.size > MAX_TRACKED) {
      const [k, h] = this.#handedTo.entries().next().value as [string, HandOut]
      this.#drop(k, h)
    }
  }

  #drop (key: string, h: HandOut): void {
    this.#handedTo.delete(key)
    const mine = this.#byPeer.get(h.peer)
    if (mine == null) return
    mine.delete(key)
    if (mine.size === 0) this.#byPeer.delete(h.peer)
  }
}
