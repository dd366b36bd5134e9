// A token bucket shared by every stream that sends through it: the seed's upload cap. A burst of one
// second's worth is allowed; beyond it, take() waits.

export class TokenBucket {
  readonly rate: number
  readonly burst: number
  #tokens: number
  #last = performance.now()
  #queue: Promise<void> = Promise.resolve()

  /** `rate` bytes per second; 0 means unlimited */
  constructor (rate: number, burst: number = rate) {
    this.rate = rate
    this.burst = Math.max(burst, 1)
    this.#tokens = this.burst
  }

  #refill (): void {
    const now = performance.now()
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#last) / 1000 * this.rate)
    this.#last = now
  }

  /** Wait until n bytes may be sent. Requests are served in order. */
  async take (n: number, signal?: AbortSignal): Promise<void> {
    if (this.rate <= 0) return
    const run = this.#queue.then(async () => {
      this.#refill()
      this.#tokens -= n
      if (this.#tokens < 0) {
        const wait = -this.#tokens / this.rate * 1000
        await new Promise<void>((resolve, reject) => {
          // the listener goes with the wait: one batch's signal serves many takes
          const onAbort = (): void => { clearTimeout(t); reject(signal?.reason) }
          const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, wait)
          signal?.addEventListener('abort', onAbort, { once: true })
        })
      }
    })
    this.#queue = run.catch(() => {})
    await run
  }
}
