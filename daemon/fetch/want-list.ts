// The entries one fetch still wants: the release's missing chunks, or for a run of chunks the caller can
// rebuild from bases it holds, the (much smaller) delta object that stands for them. A delta object that
// nobody serves, or that does not rebuild its chunks, falls back to the chunks themselves.
// The order is a hash of the entry index salted per node, so simultaneous downloaders start on different
// chunks; the rarest-first choice is made within a window of this order (the scheduler's picker).
import { logger } from '@libp2p/logger'
import type { ReleaseSwarm } from './swarm.js'

const log = logger('herald:fetch')

export class WantList {
  readonly #swarm: ReleaseSwarm
  /** entries still wanted, in this node's order */
  readonly missing: number[] = []
  /** delta-object entry → the missing chunks it stands for */
  readonly #standsFor = new Map<number, number[]>()
  readonly #salt = Math.floor(Math.random() * 0x7fffffff)
  /** entries wanted at the start */
  readonly total: number

  constructor (swarm: ReleaseSwarm, deltaFor?: Map<number, number>) {
    this.#swarm = swarm
    for (let i = 0; i < swarm.index.count; i++) {
      if (swarm.hasLocal(i)) continue
      const e = deltaFor?.get(i)
      if (e != null && !swarm.hasLocal(e)) {
        const run = this.#standsFor.get(e)
        if (run != null) run.push(i)
        else {
          this.#standsFor.set(e, [i])
          this.missing.push(e)
        }
      } else {
        this.missing.push(i)
      }
    }
    this.total = this.missing.length
    this.missing.sort((a, b) => this.#hash(a) - this.#hash(b))
  }

  #hash (i: number): number {
    let x = (i ^ this.#salt) >>> 0
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0
    return (x ^ (x >>> 16)) >>> 0
  }

  get length (): number { return this.missing.length }

  /** delta objects still standing for chunks */
  objects (): IterableIterator<[number, number[]]> { return this.#standsFor.entries() }

  get hasObjects (): boolean { return this.#standsFor.size > 0 }

  allHeld (run: number[]): boolean {
    for (const i of run) if (!this.#swarm.hasLocal(i)) return false
    return true
  }

  /** Fetch the chunks delta-object entry e stands for themselves; false when e stands for nothing. */
  fallBack (e: number): boolean {
    const run = this.#standsFor.get(e)
    if (run == null) return false
    this.#standsFor.delete(e)
    const at = this.missing.indexOf(e)
    if (at !== -1) this.missing.splice(at, 1)
    for (const i of run) if (!this.#swarm.hasLocal(i)) this.missing.push(i)
    log('delta object %d: fetching its %d chunks themselves', e, run.length)
    return true
  }

  /** Drop entries now held locally (and delta objects whose chunks are all held). */
  compact (): void {
    let w = 0
    for (let r = 0; r < this.missing.length; r++) {
      const i = this.missing[r]
      const stands = this.#standsFor.get(i)
      if (!this.#swarm.hasLocal(i) && (stands == null || !this.allHeld(stands))) this.missing[w++] = i
    }
    this.missing.length = w
  }

  /** the bytes of the chunks delta-object entry e rebuilds that are not held yet */
  missingRunBytes (e: number): number {
    let n = 0
    for (const i of this.#swarm.targetsOf(e)) if (!this.#swarm.hasLocal(i)) n += this.#swarm.index.sizes[i]
    return n
  }
}
