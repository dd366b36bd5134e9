// What this node and the peers it watches hold of one release: the have-bitmaps over the manifest's
// deduplicated chunk list. The local bitmap feeds the have-protocol (bitmap, then incremental updates),
// so a chunk is announced to watching peers the moment it is stored.
import type { CID } from 'multiformats/cid'
import type { ChunkIndex } from '../../protocol/manifest.js'

export function bitGet (bitmap: Uint8Array, i: number): boolean {
  return (bitmap[i >> 3] & (0x80 >> (i & 7))) !== 0
}

export function bitSet (bitmap: Uint8Array, i: number): void {
  bitmap[i >> 3] |= (0x80 >> (i & 7))
}

export function bitClear (bitmap: Uint8Array, i: number): void {
  bitmap[i >> 3] &= ~(0x80 >> (i & 7))
}

export function popcount (bitmap: Uint8Array, count: number): number {
  let n = 0
  for (let i = 0; i < count; i++) if (bitGet(bitmap, i)) n++
  return n
}

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
  readonly have: Uint8Array
  readonly remotes = new Map<string, RemoteHave>()
  #held: number
  #listeners = new Set<HaveListener>()
  #changeWaiters: Array<() => void> = []

  constructor (manifestCid: CID, index: ChunkIndex, have: Uint8Array) {
    this.manifestCid = manifestCid
    this.index = index
    this.have = have
    this.#held = popcount(have, index.count)
  }

  get held (): number { return this.#held }
  get complete (): boolean { return this.#held === this.index.count }

  hasLocal (i: number): boolean { return bitGet(this.have, i) }

  /** Record a chunk as stored locally and tell the watching peers. */
  markHave (i: number): void {
    if (bitGet(this.have, i)) return
    bitSet(this.have, i)
    this.#held++
    const complete = this.complete
    for (const l of this.#listeners) l([i], complete)
  }

  subscribe (listener: HaveListener): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** A peer's full bitmap arrived. */
  setRemote (peerId: string, bitmap: Uint8Array, seed: boolean): void {
    const copy = new Uint8Array(Math.ceil(this.index.count / 8))
    copy.set(bitmap.subarray(0, copy.byteLength))
    const held = popcount(copy, this.index.count)
    this.remotes.set(peerId, { peerId, bitmap: copy, held, complete: held === this.index.count, seed, updatedAt: Date.now() })
    this.#changed()
  }

  /** Incremental HAVE from a peer. */
  updateRemote (peerId: string, indices: number[], complete: boolean): void {
    const r = this.remotes.get(peerId)
    if (r == null) return
    for (const i of indices) {
      if (i < 0 || i >= this.index.count || bitGet(r.bitmap, i)) continue
      bitSet(r.bitmap, i)
      r.held++
    }
    if (complete && r.held !== this.index.count) {
      r.bitmap.fill(0xff)
      r.held = this.index.count
    }
    r.complete = r.held === this.index.count
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

  /** Number of non-seed peers that hold chunk i. */
  holders (i: number): number {
    let n = 0
    for (const r of this.remotes.values()) if (!r.seed && bitGet(r.bitmap, i)) n++
    return n
  }

  /** Resolves at the next remote change or after `ms`. */
  async waitForChange (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(done, ms)
      function done (): void { clearTimeout(timer); resolve() }
      this.#changeWaiters.push(done)
    })
  }

  notify (): void { this.#changed() }

  #changed (): void {
    const waiters = this.#changeWaiters
    this.#changeWaiters = []
    for (const w of waiters) w()
  }
}
