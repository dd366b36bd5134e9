// A readers–writer lock: fetches and publishes share it, GC takes it alone. A waiting writer holds back
// new readers, so GC is not starved by a stream of fetches; readers waiting behind it run once it is done.

export class RwLock {
  #readers = 0
  #writer = false
  #writersWaiting = 0
  #queue: Array<() => void> = []

  #drain (): void {
    const q = this.#queue
    this.#queue = []
    for (const wake of q) wake()
  }

  async #wait (): Promise<void> {
    await new Promise<void>(resolve => this.#queue.push(resolve))
  }

  async read<T> (fn: () => Promise<T>): Promise<T> {
    while (this.#writer || this.#writersWaiting > 0) await this.#wait()
    this.#readers++
    try {
      return await fn()
    } finally {
      this.#readers--
      this.#drain()
    }
  }

  async write<T> (fn: () => Promise<T>): Promise<T> {
    this.#writersWaiting++
    try {
      while (this.#writer || this.#readers > 0) await this.#wait()
    } finally {
      this.#writersWaiting--
    }
    this.#writer = true
    try {
      return await fn()
    } finally {
      this.#writer = false
      this.#drain()
    }
  }
}
