// The desired-state reconciler: makes the node hold what the DatabaseSync documents list, through the
// node's public operations only (startFetch/getFetch, listReleases, pin, unpin, gc, rollback, verify).
// A pass reads the documents and the store, then: starts fetches of what is missing (with the pinned
// manifest CID, so other content is refused before any chunk moves), switches `current`, pins what is
// listed, unpins what is no longer listed beyond the `keep` policy and collects it. Changes happen only
// inside the schedule window. Every decision is derived from the store at each pass, so a pass is
// idempotent and a restart (or SIGKILL) loses nothing: interrupted fetches are resumed by the node, and
// the next pass carries on from what the store holds.
import { codeOf } from '../errors.js'
import type { EventBus } from '../events/bus.js'
import type { FetchEndSource } from '../events/types.js'
import type { Log } from '../log.js'
import type { HeraldService, ReleaseInfo } from '../types.js'
import { DEFAULT_DEBOUNCE_MS, DEFAULT_INTERVAL_SECONDS, DEFAULT_MAX_CONCURRENT_FETCHES, RETRY_BASE_MS, RETRY_MAX_MS } from './constants.js'
import { LATEST, loadDesiredState, type DesiredEntry } from './document.js'
import type { SyncMetrics } from './metrics.js'
import type { SyncEntryStatus, SyncStatus } from './types.js'
import { PathWatcher } from './watcher.js'
import { windowAt } from './window.js'

export type SyncService = Pick<HeraldService, 'startFetch' | 'getFetch' | 'listReleases' | 'pin' | 'unpin' | 'gc' | 'rollback' | 'verify' | 'status'> & {
  /**
   * The newest verified release of a dataset this node knows of (from release announcements), when the node
   * can tell: without it, `version: latest` entries are reported `unsupported`.
   */
  latestRelease?: (dataset: string) => { version: string, manifestCid: string } | undefined
}

export interface ReconcilerInit {
  /** a DatabaseSync file, or a directory of them */
  path: string
  service: SyncService
  /** told when fetches end, so the next pass runs at once */
  fetchEnd?: FetchEndSource
  events?: EventBus
  log?: Log
  metrics?: SyncMetrics
  intervalSeconds?: number
  debounceMs?: number
  maxConcurrentFetches?: number
  /** the clock (tests inject one to place the schedule window) */
  now?: () => number
}

interface Failure { code: string, message: string, attempts: number, retryAt: number }

/** failures are per release and pin: an entry whose pin was edited is tried at once, not after the backoff */
function failKey (e: DesiredEntry): string { return `${e.dataset}@${e.version} ${e.manifestCid ?? ''}` }

export class Reconciler {
  readonly #init: ReconcilerInit
  readonly #now: () => number
  readonly #log?: Log
  #watcher?: PathWatcher
  #timer?: NodeJS.Timeout
  #unsubscribe?: () => void
  #running?: Promise<void>
  #again = false
  #stopped = true
  /** per release: the fetch this reconciler started */
  readonly #fetches = new Map<string, string>()
  readonly #failures = new Map<string, Failure>()
  /** `name cid` validated (verify) in this run */
  readonly #validated = new Set<string>()
  /** releases unpinned and collected */
  readonly #collected = new Set<string>()
  /** `name cid` already reported as refused */
  readonly #reported = new Set<string>()
  #status: SyncStatus

  constructor (init: ReconcilerInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    this.#log = init.log
    this.#status = { enabled: true, path: init.path, files: [], reconciles: 0, entries: [], removed: [] }
  }

  async start (): Promise<void> {
    this.#stopped = false
    this.#watcher = new PathWatcher(this.#init.path, this.#init.debounceMs ?? DEFAULT_DEBOUNCE_MS, () => { this.trigger() }, this.#log)
    await this.#watcher.start()
    this.#timer = setInterval(() => { this.trigger() }, (this.#init.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS) * 1000)
    this.#timer.unref()
    this.#unsubscribe = this.#init.fetchEnd?.onFetchEnd(() => { this.trigger() })
    this.trigger()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#watcher?.stop()
    clearInterval(this.#timer)
    this.#unsubscribe?.()
    await this.#running?.catch(() => {})
  }

  status (): SyncStatus {
    return structuredClone(this.#status)
  }

  /** Run a pass now, or right after the one running. */
  trigger (): void {
    if (this.#stopped) return
    if (this.#running != null) { this.#again = true; return }
    this.#running = (async () => {
      do {
        this.#again = false
        await this.reconcile()
      } while (this.#again && !this.#stopped)
    })().finally(() => { this.#running = undefined })
  }

  /** Wait for the pass running (if any) to end: for tests and the API's `POST /v1/sync` */
  async settled (): Promise<void> {
    while (this.#running != null) await this.#running.catch(() => {})
  }

  /** One pass. Never throws: problems land in the status and the metrics. */
  async reconcile (): Promise<void> {
    const t0 = performance.now()
    const m = this.#init.metrics
    let result = 'ok'
    try {
      let entries: DesiredEntry[]
      try {
        const loaded = await loadDesiredState(this.#init.path)
        entries = loaded.entries
        this.#status.files = loaded.files
        this.#status.error = undefined
      } catch (err: any) {
        // fail closed: an unreadable or invalid document changes nothing on this node
        this.#status.error = { code: codeOf(err) ?? 'INVALID_SYNC_DOCUMENT', message: err.message }
        m?.errorsTotal.inc({ code: this.#status.error.code })
        this.#log?.error({ path: this.#init.path, err: err.message }, 'desired state not applied')
        result = 'error'
        return
      }
      if (!await this.#apply(entries)) result = 'error'
    } catch (err: any) {
      result = 'error'
      m?.errorsTotal.inc({ code: codeOf(err) ?? 'INTERNAL' })
      this.#log?.error({ err }, 'reconcile pass failed')
    } finally {
      this.#status.reconciles++
      this.#status.lastReconcileAt = this.#now()
      this.#status.lastReconcileSeconds = (performance.now() - t0) / 1000
      m?.reconcilesTotal.inc({ result })
      m?.lastReconcileSeconds.set(this.#status.lastReconcileAt / 1000)
    }
  }

  /** `version: latest` entries made concrete; those that cannot be yet are kept with the reason */
  #resolveLatest (entries: DesiredEntry[]): { entries: DesiredEntry[], problems: Map<DesiredEntry, { state: 'unsupported' | 'pending', error: { code: string, message: string } }> } {
    const svc = this.#init.service
    const problems = new Map<DesiredEntry, { state: 'unsupported' | 'pending', error: { code: string, message: string } }>()
    const out = entries.map(e => {
      if (e.version !== LATEST) return e
      if (typeof svc.latestRelease !== 'function') {
        problems.set(e, { state: 'unsupported', error: { code: 'UNSUPPORTED', message: '`version: latest` needs release announcements, which this build does not resolve: list the version' } })
        return e
      }
      const latest = svc.latestRelease(e.dataset)
      if (latest == null) {
        problems.set(e, { state: 'pending', error: { code: 'RELEASE_NOT_FOUND', message: `no release of ${e.dataset} announced to this node yet` } })
        return e
      }
      // the announced record's manifest is what is fetched; a pin on a `latest` entry refuses any other
      return { ...e, version: latest.version, manifestCid: e.manifestCid ?? latest.manifestCid, tracksLatest: true }
    })
    return { entries: out, problems }
  }

  async #apply (desired: DesiredEntry[]): Promise<boolean> {
    const svc = this.#init.service
    const now = this.#now()
    let ok = true
    const { entries, problems } = this.#resolveLatest(desired)
    const releases = new Map((await svc.listReleases()).map(r => [r.name, r]))
    const statuses: SyncEntryStatus[] = []
    const windows = new Map<DesiredEntry, ReturnType<typeof windowAt>>()
    for (const e of entries) windows.set(e, windowAt(e.schedule, now, e.windowMinutes, e.timezone))
    const first = windows.get(entries[0])
    this.#status.window = first != null && entries[0].schedule != null ? first : undefined
    let fetching = 0
    const toFetch: Array<{ e: DesiredEntry, s: SyncEntryStatus }> = []

    for (const e of entries) {
      const name = `${e.dataset}@${e.version}`
      const r = releases.get(name)
      const s: SyncEntryStatus = {
        release: name, dataset: e.dataset, version: e.version, source: e.source, manifestCid: e.manifestCid, heldManifestCid: r?.manifestCid,
        wantCurrent: e.current, current: r?.current === true, pinned: r?.pinned === true, state: 'pending'
      }
      if (e.tracksLatest === true) s.tracks = LATEST
      statuses.push(s)
      const problem = problems.get(e)
      if (problem != null) {
        s.state = problem.state
        s.error = problem.error
        continue
      }
      const mismatch = e.manifestCid != null && r != null && r.complete && r.manifestCid !== e.manifestCid
      if (r?.complete === true && !mismatch) {
        s.state = 'held'
        this.#failures.delete(failKey(e))
        if (e.validation === 'required' && !this.#validated.has(`${name} ${r.manifestCid}`)) {
          const v = await svc.verify(name)
          if (!v.ok) {
            s.state = 'failed'
            s.error = { code: 'HASH_MISMATCH', message: `verify found ${v.bad.length} bad and ${v.missing} missing chunks, ${v.badFiles.length} bad files` }
            ok = false
            continue
          }
          this.#validated.add(`${name} ${r.manifestCid}`)
        }
        continue
      }
      if (mismatch) {
        s.state = 'refused'
        s.error = { code: 'MANIFEST_MISMATCH', message: `${name} held here is manifest ${r.manifestCid}, the document pins ${e.manifestCid ?? ''}` }
        if (!this.#reported.has(`${name} ${r.manifestCid}`)) {
          this.#reported.add(`${name} ${r.manifestCid}`)
          this.#init.metrics?.errorsTotal.inc({ code: 'MANIFEST_MISMATCH' })
          this.#init.events?.publish({ type: 'release.failed', release: name, dataset: e.dataset, version: e.version, manifestCid: r.manifestCid, origin: 'sync', error: s.error })
        }
        continue
      }
      // a fetch started earlier: running, or ended since the last pass
      const id = this.#fetches.get(name)
      const p = id != null ? svc.getFetch(id) : undefined
      if (p != null && p.state !== 'done' && p.state !== 'failed') {
        s.state = 'fetching'
        s.fetchId = p.id
        fetching++
        continue
      }
      if (p != null) {
        this.#fetches.delete(name)
        if (p.state === 'failed') this.#fail(e, p.error?.code ?? 'FETCH_FAILED', p.error?.message ?? 'fetch failed', now)
      }
      const f = this.#failures.get(failKey(e))
      if (f != null) {
        s.error = { code: f.code, message: f.message }
        s.retryAt = f.retryAt
        if (f.code === 'MANIFEST_MISMATCH') s.state = 'refused'
        else s.state = 'failed'
        if (f.retryAt > now) continue
      }
      if (windows.get(e)?.open !== true) { if (f == null) s.state = 'waiting'; continue }
      toFetch.push({ e, s })
    }

    // fetches: entries that will not be current first, so the last switch a fetch makes is the wanted one
    toFetch.sort((a, b) => Number(a.e.current) - Number(b.e.current))
    const max = this.#init.maxConcurrentFetches ?? DEFAULT_MAX_CONCURRENT_FETCHES
    for (const { e, s } of toFetch) {
      if (fetching >= max) { if (s.state !== 'failed' && s.state !== 'refused') s.state = 'pending'; continue }
      try {
        const p = await svc.startFetch({ name: s.release, manifestCid: e.manifestCid })
        this.#fetches.set(s.release, p.id)
        this.#init.metrics?.actionsTotal.inc({ action: 'fetch' })
        this.#log?.info({ release: s.release, fetch: p.id }, 'desired state: fetching')
        s.state = 'fetching'
        s.fetchId = p.id
        s.error = undefined
        s.retryAt = undefined
        fetching++
      } catch (err: any) {
        ok = false
        const f = this.#fail(e, codeOf(err) ?? 'FETCH_FAILED', err.message, now)
        s.state = 'failed'
        s.error = { code: f.code, message: f.message }
        s.retryAt = f.retryAt
      }
    }

    // per dataset: switch current, pin, then unpin and collect what is no longer listed
    let collect = false
    for (const dataset of new Set(entries.map(e => e.dataset))) {
      const mine = entries.filter(e => e.dataset === dataset)
      const states = mine.map(e => statuses[entries.indexOf(e)])
      if (!mine.every(e => windows.get(e)?.open === true)) continue
      try {
        for (const s of states) {
          if (s.state === 'held' && !s.pinned) {
            await svc.pin(s.release)
            s.pinned = true
            this.#init.metrics?.actionsTotal.inc({ action: 'pin' })
          }
        }
        const want = states.find(s => s.wantCurrent)
        if (want?.state === 'held' && !want.current) {
          await svc.rollback(dataset, want.version)
          for (const s of states) s.current = s === want
          this.#init.metrics?.actionsTotal.inc({ action: 'switch' })
          this.#log?.info({ release: want.release }, 'desired state: switched current')
        }
        // only once the dataset has converged: the releases it replaces stay until then
        if (!states.every(s => s.state === 'held') || want?.current !== true) continue
        collect = await this.#prune(dataset, mine, releases) || collect
      } catch (err: any) {
        ok = false
        this.#init.metrics?.errorsTotal.inc({ code: codeOf(err) ?? 'INTERNAL' })
        for (const s of states) if (s.error == null) s.error = { code: codeOf(err) ?? 'INTERNAL', message: err.message }
        this.#log?.warn({ dataset, err: err.message }, 'desired state: a step failed')
      }
    }
    if (collect) {
      try {
        const g = await svc.gc()
        this.#init.metrics?.actionsTotal.inc({ action: 'gc' })
        this.#log?.info({ freed: g.bytesFreed, removed: g.releasesRemoved }, 'desired state: collected releases no longer listed')
      } catch (err: any) {
        ok = false
        this.#init.metrics?.errorsTotal.inc({ code: codeOf(err) ?? 'INTERNAL' })
        this.#log?.warn({ err: err.message }, 'desired state: gc failed (tried again at the next pass)')
        for (const name of this.#pendingCollect) this.#collected.delete(name)
      }
    }
    this.#pendingCollect = []
    this.#status.entries = statuses
    this.#publishMetrics(statuses)
    return ok && statuses.every(s => s.state !== 'failed')
  }

  #pendingCollect: string[] = []

  /** Unpin the releases of `dataset` not listed, beyond `keep`; true when something awaits collection. */
  async #prune (dataset: string, mine: DesiredEntry[], releases: Map<string, ReleaseInfo>): Promise<boolean> {
    const listed = new Set(mine.map(e => e.version))
    const keep = Math.max(...mine.map(e => e.keep))
    const others = [...releases.values()].filter(r => r.dataset === dataset && !listed.has(r.version) && !r.current)
      .sort((a, b) => b.publishedAt - a.publishedAt)
    // the newest complete pinned others fill the slots `keep` leaves beyond the listed releases
    const slots = Math.max(0, keep - listed.size)
    const kept = new Set(others.filter(r => r.pinned && r.complete).slice(0, slots).map(r => r.name))
    const busy = new Set((await this.#init.service.status()).fetches.filter(f => f.state !== 'done' && f.state !== 'failed').map(f => f.name))
    let collect = false
    for (const r of others) {
      if (kept.has(r.name) || busy.has(r.name)) continue
      if (r.pinned) {
        await this.#init.service.unpin(r.name)
        this.#init.metrics?.actionsTotal.inc({ action: 'unpin' })
        this.#log?.info({ release: r.name }, 'desired state: unpinned a release no longer listed')
        if (!this.#status.removed.includes(r.name)) this.#status.removed.push(r.name)
      }
      // unpinned now, or earlier by a pass that ended before its gc (SIGKILL): collected once per run
      if (!this.#collected.has(r.name) && (r.pinned || r.complete)) {
        this.#collected.add(r.name)
        this.#pendingCollect.push(r.name)
        collect = true
      }
    }
    return collect
  }

  #fail (e: DesiredEntry, code: string, message: string, now: number): Failure {
    const name = `${e.dataset}@${e.version}`
    const attempts = (this.#failures.get(failKey(e))?.attempts ?? 0) + 1
    const f = { code, message, attempts, retryAt: now + Math.min(RETRY_BASE_MS * 2 ** (attempts - 1), RETRY_MAX_MS) }
    this.#failures.set(failKey(e), f)
    this.#init.metrics?.errorsTotal.inc({ code })
    this.#log?.warn({ release: name, code, err: message, retryAt: new Date(f.retryAt).toISOString() }, 'desired state: fetch failed')
    return f
  }

  #publishMetrics (statuses: SyncEntryStatus[]): void {
    const m = this.#init.metrics
    if (m == null) return
    m.desiredReleases.set(statuses.length)
    m.heldReleases.set(statuses.filter(s => s.state === 'held').length)
    m.entries.reset()
    for (const state of ['held', 'fetching', 'pending', 'waiting', 'failed', 'refused', 'unsupported'] as const) {
      m.entries.set({ state }, statuses.filter(s => s.state === state).length)
    }
  }
}
