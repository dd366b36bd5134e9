// One `herald fetch`: resolve the signed record, get and verify the manifest, compute what the store
// lacks, find holders, run the scheduler, pin, materialize, switch `current`. Progress is reported to
// listeners and the job survives a daemon restart (its chunks are in the store; the job is re-run).
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { FetchProgress, FetchState } from '../types.js'

export class FetchJob {
  readonly id = randomUUID()
  readonly name: string
  readonly out?: string
  /** the manifest CID the caller expects (FetchRequest.manifestCid): any other is refused */
  expectManifestCid?: string
  readonly controller = new AbortController()
  readonly events = new EventEmitter()
  readonly progress: FetchProgress
  /** settles when the job has finished, whatever the outcome */
  done: Promise<void> = Promise.resolve()
  #lastEmit = 0
  readonly #t0 = performance.now()
  /** ms from the job's start to each phase (states, and marks such as the first stored chunk): the log of a done fetch */
  readonly phases: Record<string, number> = {}

  constructor (name: string, out?: string) {
    this.name = name
    this.out = out
    this.events.setMaxListeners(1000)
    this.progress = {
      id: this.id,
      name,
      state: 'resolving',
      totalChunks: 0,
      totalBytes: 0,
      reusedChunks: 0,
      reusedBytes: 0,
      doneChunks: 0,
      doneBytes: 0,
      wireBytes: { peer: 0, seed: 0 },
      peers: 0,
      startedAt: Date.now()
    }
  }

  get finished (): boolean {
    return this.progress.state === 'done' || this.progress.state === 'failed'
  }

  /** note when a phase began (once: a resumed phase keeps its first time) */
  mark (phase: string): void {
    this.phases[phase] ??= Math.round(performance.now() - this.#t0)
  }

  setState (state: FetchState): void {
    this.mark(state)
    this.progress.state = state
    if (state === 'done' || state === 'failed') this.progress.finishedAt = Date.now()
    this.emit(true)
  }

  /** Emit progress to listeners, at most every 100 ms unless forced. */
  emit (force = false): void {
    const now = Date.now()
    if (!force && now - this.#lastEmit < 100) return
    this.#lastEmit = now
    this.events.emit('progress', this.snapshot())
  }

  snapshot (): FetchProgress {
    return { ...this.progress, wireBytes: { ...this.progress.wireBytes }, error: this.progress.error != null ? { ...this.progress.error } : undefined }
  }

  onProgress (listener: (p: FetchProgress) => void): () => void {
    this.events.on('progress', listener)
    return () => { this.events.off('progress', listener) }
  }
}
