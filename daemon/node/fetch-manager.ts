// The fetch manager: fetch jobs from request to switch. A job resolves the record and manifest, pins the
// release and reads what the store holds under the GC lease, checks free space, transfers what is missing
// into the store and the release's staging directory, then switches it into place. Pending fetches are
// kept in the store and resumed at the next start; stop() aborts them at a checkpoint.
import { join } from 'node:path'
import { cidFromDigest } from '../../protocol/cid.js'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { checkFreeSpace } from '../../store/space.js'
import { StagedRelease } from '../../store/materialize.js'
import { releasesDir, type HeraldConfig } from '../config.js'
import { HeraldError } from '../errors.js'
import { FetchJob } from './fetch-job.js'
import { entryDigests, repin, type ReleaseRegistry } from './release-registry.js'
import { transfer, type TransferInit } from './transfer.js'
import type { Store } from '../../store/store.js'
import type { RwLock } from '../../store/rwlock.js'
import type { Announcer } from '../announce/announcer.js'
import type { Log } from '../log.js'
import type { HeraldMetrics } from '../metrics.js'
import type { FetchProgress, FetchRequest } from '../types.js'
import { checkManifestName, type Resolver } from './resolver.js'
import type { TransferActivity } from './serving.js'

const FETCHES_KEY = 'fetches'

export interface FetchManagerInit {
  config: HeraldConfig
  store: Store
  registry: ReleaseRegistry
  resolver: Resolver
  announcer: Pick<Announcer, 'provideManifest' | 'provideChunks'>
  /** the node's GC lease: held shared from reading the store until the release is pinned */
  gcLease: RwLock
  activity: TransferActivity
  /** what a transfer needs (peers, exchanges, the receive pipeline, the planner) */
  transfer: Omit<TransferInit, 'received'>
  metrics?: HeraldMetrics
  log: Log
}

export class FetchManager {
  readonly #init: FetchManagerInit
  readonly #jobs = new Map<string, FetchJob>()
  /** bytes received since start, by source */
  readonly received = { peer: 0, seed: 0 }
  /** told of every fetch that ends, done or failed (not one a stop interrupted): events, the reconciler */
  readonly #endListeners = new Set<(p: FetchProgress) => void>()
  #stopping = false

  constructor (init: FetchManagerInit) {
    this.#init = init
  }

  /** Resume the fetches a previous run left pending. */
  async start (): Promise<void> {
    for (const [name, { out, manifestCid }] of Object.entries(await this.#pending())) {
      try {
        this.#init.log.info({ release: name }, 'resuming interrupted fetch')
        await this.startFetch({ name, out, manifestCid })
      } catch (err: any) {
        this.#init.log.warn({ release: name, err: err.message }, 'cannot resume fetch')
      }
    }
  }

  /** Abort every job; they stay pending (checkpointed) for the next start. Resolves when all have settled. */
  async stop (): Promise<void> {
    this.#stopping = true
    for (const job of this.#jobs.values()) {
      try {
        job.controller.abort(new HeraldError('SHUTTING_DOWN', 'daemon stopping'))
      } catch (err: any) {
        // an abort listener that throws must not stop the shutdown
        this.#init.log.error({ err }, 'abort listener threw while stopping a fetch')
      }
    }
    await Promise.allSettled([...this.#jobs.values()].map(async j => await j.done))
  }

  async startFetch (req: FetchRequest): Promise<FetchProgress> {
    const { dataset, version } = parseReleaseName(req.name)
    const name = formatReleaseName(dataset, version)
    for (const job of this.#jobs.values()) {
      if (job.name === name && !job.finished) return job.snapshot()
    }
    if (this.#stopping) throw new HeraldError('SHUTTING_DOWN', 'daemon stopping')
    const job = new FetchJob(name, req.out)
    job.expectManifestCid = req.manifestCid
    this.#jobs.set(job.id, job)
    await this.#remember(name, req.out, req.manifestCid)
    job.done = this.#run(job, dataset, version)
    return job.snapshot()
  }

  getFetch (id: string): FetchProgress | undefined {
    return this.#jobs.get(id)?.snapshot()
  }

  onFetchProgress (id: string, listener: (p: FetchProgress) => void): () => void {
    const job = this.#jobs.get(id)
    if (job == null) throw new HeraldError('FETCH_NOT_FOUND', `no fetch with id ${id}`)
    return job.onProgress(listener)
  }

  onFetchEnd (listener: (p: FetchProgress) => void): () => void {
    this.#endListeners.add(listener)
    return () => { this.#endListeners.delete(listener) }
  }

  #ended (job: FetchJob): void {
    for (const l of this.#endListeners) {
      try { l(job.snapshot()) } catch (err) { this.#init.log.error({ err }, 'a fetch-end listener failed') }
    }
  }

  /** names of the releases being fetched now (gc and rollback leave them alone) */
  busy (): Set<string> {
    return new Set([...this.#jobs.values()].filter(j => !j.finished).map(j => j.name))
  }

  snapshots (): FetchProgress[] {
    return [...this.#jobs.values()].map(j => j.snapshot())
  }

  async #run (job: FetchJob, dataset: string, version: string): Promise<void> {
    const { config, store, registry, announcer, metrics, log, activity } = this.#init
    const signal = job.controller.signal
    const started = performance.now()
    metrics?.fetchActive.inc()
    try {
      const { resolver } = this.#init
      const { signed, from } = await resolver.record(dataset, version, signal)
      const cid = signed.record.manifestCid
      job.mark('record')
      job.progress.manifestCid = cid.toString()
      // a caller that pinned the content (a desired-state entry) gets nothing else: refused before any chunk moves
      if (job.expectManifestCid != null && job.expectManifestCid !== cid.toString()) throw new HeraldError('MANIFEST_MISMATCH', `${job.name} is signed for manifest ${cid.toString()}, not the expected ${job.expectManifestCid}: refused`)
      job.setState('planning')
      const onWire = (bytes: number, delta: boolean): void => { metrics?.manifestReceivedBytesTotal.inc({ encoding: delta ? 'delta' : 'raw' }, bytes) }
      const manifest = await resolver.manifest(cid, from, signal, { base: await resolver.baseFor(dataset, cid), onWire })
      checkManifestName(manifest, dataset, version)
      job.mark('manifest')
      announcer.provideManifest(cid)
      const root = job.out ?? releasesDir(config)
      // what the store holds is read under the GC lease, and the release is pinned before any chunk moves:
      // a gc (now, or after a restart before this fetch resumes) never deletes what this fetch relies on
      const { swarm, staged } = await this.#init.gcLease.read(async () => await store.withGcLease(async () => {
        const swarm = await registry.open(cid, manifest)
        const index = swarm.index
        await repin(store, dataset, version, entryDigests(index.digests, swarm.deltas.digests))
        job.progress.totalChunks = index.count
        job.progress.totalBytes = index.totalBytes
        job.progress.reusedChunks = 0
        job.progress.reusedBytes = 0
        for (let i = 0; i < index.count; i++) {
          if (swarm.hasLocal(i)) { job.progress.reusedChunks++; job.progress.reusedBytes += index.sizes[i] }
        }
        job.setState('fetching')
        // chunks into the packs (in their stored form), the whole release into its staging directory
        let packBytes = 0
        for (let i = 0; i < index.count; i++) if (!swarm.hasLocal(i)) packBytes += index.wireSizes?.[i] ?? index.sizes[i]
        await checkFreeSpace([{ path: store.dir, bytes: packBytes }, { path: root, bytes: index.totalBytes, unlessExists: join(root, dataset, version) }])
        const staged = await StagedRelease.open(store, manifest, { root })
        this.#init.transfer.pipeline.attach(cid, staged)
        activity.transfers++
        try {
          if (!swarm.complete) await transfer({ ...this.#init.transfer, received: this.received }, job, swarm, signal)
        } catch (err) {
          await staged.abort()
          throw err
        } finally {
          activity.transfers--
          this.#init.transfer.pipeline.detach(cid, staged)
        }
        return { swarm, staged }
      }))
      try {
        // chunks, and the delta objects this node now holds (it serves them like chunks)
        announcer.provideChunks(Array.from({ length: swarm.entries }, (_, e) => e).filter(e => swarm.hasLocal(e)).map(e => cidFromDigest(swarm.digestAt(e))))
        job.setState('materializing')
        activity.materializing++
        try {
          job.progress.path = await staged.finish(signal)
        } finally {
          activity.materializing--
        }
      } catch (err) {
        await staged.abort()
        throw err
      }
      await this.#forget(job.name)
      job.setState('done')
      this.#ended(job)
      metrics?.fetchDurationSeconds.observe({ result: 'done' }, (performance.now() - started) / 1000)
      log.info({ release: job.name, seconds: (performance.now() - started) / 1000, wire: job.progress.wireBytes, reusedBytes: job.progress.reusedBytes, phasesMs: job.phases }, 'fetch done')
    } catch (err: any) {
      if (err instanceof TypeError || err instanceof RangeError) {
        log.error({ err }, 'fetch crashed on a programming error')
      }
      const code = typeof err?.code === 'string' && !signal.aborted ? err.code : (signal.aborted ? 'SHUTTING_DOWN' : 'FETCH_FAILED')
      job.progress.error = { code, message: err?.message ?? String(err) }
      job.setState('failed')
      if (!signal.aborted) this.#ended(job)
      metrics?.fetchDurationSeconds.observe({ result: 'failed' }, (performance.now() - started) / 1000)
      if (!signal.aborted) {
        // a fetch that failed for good is not resumed at the next start; an interrupted one is, and so is
        // one that ran out of disk (it resumes once space is freed: at the next start, or asked again)
        if (code !== 'DISK_FULL') await this.#forget(job.name).catch(() => {})
        log.warn({ release: job.name, code, err: err?.message }, 'fetch failed')
      }
    } finally {
      metrics?.fetchActive.dec()
    }
  }

  /** Fetches in progress are kept in the store, so that a restarted daemon resumes them. */
  async #pending (): Promise<Record<string, { out?: string, manifestCid?: string }>> {
    const raw = await this.#init.store.getProgress(FETCHES_KEY)
    if (raw == null) return {}
    try {
      return JSON.parse(typeof raw === 'string' ? raw : new TextDecoder().decode(raw))
    } catch {
      return {}
    }
  }

  async #remember (name: string, out?: string, manifestCid?: string): Promise<void> {
    const pending = await this.#pending()
    pending[name] = { out, manifestCid }
    await this.#init.store.putProgress(FETCHES_KEY, JSON.stringify(pending))
  }

  async #forget (name: string): Promise<void> {
    const pending = await this.#pending()
    delete pending[name]
    await this.#init.store.putProgress(FETCHES_KEY, JSON.stringify(pending))
  }
}
