// The publish service (seed only): publish jobs — read and chunk a directory, encode deltas against
// earlier releases, sign the record — with progress, one job per release at a time, and an honest end for a
// job a stop interrupted (nothing half-signed).
import { cidFromDigest } from '../../protocol/cid.js'
import { decodeManifest } from '../../protocol/manifest.js'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { parseChunkSize } from '../../protocol/chunker.js'
import { decodeSignedRelease, signRelease } from '../../protocol/release.js'
import { HeraldError, HTTP_STATUS_BY_CODE } from '../errors.js'
import { PublishJob } from './publish-job.js'
import { Publisher, sameContent } from './publisher.js'
import { repin, type ReleaseRegistry } from './release-registry.js'
import type { Store } from '../../store/store.js'
import type { Announcer } from '../announce/announcer.js'
import type { HeraldConfig } from '../config.js'
import type { Log } from '../log.js'
import type { PublishProgress, PublishRequest, PublishResult } from '../types.js'
import type { PrivateKey } from '@libp2p/interface'

const PUBLISHES_KEY = 'publishes'
/** finished publish jobs kept for GET /v1/publish/:id (a few KB each) */
const MAX_FINISHED_PUBLISHES = 100

export interface PublishServiceInit {
  config: Pick<HeraldConfig, 'seed' | 'publish'>
  store: Store
  registry: ReleaseRegistry
  announcer: Pick<Announcer, 'provideManifest' | 'provideChunks'>
  publisherKey?: PrivateKey
  /** a record was signed and stored (release announcements) */
  onSigned?: (bytes: Uint8Array) => void
  log: Log
}

export class PublishService {
  readonly #init: PublishServiceInit
  readonly #publisher: Publisher
  readonly #jobs = new Map<string, PublishJob>()
  #stopping = false

  constructor (init: PublishServiceInit) {
    this.#init = init
    this.#publisher = new Publisher(init.store, init.config.publish)
  }

  /** Publishes a stopped daemon left: they end as failed jobs (nothing of them was signed). */
  async start (): Promise<void> {
    const { store } = this.#init
    const raw = await store.getProgress(PUBLISHES_KEY)
    if (raw == null) return
    let list: Array<{ id: string, name: string, dir: string }> = []
    try { list = JSON.parse(new TextDecoder().decode(raw)) } catch {}
    for (const p of Array.isArray(list) ? list : []) {
      const job = new PublishJob({ name: String(p.name), dir: String(p.dir) }, String(p.id))
      job.fail('INTERRUPTED', `the daemon stopped while publishing ${String(p.name)}; nothing was signed: publish again (chunks already stored are reused)`)
      this.#jobs.set(job.id, job)
    }
    await store.deleteProgress(PUBLISHES_KEY)
  }

  /** Abort running jobs (they stay listed, so the next start reports them as interrupted) and wait for them. */
  async stop (): Promise<void> {
    this.#stopping = true
    for (const job of this.#jobs.values()) job.controller.abort(new HeraldError('SHUTTING_DOWN', 'daemon stopping'))
    await Promise.allSettled([...this.#jobs.values()].map(async j => await j.done))
  }

  /** Release the encoder's workers (after stop, or when stop took too long). */
  async close (): Promise<void> {
    await this.#publisher.close()
  }

  /** Start a publish job and return at once (validation errors of the request are thrown here). */
  async startPublish (req: PublishRequest): Promise<PublishProgress> {
    const { config } = this.#init
    if (this.#init.publisherKey == null) throw new HeraldError('NOT_PUBLISHER', config.seed ? 'this daemon holds no publisher key: create one with `heraldd init --seed`' : 'this daemon was not started as a seed: start it with `heraldd start --seed` (the publisher key is loaded only then)')
    if (this.#stopping) throw new HeraldError('SHUTTING_DOWN', 'daemon stopping')
    const { dataset, version } = parseReleaseName(req.name)
    if (req.chunkSize != null) parseChunkSize(req.chunkSize)
    const running = [...this.#jobs.values()].find(j => !j.finished && j.request.name === formatReleaseName(dataset, version))
    if (running != null) throw new HeraldError('CONFLICT', `${req.name} is being published (job ${running.id})`)
    const job = new PublishJob({ ...req, name: formatReleaseName(dataset, version) })
    // finished jobs stay answerable for a while: the oldest beyond MAX_FINISHED_PUBLISHES are forgotten
    const finished = [...this.#jobs.values()].filter(j => j.finished)
    for (const old of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_PUBLISHES))) this.#jobs.delete(old.id)
    this.#jobs.set(job.id, job)
    await this.#remember()
    // a job ended by a stop stays listed, so the restarted daemon reports it as interrupted
    const first = job.snapshot()
    job.done = this.#run(job, dataset, version).finally(async () => {
      if (!this.#stopping) await this.#remember().catch(() => {})
    })
    return first
  }

  getPublish (id: string): PublishProgress | undefined {
    return this.#jobs.get(id)?.snapshot()
  }

  onPublishProgress (id: string, listener: (p: PublishProgress) => void): () => void {
    const job = this.#jobs.get(id)
    if (job == null) throw new HeraldError('PUBLISH_NOT_FOUND', `no publish with id ${id}`)
    return job.onProgress(listener)
  }

  /** Start a publish and wait for its end (tests, the demo). */
  async publish (req: PublishRequest): Promise<PublishResult> {
    const started = await this.startPublish(req)
    const job = this.#jobs.get(started.id) as PublishJob
    await job.done
    if (job.error != null) throw new HeraldError(job.error.code, job.error.message)
    return job.result as PublishResult
  }

  /** Running publishes are kept in the store, so that a restarted daemon reports them as interrupted. */
  async #remember (): Promise<void> {
    const running = [...this.#jobs.values()].filter(j => !j.finished).map(j => ({ id: j.id, name: j.request.name, dir: j.request.dir }))
    await this.#init.store.putProgress(PUBLISHES_KEY, JSON.stringify(running))
  }

  async #run (job: PublishJob, dataset: string, version: string): Promise<void> {
    const { store, registry, announcer, log } = this.#init
    const req = job.request
    const started = performance.now()
    try {
      const built = await store.withGcLease(async () => {
        const result = await this.#publisher.build({
          dataset,
          version,
          dir: req.dir,
          base: req.base,
          delta: req.delta,
          allowEmpty: req.allowEmpty,
          keepCompressed: req.keepCompressed,
          chunkSize: req.chunkSize,
          signal: job.controller.signal,
          progress: job.counters,
          onScanned: () => { job.setState('reading') },
          onNewChunk: (n) => { job.newChunks++; job.newBytes += n },
          onEncoding: () => { job.setState('encoding') }
        })
        job.controller.signal.throwIfAborted()
        job.setState('signing')
        // versions are immutable: the same content is no new record; other content only with force
        const previous = await store.getRelease(dataset, version)
        if (previous != null) {
          const prev = decodeSignedRelease(previous).record
          const prevBytes = await store.getManifest(prev.manifestCid)
          const same = prev.manifestCid.equals(result.cid) || (prevBytes != null && sameContent(decodeManifest(prevBytes), result.manifest))
          if (same) return { result, unchanged: prev }
          if (req.force !== true) {
            throw new HeraldError('VERSION_EXISTS', `${req.name} is already published (seq ${prev.seq}, manifest ${prev.manifestCid.toString()}) with other content; a version name means fixed content: publish a new version, or replace it with --force (labs then switch to the new content)`)
          }
        }
        await repin(store, dataset, version, result.pinDigests)
        return { result }
      })
      const b = built.result
      const chunker = { minSize: b.manifest.chunker.minSize, avgSize: b.manifest.chunker.avgSize, maxSize: b.manifest.chunker.maxSize }
      const base = { name: formatReleaseName(dataset, version), files: b.stats.files, chunks: b.stats.chunks, newChunks: b.newChunks, bytes: b.stats.bytes, chunker }
      if (built.unchanged != null) {
        const seconds = (performance.now() - started) / 1000
        log.info({ release: req.name, manifest: built.unchanged.manifestCid.toString(), seq: built.unchanged.seq }, 'publish: content unchanged, nothing signed')
        job.succeed({ ...base, manifestCid: built.unchanged.manifestCid.toString(), seq: built.unchanged.seq, seconds, unchanged: true })
        return
      }
      const previous = await store.getRelease(dataset, version)
      const seq = previous != null ? decodeSignedRelease(previous).record.seq + 1 : 1
      const record = { dataset, version, manifestCid: b.cid, seq, publishedAt: Date.now() }
      const bytes = await signRelease(record, this.#init.publisherKey as PrivateKey)
      await store.putRelease(record, bytes)
      this.#init.onSigned?.(bytes)
      const opened = await registry.reopen(b.cid, b.manifest)
      announcer.provideManifest(b.cid)
      announcer.provideChunks(Array.from({ length: opened.entries }, (_, e) => cidFromDigest(opened.digestAt(e))))
      const seconds = (performance.now() - started) / 1000
      log.info({ release: req.name, manifest: b.cid.toString(), seq, chunks: b.stats.chunks, newChunks: b.newChunks, deltas: b.deltas, seconds }, 'published')
      job.succeed({
        ...base,
        manifestCid: b.cid.toString(),
        seq,
        seconds,
        delta: b.deltas[0],
        olderDeltas: b.deltas.length > 1 ? b.deltas.slice(1) : undefined
      })
    } catch (err: any) {
      const aborted = job.controller.signal.aborted
      const code = aborted ? 'INTERRUPTED' : (typeof err?.code === 'string' && HTTP_STATUS_BY_CODE[err.code] != null ? err.code : 'PUBLISH_FAILED')
      const message = aborted ? `the daemon stopped while publishing ${req.name}; nothing was signed: publish again (chunks already stored are reused)` : code === 'PUBLISH_FAILED' ? `publish failed: ${String(err?.message ?? err)}` : String(err.message)
      if (code === 'PUBLISH_FAILED') log.error({ err, release: req.name }, 'publish failed')
      else log.warn({ release: req.name, code, err: message }, 'publish refused')
      job.fail(code, message)
    }
  }
}
