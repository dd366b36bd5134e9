// The seed's side of publishing: chunk a directory into the store (each chunk compressed once, on the worker
// pool, and kept in the form the chunk protocol sends), encode the new chunks as deltas against the
// dataset's earlier releases, record every chunk's wire size, and produce the manifest. Signing and
// announcing stay with the node.
import { allSet } from '../../protocol/bitmap.js'
import { digestHex, parseCid } from '../../protocol/cid.js'
import { DELTA_KIND } from '../../protocol/delta.js'
import { computeWireSizes, encodeReleaseDeltas } from '../../protocol/delta-encoder.js'
import { DeltaPool } from '../runtime/delta-pool.js'
import { DEFAULT_CHUNKER, parseChunkSize } from '../../protocol/chunker.js'
import { InvalidManifestError } from '../../protocol/errors.js'
import { buildRelease, type IngestProgress } from '../../protocol/ingest.js'
import { decodeManifest, encodeManifest, manifestChunkIndex, manifestCid, manifestDeltaIndex, type DeltaEncoding, type Manifest } from '../../protocol/manifest.js'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { HeraldError } from '../errors.js'
import type { HeraldConfig } from '../config.js'
import type { DeltaSummary } from '../types.js'
import type { Store } from '../../store/store.js'
import type { CID } from 'multiformats/cid'

export interface PublishInput {
  dataset: string
  version: string
  dir: string
  /** the release to encode deltas against (default: the newest held, plus older ones per config) */
  base?: string
  delta?: boolean
  allowEmpty?: boolean
  keepCompressed?: boolean | string[]
  /** `MIN:AVG:MAX`; default publish.chunkSize, else the format's default */
  chunkSize?: string
  signal?: AbortSignal
  /** counters the ingest pipeline updates in place */
  progress?: IngestProgress
  /** a chunk the store did not hold was stored */
  onNewChunk?: (bytes: number) => void
  /** called once the input was scanned, before it is read */
  onScanned?: () => void
  /** called when the input is read and deltas are being encoded */
  onEncoding?: () => void
}

/** Whether two manifests hold the same files, symlinks and directories (delta encodings and wire sizes aside). */
export function sameContent (a: Manifest, b: Manifest): boolean {
  const bare = (m: Manifest): Buffer => Buffer.from(encodeManifest({ ...m, encodings: [], files: m.files.map(f => ({ ...f, wireSizes: undefined })) }))
  return bare(a).equals(bare(b))
}

export interface Published {
  manifest: Manifest
  bytes: Uint8Array
  cid: CID
  stats: { files: number, chunks: number, bytes: number }
  newChunks: number
  /** one summary per base release, newest first */
  deltas: DeltaSummary[]
  /** the digests to pin: chunks, then delta objects */
  pinDigests: Uint8Array
}

/** chunks being compressed and stored at once during a publish, and their bytes at most */
const MAX_CHUNKS_IN_FLIGHT = 512
const MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024

export class Publisher {
  readonly #store: Store
  readonly #config: HeraldConfig['publish']
  #pool?: DeltaPool

  constructor (store: Store, config: HeraldConfig['publish']) {
    this.#store = store
    this.#config = config
  }

  async close (): Promise<void> {
    await this.#pool?.close()
  }

  #threads (): DeltaPool {
    this.#pool ??= new DeltaPool(this.#config.threads > 0 ? this.#config.threads : undefined)
    return this.#pool
  }

  /** Build, encode and store a release's manifest. Runs under the caller's fetch lease (no GC meanwhile). */
  async build (input: PublishInput): Promise<Published> {
    const store = this.#store
    let newChunks = 0
    const pool = this.#threads()
    /** digest hex → size on the wire (the stored form's size) */
    const known = new Map<string, number>()
    const running = new Set<Promise<void>>()
    let runningBytes = 0
    let failure: unknown
    const chunker = input.chunkSize != null ? parseChunkSize(input.chunkSize) : this.#config.chunkSize != null ? parseChunkSize(this.#config.chunkSize) : DEFAULT_CHUNKER
    let result: Awaited<ReturnType<typeof buildRelease>>
    try {
      result = await buildRelease(input.dir, {
      dataset: input.dataset,
      version: input.version,
      chunker,
      allowEmpty: input.allowEmpty,
      keepCompressed: input.keepCompressed ?? this.#config.keepCompressed,
      readBytesPerSecond: this.#config.readBytesPerSecond,
      signal: input.signal,
      progress: input.progress,
      onScanned: input.onScanned,
      onChunk: async (digest, bytes) => {
        if (failure != null) throw failure
        const key = digestHex(digest)
        if (known.has(key)) return
        const stored = await store.storedSize(digest)
        if (stored != null) { known.set(key, stored); return }
        known.set(key, bytes.byteLength)
        // compress on the pool while the chunker goes on, a bounded number at a time
        const p = pool.run({ op: 'compress', data: bytes }).then(async r => {
          known.set(key, r.compressedSize ?? bytes.byteLength)
          if (await store.putChunk(digest, bytes, r.frame)) { newChunks++; input.onNewChunk?.(bytes.byteLength) }
        }).catch(err => { failure ??= err }).finally(() => { running.delete(p) })
        running.add(p)
        runningBytes += bytes.byteLength
        void p.finally(() => { runningBytes -= bytes.byteLength })
        // many small chunks in flight let the store's group commit share one fsync among them (one fsync per
        // few chunks made 10^4 chunks of 150 B take a minute); the byte bound keeps large chunks in check
        while (running.size >= MAX_CHUNKS_IN_FLIGHT || runningBytes >= MAX_BYTES_IN_FLIGHT) await Promise.race(running)
      }
      })
    } finally {
      // chunks being stored are stored (or fail) before this returns, even when the build failed
      await Promise.allSettled(running)
    }
    if (failure != null) throw failure
    input.signal?.throwIfAborted()
    input.onEncoding?.()
    const deltas: DeltaSummary[] = []
    const encodings: DeltaEncoding[] = []
    if (input.delta ?? this.#config.delta) {
      for (const base of await this.#bases(input.dataset, input.version, input.base)) {
        const r = await encodeReleaseDeltas({
          target: result.manifest,
          bases: [base.manifest],
          pool,
          level: this.#config.deltaLevel,
          group: this.#config.deltaGroup,
          getChunk: async d => await store.getChunk(d),
          putObject: async (d, b) => { await store.putChunk(d, b) },
          getFeatures: async d => await store.getFeatures(d),
          putFeatures: async (d, f) => { await store.putFeatures(d, f) }
        })
        encodings.push(...r.encodings)
        const s = r.stats
        deltas.push({ base: base.name, candidates: s.candidates, candidateBytes: s.candidateBytes, encoded: s.encoded, deltaBytes: s.deltaBytes, movedBytes: s.movedBytes, seconds: +s.seconds.toFixed(3) })
      }
    }
    result.manifest.encodings = encodings
    // what each chunk weighs on the wire, for `herald plan`
    await computeWireSizes(result.manifest, pool, async d => await store.getChunk(d), known)
    const bytes = encodeManifest(result.manifest)
    // every check a lab makes on the manifest, made before anything is signed
    try {
      decodeManifest(bytes)
    } catch (err: any) {
      throw new InvalidManifestError(`labs would refuse this release, so it is not published: ${err.message as string}`, { cause: err })
    }
    input.signal?.throwIfAborted()
    const cid = manifestCid(bytes)
    await store.putManifest(cid, bytes)
    const index = manifestChunkIndex(result.manifest)
    const objects = manifestDeltaIndex(result.manifest, index, [DELTA_KIND]).digests
    const pinDigests = new Uint8Array(index.digests.byteLength + objects.byteLength)
    pinDigests.set(index.digests)
    pinDigests.set(objects, index.digests.byteLength)
    return { manifest: result.manifest, bytes, cid, stats: result.stats, newChunks, deltas, pinDigests }
  }

  /**
   * The releases to encode deltas against: the one asked for; else the newest `publish.deltaReleases`
   * other releases of the dataset held complete, newest first (N-1, then N-2 for labs that skipped one).
   */
  async #bases (dataset: string, version: string, asked?: string): Promise<Array<{ name: string, manifest: Manifest }>> {
    let candidates = (await this.#store.listReleases()).filter(r => r.dataset === dataset && r.version !== version)
    if (asked != null) {
      const want = parseReleaseName(asked)
      if (want.dataset !== dataset) throw new HeraldError('INVALID_ARGUMENT', `the delta base ${asked} is not a release of ${dataset}`)
      candidates = candidates.filter(r => r.version === want.version)
      if (candidates.length === 0) throw new HeraldError('RELEASE_NOT_FOUND', `the delta base ${asked} is not in the local store`)
    }
    const out: Array<{ name: string, manifest: Manifest }> = []
    const limit = asked != null ? 1 : this.#config.deltaReleases
    for (const r of candidates.sort((a, b) => b.publishedAt - a.publishedAt)) {
      if (out.length >= limit) break
      const raw = await this.#store.getManifest(parseCid(r.manifestCid))
      if (raw == null) continue
      const manifest = decodeManifest(raw)
      const index = manifestChunkIndex(manifest)
      const have = await this.#store.hasChunks(index.digests)
      if (allSet(have, index.count)) out.push({ name: formatReleaseName(r.dataset, r.version), manifest })
    }
    if (asked != null && out.length === 0) throw new HeraldError('RELEASE_NOT_FOUND', `the delta base ${asked} is not complete in the local store`)
    return out
  }
}
