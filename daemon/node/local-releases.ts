// Local releases: what this node holds and what an operator does with it — list, pin, unpin, gc, verify
// (quarantining corrupt chunks), rollback, export.
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { cidFromDigest, parseCid, verifyDigest } from '../../protocol/cid.js'
import { manifestChunkIndex } from '../../protocol/manifest.js'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { decodeSignedRelease, publisherKeyText } from '../../protocol/release.js'
import { materialize, switchCurrent, verifyMaterialized } from '../../store/materialize.js'
import { releasesDir, type HeraldConfig } from '../config.js'
import { codeOf, HeraldError } from '../errors.js'
import { exportRelease } from './exporter.js'
import { releaseEntryDigests, type ReleaseRegistry } from './release-registry.js'
import type { Store } from '../../store/store.js'
import type { RwLock } from '../../store/rwlock.js'
import type { Log } from '../log.js'
import type { HeraldMetrics } from '../metrics.js'
import type { ExportResult, GcResult, ReleaseInfo, RollbackResult, VerifyResult } from '../types.js'

export interface LocalReleasesInit {
  config: HeraldConfig
  store: Store
  registry: ReleaseRegistry
  /** the node's GC lease: gc holds it alone */
  gcLease: RwLock
  /** names of the releases being fetched now */
  busy: () => Set<string>
  metrics?: HeraldMetrics
  log: Log
}

export class LocalReleases {
  readonly #init: LocalReleasesInit

  constructor (init: LocalReleasesInit) {
    this.#init = init
  }

  async info (dataset: string, version: string): Promise<ReleaseInfo> {
    const { store, registry, config } = this.#init
    const bytes = await store.getRelease(dataset, version)
    if (bytes == null) throw new HeraldError('RELEASE_NOT_FOUND', `release ${dataset}@${version} is not in the local store`)
    const signed = decodeSignedRelease(bytes)
    const cid = signed.record.manifestCid
    const manifest = await registry.manifest(cid)
    let complete = false
    let files: number | undefined
    let total: number | undefined
    if (manifest != null) {
      const swarm = await registry.open(cid, manifest)
      complete = swarm.complete
      files = manifest.files.length
      total = manifest.files.reduce((n, f) => n + f.size, 0)
    }
    const current = await store.getCurrent(dataset)
    return {
      name: formatReleaseName(dataset, version),
      dataset,
      version,
      manifestCid: cid.toString(),
      seq: signed.record.seq,
      publishedAt: signed.record.publishedAt,
      publisher: publisherKeyText(signed.publicKey),
      pinned: await store.isPinned(dataset, version),
      current: current === version,
      complete,
      files,
      bytes: total,
      path: current === version ? join(releasesDir(config), dataset, version) : undefined
    }
  }

  async list (): Promise<ReleaseInfo[]> {
    const out: ReleaseInfo[] = []
    for (const r of await this.#init.store.listReleases()) out.push(await this.info(r.dataset, r.version))
    return out
  }

  async pin (name: string): Promise<ReleaseInfo> {
    const { dataset, version } = parseReleaseName(name)
    const info = await this.info(dataset, version)
    const manifest = await this.#init.registry.manifest(parseCid(info.manifestCid))
    if (manifest == null) throw new HeraldError('RELEASE_NOT_FOUND', `the manifest of ${name} is not in the local store: fetch it first`)
    await this.#init.store.pin(dataset, version, releaseEntryDigests(manifest))
    return await this.info(dataset, version)
  }

  async unpin (name: string, opts: { force?: boolean } = {}): Promise<ReleaseInfo> {
    const { dataset, version } = parseReleaseName(name)
    await this.info(dataset, version)
    if (opts.force !== true && await this.#init.store.getCurrent(dataset) === version) {
      throw new HeraldError('CONFLICT', `${name} is the current release of ${dataset}: a gc would delete the chunks its files are checked and served from. Roll back or fetch another release first, or unpin with --force`)
    }
    await this.#init.store.unpin(dataset, version)
    return await this.info(dataset, version)
  }

  async gc (): Promise<GcResult> {
    const { store, registry, metrics } = this.#init
    return await this.#init.gcLease.write(async () => {
      const result = await store.gc()
      metrics?.gcRunsTotal.inc()
      metrics?.gcFreedBytesTotal.inc(result.bytesFreed)
      // what the store holds changed: the have-ledgers must say so before any fetch reads them again
      await registry.refresh()
      const removed = await this.#removeUnpinnedDirectories()
      return { ...result, releasesRemoved: removed }
    })
  }

  /**
   * Remove the materialized directories of releases that are neither pinned nor current. Staging and
   * hidden entries (names starting with '.') and directories of releases this node does not know are left
   * alone. Returns the names removed.
   */
  async #removeUnpinnedDirectories (): Promise<string[]> {
    const { store, config, log } = this.#init
    const root = releasesDir(config)
    const removed: string[] = []
    const busy = this.#init.busy()
    for (const r of await store.listReleases()) {
      const name = formatReleaseName(r.dataset, r.version)
      if (busy.has(name) || await store.isPinned(r.dataset, r.version)) continue
      if (await store.getCurrent(r.dataset) === r.version) continue
      const datasetDir = join(root, r.dataset)
      let entries: string[]
      try { entries = await readdir(datasetDir) } catch { continue }
      if (!entries.includes(r.version)) continue
      await rm(join(datasetDir, r.version), { recursive: true, force: true })
      await rm(join(datasetDir, `.${r.version}.manifest`), { force: true })
      removed.push(name)
      log.info({ release: name }, 'removed the directory of an unpinned release')
    }
    return removed
  }

  async verify (name: string): Promise<VerifyResult> {
    const { store, registry, config } = this.#init
    const { dataset, version } = parseReleaseName(name)
    const info = await this.info(dataset, version)
    const manifest = await registry.manifest(parseCid(info.manifestCid))
    if (manifest == null) throw new HeraldError('RELEASE_NOT_FOUND', `the manifest of ${name} is not in the local store`)
    const index = manifestChunkIndex(manifest)
    const bad: string[] = []
    let missing = 0
    for (let i = 0; i < index.count; i++) {
      const digest = index.digestAt(i)
      let bytes: Uint8Array | undefined
      try {
        bytes = await store.getChunk(digest)
      } catch (err: any) {
        // an entry the store cannot read back (a damaged pack) is as bad as one that reads back wrong
        if (err instanceof TypeError || err instanceof RangeError || codeOf(err) === 'STORE_CLOSED') throw err
        bad.push(cidFromDigest(digest).toString())
        await this.#quarantine(digest, err)
        continue
      }
      if (bytes == null) missing++
      else if (!verifyDigest(digest, bytes)) {
        bad.push(cidFromDigest(digest).toString())
        await this.#quarantine(digest)
      }
    }
    let filesChecked = 0
    let badFiles: string[] = []
    if (info.current) {
      const r = await verifyMaterialized(store, manifest, releasesDir(config))
      filesChecked = r.filesChecked
      badFiles = r.badFiles
    }
    return { name: info.name, ok: bad.length === 0 && missing === 0 && badFiles.length === 0, chunksChecked: index.count, bad, missing, filesChecked, badFiles }
  }

  /**
   * A stored chunk that fails its check is dropped from the index (never served or advertised again) and
   * from every have-ledger; the next fetch of a release that needs it fetches it again (repair).
   */
  async #quarantine (digest: Uint8Array, cause?: unknown): Promise<void> {
    await this.#init.store.dropChunk(digest)
    this.#init.registry.unmarkEverywhere(digest)
    this.#init.metrics?.storeCorruptChunksTotal.inc()
    this.#init.log.error({ chunk: cidFromDigest(digest).toString(), err: (cause as any)?.message }, 'stored chunk failed verification: quarantined, will be fetched again')
  }

  /**
   * Switch `current` back one step: to the newest complete, pinned release published before the current
   * one (or to `to`). Run again, it steps further back. Never chooses a release that is still being fetched.
   */
  async rollback (dataset: string, to?: string): Promise<RollbackResult> {
    const { store, registry, config } = this.#init
    const from = await store.getCurrent(dataset)
    const releases = (await store.listReleases()).filter(r => r.dataset === dataset)
    const fromAt = releases.find(r => r.version === from)?.publishedAt ?? Infinity
    const busy = this.#init.busy()
    let target = to
    if (target == null) {
      const candidates = releases
        .filter(r => r.version !== from && r.publishedAt < fromAt && !busy.has(formatReleaseName(r.dataset, r.version)))
        .sort((a, b) => b.publishedAt - a.publishedAt)
      for (const c of candidates) {
        if (!await store.isPinned(c.dataset, c.version)) continue
        if (!(await this.info(c.dataset, c.version)).complete) continue
        target = c.version
        break
      }
      if (target == null) throw new HeraldError('RELEASE_NOT_FOUND', `no complete, pinned release of ${dataset} older than ${from ?? 'the current one'} to roll back to`)
    }
    if (busy.has(formatReleaseName(dataset, target))) throw new HeraldError('CONFLICT', `${dataset}@${target} is being fetched: wait for it, then switch`)
    const info = await this.info(dataset, target)
    const manifest = await registry.manifest(parseCid(info.manifestCid))
    if (manifest == null || !info.complete) throw new HeraldError('RELEASE_NOT_FOUND', `${info.name} is not complete in the local store`)
    const root = releasesDir(config)
    await materialize(store, manifest, { root })
    await switchCurrent(root, dataset, target)
    await store.setCurrent(dataset, target)
    return { dataset, from, to: target }
  }

  async export (name: string, dir: string): Promise<ExportResult> { return await exportRelease(this.#init.store, name, dir) }
}
