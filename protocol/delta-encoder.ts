// The publisher's side of delta chunks: for every chunk of the new release that no base release holds, find
// the most similar base chunks (super-features, then position in the same file as a fallback), encode the
// chunk against them and keep the delta when it is clearly smaller than the chunk compressed on its own.
// The CPU work runs on a DeltaRunner (a pool of worker threads); the caller supplies chunk bytes (a store, or memory).
import { DIGEST_LENGTH, digestHex, sha256 } from './cid.js'
import { MAX_CHUNK_SIZE } from './chunker.js'
import { DELTA_KIND, DELTA_LEVEL, MAX_DELTA_BASE_BYTES, MAX_DELTA_BASES, MAX_DELTA_TARGET_BYTES, MAX_DELTA_TARGETS, SUPER_FEATURES } from './delta.js'
import type { DeltaEncoding, Manifest } from './manifest.js'
import type { DeltaTask, DeltaTaskResult } from './delta-worker.js'

/**
 * A delta object is kept when it saves at least this much against its chunks compressed on their own: it
 * costs ~1–3 KB of manifest and is stored and served besides the chunks, which labs without its bases fetch.
 */
export function deltaPays (objectBytes: number, compressedBytes: number): boolean {
  return objectBytes <= compressedBytes - Math.max(4096, compressedBytes / 64)
}
/** dictionary budget per delta: the best match and its neighbours in the base file */
const DICT_BUDGET = 3 * 1024 * 1024

/**
 * Runs the CPU work of delta encoding (daemon/runtime/delta-pool.ts: a pool of worker threads running
 * delta-worker.js; tests may run the tasks in-process).
 */
export interface DeltaRunner {
  /** tasks it runs at once: the encoder keeps this many in flight */
  readonly threads: number
  run: (task: DeltaTask) => Promise<DeltaTaskResult>
}

export interface DeltaEncodeInit {
  target: Manifest
  /** earlier releases of the dataset, newest first */
  bases: Manifest[]
  getChunk: (digest: Uint8Array) => Promise<Uint8Array | undefined>
  /** store a delta object (content-addressed: digest = sha256(bytes)) */
  putObject: (digest: Uint8Array, bytes: Uint8Array) => Promise<void>
  /** cached super-features of a chunk, if known */
  getFeatures?: (digest: Uint8Array) => Promise<Uint32Array | undefined>
  putFeatures?: (digest: Uint8Array, features: Uint32Array) => Promise<void>
  pool: DeltaRunner
  level?: number
  /** consecutive new chunks per delta object (1–MAX_DELTA_TARGETS) */
  group?: number
}

export interface DeltaEncodeStats {
  /** distinct target chunks no base holds */
  candidates: number
  candidateBytes: number
  /** chunks given a delta encoding */
  encoded: number
  /** delta objects (each rebuilds a run of up to `group` chunks) */
  objects: number
  /** sum of delta object sizes */
  deltaBytes: number
  /** what the encoded chunks would cost compressed */
  encodedCompressedBytes: number
  /** what the candidates cost as the chunk protocol sends them, deltas where kept */
  movedBytes: number
  seconds: number
}

/** consecutive new chunks of a file encoded as one delta object */
export const DELTA_GROUP = 32

interface Target { digest: Uint8Array, size: number, path: string, offset: number }

interface BaseChunk { digest: Uint8Array, size: number, prev: number, next: number }

/** Distinct chunks of the base releases, with file-order neighbours and a super-feature index. */
class BaseIndex {
  readonly chunks: BaseChunk[] = []
  readonly #byDigest = new Map<string, number>()
  readonly #bySf: Array<Map<number, number>> = Array.from({ length: SUPER_FEATURES }, () => new Map())
  /** per path of the newest base: chunk ids and their end offsets */
  readonly #files = new Map<string, { ids: number[], ends: number[] }>()

  constructor (bases: Manifest[]) {
    bases.forEach((m, n) => {
      for (const f of m.files) {
        const ids: number[] = []
        const ends: number[] = []
        let off = 0
        let prev = -1
        for (let i = 0; i < f.chunkSizes.length; i++) {
          const d = f.chunks.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH)
          const key = digestHex(d)
          let id = this.#byDigest.get(key)
          if (id == null) {
            id = this.chunks.length
            this.chunks.push({ digest: d, size: f.chunkSizes[i], prev: -1, next: -1 })
            this.#byDigest.set(key, id)
          }
          const c = this.chunks[id]
          if (c.prev === -1 && prev !== -1 && prev !== id) c.prev = prev
          if (prev !== -1 && this.chunks[prev].next === -1 && prev !== id) this.chunks[prev].next = id
          prev = id
          off += f.chunkSizes[i]
          ids.push(id)
          ends.push(off)
        }
        if (n === 0) this.#files.set(f.path, { ids, ends })
      }
    })
  }

  has (digest: Uint8Array): boolean { return this.#byDigest.has(digestHex(digest)) }

  addFeatures (id: number, sf: Uint32Array): void {
    for (let j = 0; j < SUPER_FEATURES; j++) {
      if (!this.#bySf[j].has(sf[j])) this.#bySf[j].set(sf[j], id)
    }
  }

  /** The base chunk sharing the most super-features, else the one at the same offset of the same file. */
  match (sf: Uint32Array, path: string, offset: number): number {
    const votes = new Map<number, number>()
    for (let j = 0; j < SUPER_FEATURES; j++) {
      const id = this.#bySf[j].get(sf[j])
      if (id != null) votes.set(id, (votes.get(id) ?? 0) + 1)
    }
    let best = -1
    let bestVotes = 0
    for (const [id, v] of votes) if (v > bestVotes) { best = id; bestVotes = v }
    if (best !== -1) return best
    const file = this.#files.get(path)
    if (file == null || file.ids.length === 0) return -1
    let lo = 0
    let hi = file.ends.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (file.ends[mid] <= offset) lo = mid + 1
      else hi = mid
    }
    return file.ids[lo]
  }

  /** The chosen chunk with its neighbours (previous, next, next-but-one) within the dictionary budget. */
  dictionary (id: number): number[] {
    const c = this.chunks[id]
    const out = [id]
    let bytes = c.size
    const add = (x: number): void => {
      if (x === -1 || out.includes(x) || out.length >= MAX_DELTA_BASES) return
      const size = this.chunks[x].size
      if (bytes + size > DICT_BUDGET) return
      out.push(x)
      bytes += size
    }
    add(c.prev)
    add(c.next)
    if (c.next !== -1) add(this.chunks[c.next].next)
    // in file order: the dictionary reads like the old file
    const order = (x: number): number => x === c.prev ? 0 : x === id ? 1 : x === c.next ? 2 : 3
    return out.sort((a, b) => order(a) - order(b))
  }
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function eachLimited<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++])
  }))
}

/** Compute delta encodings for `target` against `bases`. Delta objects are handed to `putObject`. */
export async function encodeReleaseDeltas (init: DeltaEncodeInit): Promise<{ encodings: DeltaEncoding[], stats: DeltaEncodeStats, compressed: Map<string, number> }> {
  const started = performance.now()
  const level = init.level ?? DELTA_LEVEL
  const group = init.group ?? DELTA_GROUP
  if (!Number.isInteger(group) || group < 1 || group > MAX_DELTA_TARGETS) throw new RangeError(`delta group must be 1–${MAX_DELTA_TARGETS}`)
  const base = new BaseIndex(init.bases)
  const concurrency = init.pool.threads * 2
  const stats: DeltaEncodeStats = { candidates: 0, candidateBytes: 0, encoded: 0, objects: 0, deltaBytes: 0, encodedCompressedBytes: 0, movedBytes: 0, seconds: 0 }
  const encodings: DeltaEncoding[] = []
  /** digest hex → size as sent (compressed when that helps), for the manifest's wire sizes */
  const compressed = new Map<string, number>()

  const features = async (digest: Uint8Array, data?: Uint8Array): Promise<Uint32Array | undefined> => {
    const cached = await init.getFeatures?.(digest)
    if (cached != null) return cached
    const bytes = data ?? await init.getChunk(digest)
    if (bytes == null) return undefined
    const sf = (await init.pool.run({ op: 'features', data: bytes })).features as Uint32Array
    await init.putFeatures?.(digest, sf)
    return sf
  }

  // 1. super-features of every base chunk (cached in the store after the first time)
  await eachLimited(base.chunks.map((_, id) => id), concurrency, async id => {
    const sf = await features(base.chunks[id].digest)
    if (sf != null) base.addFeatures(id, sf)
  })

  // 2. every distinct target chunk no base holds, with where it sits, cut into runs of consecutive new
  //    chunks of one file (one delta object per run: zstd then sees what the run's chunks share)
  const runs: Target[][] = []
  const seen = new Set<string>()
  for (const f of init.target.files) {
    let off = 0
    let run: Target[] = []
    let runBytes = 0
    const flush = (): void => { if (run.length > 0) runs.push(run); run = []; runBytes = 0 }
    for (let i = 0; i < f.chunkSizes.length; i++) {
      const d = f.chunks.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH)
      const key = digestHex(d)
      const size = f.chunkSizes[i]
      if (!seen.has(key) && !base.has(d)) {
        seen.add(key)
        if (run.length >= group || runBytes + size > MAX_DELTA_TARGET_BYTES) flush()
        run.push({ digest: d, size, path: f.path, offset: off })
        runBytes += size
      } else {
        flush()
      }
      off += size
    }
    flush()
  }

  // 3. encode each run against the best matches of its chunks and keep the delta when it clearly wins
  const found: Array<DeltaEncoding | undefined> = new Array(runs.length)
  await eachLimited(runs.map((_, n) => n), concurrency, async n => {
    const run = runs[n]
    const datas: Uint8Array[] = []
    const matches: number[] = []
    for (const t of run) {
      stats.candidates++
      stats.candidateBytes += t.size
      const data = await init.getChunk(t.digest)
      if (data == null) throw new Error(`chunk ${digestHex(t.digest)} of the new release is not available`)
      datas.push(data)
      const sf = await features(t.digest, data)
      const id = sf != null ? base.match(sf, t.path, t.offset) : -1
      if (id !== -1) matches.push(id)
    }
    // every chunk's best match first, then their neighbours, within the budget; in base-file order (ids
    // follow first appearance in the base), so the dictionary reads like the old file
    const chosen = new Set<number>()
    let dictBytes = 0
    for (const x of [...matches, ...matches.flatMap(id => base.dictionary(id))]) {
      if (chosen.has(x) || chosen.size >= MAX_DELTA_BASES) continue
      const size = base.chunks[x].size
      if (dictBytes + size > MAX_DELTA_BASE_BYTES) continue
      chosen.add(x)
      dictBytes += size
    }
    const ids = [...chosen].sort((a, b) => a - b)
    const bases: Uint8Array[] = []
    for (const x of ids) {
      const b = await init.getChunk(base.chunks[x].digest)
      if (b == null) break
      bases.push(b)
    }
    const travelCompressed = (sizes: number[]): void => {
      run.forEach((t, k) => { compressed.set(digestHex(t.digest), sizes[k]); stats.movedBytes += sizes[k] })
    }
    if (bases.length === 0 || bases.length !== ids.length) {
      // nothing to encode against: the chunks travel compressed
      const sizes: number[] = []
      for (const data of datas) sizes.push((await init.pool.run({ op: 'compress', data })).compressedSize ?? data.byteLength)
      travelCompressed(sizes)
      return
    }
    const r = await init.pool.run({ op: 'delta', targets: datas, bases, level })
    const object = r.object as Uint8Array
    const sizes = r.compressedSizes ?? datas.map(d => d.byteLength)
    const zsize = sizes.reduce((a, b) => a + b, 0)
    if (!deltaPays(object.byteLength, zsize) || object.byteLength > MAX_CHUNK_SIZE) {
      travelCompressed(sizes)
      return
    }
    run.forEach((t, k) => compressed.set(digestHex(t.digest), sizes[k]))
    const digest = sha256(object)
    await init.putObject(digest, object)
    found[n] = { targets: run.map(t => t.digest), object: digest, size: object.byteLength, bases: ids.map(x => base.chunks[x].digest), kind: DELTA_KIND }
    stats.encoded += run.length
    stats.objects++
    stats.deltaBytes += object.byteLength
    stats.encodedCompressedBytes += zsize
    stats.movedBytes += object.byteLength
  })
  for (const e of found) if (e != null) encodings.push(e)
  stats.seconds = (performance.now() - started) / 1000
  return { encodings, stats, compressed }
}

/**
 * Fill in every file's wire sizes (each chunk's size as compressed transfer sends it), so that a fetcher can
 * predict what an update moves. `known` holds sizes already computed (digest hex → bytes).
 */
export async function computeWireSizes (m: Manifest, pool: DeltaRunner, getChunk: (digest: Uint8Array) => Promise<Uint8Array | undefined>, known = new Map<string, number>()): Promise<void> {
  const todo: Uint8Array[] = []
  const queued = new Set<string>()
  for (const f of m.files) {
    for (let i = 0; i < f.chunkSizes.length; i++) {
      const d = f.chunks.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH)
      const key = digestHex(d)
      if (!known.has(key) && !queued.has(key)) { queued.add(key); todo.push(d) }
    }
  }
  await eachLimited(todo, pool.threads * 2, async d => {
    const data = await getChunk(d)
    if (data == null) throw new Error(`chunk ${digestHex(d)} is not available`)
    const r = await pool.run({ op: 'compress', data })
    known.set(digestHex(d), r.compressedSize ?? data.byteLength)
  })
  for (const f of m.files) {
    f.wireSizes = Uint32Array.from({ length: f.chunkSizes.length }, (_, i) => known.get(digestHex(f.chunks.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH))) ?? f.chunkSizes[i])
  }
}
