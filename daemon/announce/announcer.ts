// Announces what this node holds on the DHT: first the manifest CID of every release held or being
// fetched (one record per release: that is how peers find each other), then chunk CIDs through a
// bounded background queue (finds chunks shared across releases) that never blocks a fetch.
import { logger } from '@libp2p/logger'
import type { CID } from 'multiformats/cid'

const log = logger('herald:announce')

/** one DHT provide costs ~50–95 ms of CPU and a network walk: keep few running */
const PROVIDE_CONCURRENCY = 2
/** a provide that has not finished in this time is abandoned (an empty routing table never answers) */
const PROVIDE_TIMEOUT_MS = 30_000
/** manifests are re-announced this often so that records survive DHT churn */
const MANIFEST_REPROVIDE_MS = 6 * 60 * 60 * 1000

export interface AnnouncerInit {
  provide: (cid: CID, signal: AbortSignal) => Promise<void>
  provideChunks: boolean
  queueMax: number
  onProvide?: (kind: 'manifest' | 'chunk', result: 'ok' | 'error', seconds: number) => void
  /** chunk provides wait while this is true (e.g. a fetch is running: each provide costs CPU on every DHT peer) */
  paused?: () => boolean
}

/** chunk provides run one at a time, behind manifests */
const CHUNK_CONCURRENCY = 1
/** how often a paused chunk queue looks again, ms */
const PAUSE_RECHECK_MS = 1_000

export class Announcer {
  readonly #init: AnnouncerInit
  readonly #manifests = new Map<string, { cid: CID, at: number }>()
  readonly #urgent: CID[] = []
  readonly #chunks: CID[] = []
  #running = 0
  #stopped = true
  #controller = new AbortController()
  #timer: ReturnType<typeof setInterval> | undefined
  #dropped = 0
  #runningChunks = 0

  constructor (init: AnnouncerInit) {
    this.#init = init
  }

  start (): void {
    this.#stopped = false
    this.#controller = new AbortController()
    this.#timer = setInterval(() => { this.#reprovide() }, 60_000)
    this.#timer.unref()
  }

  stop (): void {
    this.#stopped = true
    this.#controller.abort()
    if (this.#pauseTimer != null) clearTimeout(this.#pauseTimer)
    if (this.#timer != null) clearInterval(this.#timer)
  }

  /** Chunks waiting to be provided. */
  get backlog (): number { return this.#urgent.length + this.#chunks.length }
  get dropped (): number { return this.#dropped }

  /** Announce a manifest now (ahead of every queued chunk). */
  provideManifest (cid: CID): void {
    const key = cid.toString()
    const known = this.#manifests.get(key)
    if (known != null && Date.now() - known.at < 60_000) return
    this.#manifests.set(key, { cid, at: Date.now() })
    this.#urgent.push(cid)
    this.#pump()
  }

  /** Queue chunk CIDs; beyond the bound they are dropped (counted), never blocking the caller. */
  provideChunks (cids: Iterable<CID>): void {
    if (!this.#init.provideChunks) return
    for (const cid of cids) {
      if (this.#chunks.length >= this.#init.queueMax) { this.#dropped++; continue }
      this.#chunks.push(cid)
    }
    this.#pump()
  }

  #reprovide (): void {
    const now = Date.now()
    for (const m of this.#manifests.values()) {
      if (now - m.at >= MANIFEST_REPROVIDE_MS) {
        m.at = now
        this.#urgent.push(m.cid)
      }
    }
    this.#pump()
  }

  #pauseTimer: ReturnType<typeof setTimeout> | undefined

  #pump (): void {
    while (!this.#stopped && this.#running < PROVIDE_CONCURRENCY) {
      const kind = this.#urgent.length > 0 ? 'manifest' : 'chunk'
      if (kind === 'chunk') {
        if (this.#chunks.length === 0 || this.#runningChunks >= CHUNK_CONCURRENCY) return
        if (this.#init.paused?.() === true) {
          this.#pauseTimer ??= setTimeout(() => { this.#pauseTimer = undefined; this.#pump() }, PAUSE_RECHECK_MS)
          this.#pauseTimer.unref?.()
          return
        }
      }
      const cid = this.#urgent.shift() ?? this.#chunks.shift()
      if (cid == null) return
      if (kind === 'chunk') this.#runningChunks++
      this.#running++
      const started = performance.now()
      const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(PROVIDE_TIMEOUT_MS)])
      this.#init.provide(cid, signal).then(
        () => { this.#init.onProvide?.(kind, 'ok', (performance.now() - started) / 1000) },
        (err: Error) => {
          log('provide %s %s failed: %s', kind, cid, err.message)
          this.#init.onProvide?.(kind, 'error', (performance.now() - started) / 1000)
        }
      ).finally(() => {
        this.#running--
        if (kind === 'chunk') this.#runningChunks--
        this.#pump()
      })
    }
  }
}
