// The worker threads that run delta encoding (protocol/delta-worker.ts) for the publisher: one per core by
// default, kept warm between tasks and ended after 5 s idle.
import { availableParallelism } from 'node:os'
import { Piscina } from 'piscina'
import type { DeltaRunner } from '../../protocol/delta-encoder.js'
import type { DeltaTask, DeltaTaskResult } from '../../protocol/delta-worker.js'

export class DeltaPool implements DeltaRunner {
  readonly #pool: Piscina
  readonly threads: number

  constructor (threads = Math.max(1, availableParallelism())) {
    this.threads = threads
    this.#pool = new Piscina({
      filename: new URL('../../protocol/delta-worker.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 5_000
    })
  }

  async run (task: DeltaTask): Promise<DeltaTaskResult> {
    return await this.#pool.run(task)
  }

  async close (): Promise<void> {
    await this.#pool.destroy()
  }
}
