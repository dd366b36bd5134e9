// What this node and the peers it watches hold of one release: the have-bitmaps over the manifest's
// entries — its deduplicated chunk list, then its delta objects. The local bitmap feeds the have-protocol
// (bitmap, then incremental updates), so an entry is announced to watching peers the moment it is stored.
import type { CID } from 'multiformats/cid'
import { bitClear, bitGet, bitmapFrom, bitSet, popcount } from '../../protocol/bitmap.js'
import type { ChunkIndex, DeltaIndex } from '../../protocol/manifest.js'

// the bit helpers lived here before protocol/bitmap.ts; the scheduler and its spec still import them from here
export { bitClear, bitGet, bitSet, popcount }

export const NO_DELTAS: DeltaIndex = { count: 0, digests: new Uint8Array(0), sizes: new Uint32Array(0), targets: [], bases: [], kinds: [], digestAt: () => { throw new RangeError('no delta objects') } }

export interface RemoteHave {
  peerId: string
  bitmap: Uint8Array
  held: number
  complete: boolean
  seed: boolean
  updatedAt: number
}

type HaveListener = (indices: number[], complete: boolean) => void

export class ReleaseSwarm {
  readonly manifestCid: CID
  readonly index: ChunkIndex
  readonly deltas: DeltaIndex
  /** chunks, then delta objects */
  readonly entries: number
  readonly have: Uint8Array
  readonly remotes = new Map<string, RemoteHave>()
  /** chunks held (delta objects not counted) */
  #held: number
  #heldEntries: number
  #listeners = new Set<HaveListener>()
  #changeWaiters: Array<() => void> = []

  /** `have` covers the entries: index.count chunks, then deltas.count objects */
  constructor (manifestCid: CID, index: ChunkIndex, have: Uint8Array, deltas: DeltaIndex = NO_DELTAS) {
    this.manifestCid = manifestCid
    this.index = index
    this.deltas = deltas
    this.entries = index.count + deltas.count
    this.have = bitmapFrom(have, this.entries)
    this.#held = popcount(this.have, index.count)
    this.#heldEntries = popcount(this.have, this.entries)
  }

  /** chunks held */
  get held (): number { return this.#held }
  /** every chunk held: the release is complete (delta objects are optional) */
  get complete (): boolean { return this.#held === this.index.count }
  /** every entry held, delta objects included */
  get full (): boolean { return this.#heldEntries === this.entries }

  hasLocal (i: number): boolean { return bitGet(this.have, i) }

  isObject (e: number): boolean { return e >= this.index.count }
  /** the run of chunks a delta-object entry rebuilds */
  targetsOf (e: number): Int32Array { return this.deltas.targets[e - this.index.count] }
  digestAt (e: number): Uint8Array { return e < this.index.count ? this.index.digestAt(e) : this.deltas.digestAt(e - this.index.count) }
  sizeAt (e: number): number { return e < this.index.count ? this.index.sizes[e] : this.deltas.sizes[e - this.index.count] }

  /** Record an entry as stored locally and tell the watching peers (their `complete` means every entry). */
  markHave (i: number): void {
    if (bitGet(this.have, i)) return
    bitSet(this.have, i)
    if (i < this.index.count) this.#held++
    this.#heldEntries++
    const full = this.full
    for (const l of this.#listeners) l([i], full)
  }

  /** An entry found corrupt in the store: no longer held (watching peers learn it with the next bitmap). */
  unmarkHave (i: number): void {
    if (!bitGet(this.have, i)) return
    bitClear(this.have, i)
    if (i < this.index.count) this.#held--
    this.#heldEntries--
  }

  subscribe (listener: HaveListener): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** A peer's full bitmap arrived. */
  setRemote (peerId: string, bitmap: Uint8Array, seed: boolean): void {
    const copy = bitmapFrom(bitmap, this.entries)
    const held = popcount(copy, this.entries)
    this.remotes.set(peerId, { peerId, bitmap: copy, held, complete: held === this.entries, seed, updatedAt: Date.now() })
    this.#changed()
  }

  /** Incremental HAVE from a peer. */
  updateRemote (peerId: string, indices: number[], complete: boolean): void {
    const r = this.remotes.get(peerId)
    if (r == null) return
    for (const i of indices) {
      if (i < 0 || i >= this.entries || bitGet(r.bitmap, i)) continue
      bitSet(r.bitmap, i)
      r.held++
    }
    if (complete && r.held !== this.entries) {
      r.bitmap.fill(0xff)
      r.held = this.entries
    }
    r.complete = r.held === this.entries
    r.updatedAt = Date.now()
    this.#changed()
  }

  /** A peer answered NOT_FOUND for a chunk its bitmap claimed: stop believing it. */
  forgetRemoteChunk (peerId: string, i: number): void {
    const r = this.remotes.get(peerId)
    if (r == null || !bitGet(r.bitmap, i)) return
    bitClear(r.bitmap, i)
    r.held--
    r.complete = false
  }

  removeRemote (peerId: string): void {
    this.remotes.delete(peerId)
    this.#changed()
  }

  /** Number of non-seed peers that hold entry i. */
  holders (i: number): number {
    let n = 0
    for (const r of this.remotes.values()) if (!r.seed && bitGet(r.bitmap, i)) n++
    return n
  }

  /** Resolves at the next remote change, or when `signal` aborts (its waiter is removed then). */
  async nextChange (signal: AbortSignal): Promise<void> {
    if (signal.aborted) return
    await new Promise<void>(resolve => {
      const done = (): void => { signal.removeEventListener('abort', onAbort); resolve() }
      const onAbort = (): void => {
        const at = this.#changeWaiters.indexOf(done)
        if (at !== -1) this.#changeWaiters.splice(at, 1)
        resolve()
      }
      this.#changeWaiters.push(done)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  notify (): void { this.#changed() }

  #changed (): void {
    const waiters = this.#changeWaiters
    this.#changeWaiters = []
    for (const w of waiters) w()
  }
}
