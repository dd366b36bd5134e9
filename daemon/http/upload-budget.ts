// The upload cap of the HTTP listener as a reservation budget: a response may start when the budget is
// not in debt (it may then go into debt by its size: a burst of one chunk); otherwise it waits until the
// debt is paid, if that is soon enough, or is refused so the client asks another source (429).

export class UploadBudget {
  readonly rate: number
  /** bytes that may still be sent now; negative = debt */
  #tokens: number
  #last = performance.now()

  /** `rate` bytes per second; 0 = unlimited. A burst of one second's worth is allowed. */
  constructor (rate: number) {
    this.rate = rate
    this.#tokens = rate
  }

  /**
   * Reserve `n` bytes. Returns the wait in ms before sending (0 = now), or a negative number, minus the ms
   * after which to retry, when the wait would exceed `maxWaitMs` (nothing is reserved then).
   */
  reserve (n: number, maxWaitMs: number): number {
    if (this.rate <= 0) return 0
    const now = performance.now()
    this.#tokens = Math.min(this.rate, this.#tokens + (now - this.#last) / 1000 * this.rate)
    this.#last = now
    const wait = this.#tokens >= 0 ? 0 : -this.#tokens / this.rate * 1000
    if (wait > maxWaitMs) return -Math.max(1, wait)
    this.#tokens -= n
    return wait
  }
}
