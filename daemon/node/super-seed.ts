// Super-seeding: when many downloaders want a fresh release, the seed hands each chunk to one of them
// before it repeats any, and tells the others RATE_LIMITED for that chunk: they get it from the one
// that has it (its HAVE reaches them within a fraction of a second). A chunk is handed out again once
// its grace period has passed, so a downloader that vanished never strands it.

/** how long a chunk handed to one peer is withheld from others, ms */
export const SUPER_SEED_GRACE_MS = 4_000
/** bound on remembered hand-outs (about 4 GiB of 256 KiB chunks); older ones are forgotten first */
const MAX_TRACKED = 16_384

export class SuperSeedPolicy {
  readonly #graceMs: number
  readonly #handedTo = new Map<string, { peer: string, at: number }>()

  constructor (graceMs = SUPER_SEED_GRACE_MS) {
    this.#graceMs = graceMs
  }

  decide (peer: string, digestKey: string, now = Date.now()): 'serve' | 'rate-limited' {
    const prev = this.#handedTo.get(digestKey)
    if (prev != null && prev.peer !== peer && now - prev.at < this.#graceMs) return 'rate-limited'
    this.#handedTo.delete(digestKey)
    this.#handedTo.set(digestKey, { peer, at: now })
    if (this.#handedTo.size > MAX_TRACKED) {
      const oldest = this.#handedTo.keys().next().value
      if (oldest !== undefined) this.#handedTo.delete(oldest)
    }
    return 'serve'
  }
}
