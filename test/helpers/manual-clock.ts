// A clock tests move by hand: now() reads it, sleep() resolves when advance() passes its deadline.
import type { Clock } from '../../daemon/fetch/source.js'

export class ManualClock implements Clock {
  t = 1_000_000
  readonly #timers: Array<{ at: number, resolve: () => void }> = []

  now = (): number => this.t

  sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
    if (signal.aborted) return
    await new Promise<void>(resolve => {
      const timer = { at: this.t + ms, resolve: () => { signal.removeEventListener('abort', cancel); resolve() } }
      const cancel = (): void => {
        const at = this.#timers.indexOf(timer)
        if (at !== -1) this.#timers.splice(at, 1)
        resolve()
      }
      this.#timers.push(timer)
      signal.addEventListener('abort', cancel, { once: true })
    })
  }

  /** sleeps still pending */
  get pending (): number { return this.#timers.length }

  /** Move time forward, waking every sleep that is due. */
  advance (ms: number): void {
    this.t += ms
    for (const timer of this.#timers.filter(x => x.at <= this.t)) {
      this.#timers.splice(this.#timers.indexOf(timer), 1)
      timer.resolve()
    }
  }
}

/** one turn of the event loop (pending I/O and promise callbacks run): not a timed wait */
export async function turn (): Promise<void> { await new Promise(resolve => setImmediate(resolve)) }

/** Advance the clock by stepMs after each turn of the event loop until p settles (bounded by maxSteps). */
export async function drive<T> (p: Promise<T>, clock: ManualClock, stepMs: number, maxSteps = 20_000): Promise<T> {
  let settled = false
  const out = p.finally(() => { settled = true })
  out.catch(() => {}) // observed below, once settled
  for (let n = 0; n < maxSteps && !settled; n++) {
    await turn()
    if (!settled) clock.advance(stepMs)
  }
  if (!settled) throw new Error(`did not settle within ${maxSteps} steps of ${stepMs} ms`)
  return await out
}
