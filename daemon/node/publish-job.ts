// One `herald publish`, run as a job like a fetch: the API answers at once with its id, progress (input
// files and bytes read, chunks, new bytes stored, rate, ETA) goes to listeners every PROGRESS_EVERY_MS and
// on every change of state. Nothing is signed until the whole input was read, checked and stored, so a job
// that fails or is interrupted leaves no release behind; the chunks it stored are reused by the next run.
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { IngestProgress } from '../../protocol/ingest.js'
import type { PublishProgress, PublishRequest, PublishResult, PublishState } from '../types.js'

/** how often a running job reports progress: often enough for a bar, rare enough to cost nothing */
const PROGRESS_EVERY_MS = 250

export class PublishJob {
  readonly id: string
  readonly request: PublishRequest
  readonly controller = new AbortController()
  readonly events = new EventEmitter()
  /** updated in place by the ingest pipeline */
  readonly counters: IngestProgress = { filesTotal: 0, bytesTotal: 0, filesRead: 0, bytesRead: 0, chunks: 0 }
  newChunks = 0
  newBytes = 0
  state: PublishState = 'scanning'
  readonly startedAt = Date.now()
  finishedAt?: number
  result?: PublishResult
  error?: { code: string, message: string }
  /** settles when the job has finished, whatever the outcome */
  done: Promise<void> = Promise.resolve()
  #timer?: ReturnType<typeof setInterval>

  constructor (request: PublishRequest, id: string = randomUUID()) {
    this.id = id
    this.request = request
    this.events.setMaxListeners(1000)
    this.#timer = setInterval(() => { this.emit() }, PROGRESS_EVERY_MS)
    this.#timer.unref()
  }

  get finished (): boolean { return this.state === 'done' || this.state === 'failed' }

  setState (state: PublishState): void {
    this.state = state
    if (this.finished) {
      this.finishedAt = Date.now()
      clearInterval(this.#timer)
    }
    this.emit()
  }

  succeed (result: PublishResult): void {
    this.result = result
    this.setState('done')
  }

  fail (code: string, message: string): void {
    this.error = { code, message }
    this.setState('failed')
  }

  emit (): void {
    this.events.emit('progress', this.snapshot())
  }

  snapshot (): PublishProgress {
    const c = this.counters
    const seconds = ((this.finishedAt ?? Date.now()) - this.startedAt) / 1000
    const rate = seconds > 0 ? c.bytesRead / seconds : 0
    const left = Math.max(0, c.bytesTotal - c.bytesRead)
    const p: PublishProgress = {
      id: this.id,
      name: this.request.name,
      dir: this.request.dir,
      state: this.state,
      filesTotal: c.filesTotal,
      bytesTotal: c.bytesTotal,
      filesRead: c.filesRead,
      bytesRead: c.bytesRead,
      chunks: c.chunks,
      newChunks: this.newChunks,
      newBytes: this.newBytes,
      bytesPerSecond: Math.round(rate),
      startedAt: this.startedAt
    }
    if (this.state === 'reading' && rate > 0) p.etaSeconds = Math.round(left / rate)
    if (this.state === 'reading' && c.current != null) p.current = c.current
    if (this.finishedAt != null) p.finishedAt = this.finishedAt
    if (this.result != null) p.result = this.result
    if (this.error != null) p.error = { ...this.error }
    return p
  }

  onProgress (listener: (p: PublishProgress) => void): () => void {
    this.events.on('progress', listener)
    return () => { this.events.off('progress', listener) }
  }
}
