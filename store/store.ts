// The store: LevelDB is the system of record (chunk index, manifests, release records, pins with
// refcounts, `current` pointers, fetch progress, schema version); chunk bytes live in append-only pack
// files indexed from LevelDB (see docs/STORAGE.md for the measurement behind that choice).
// Writes are verify-then-commit: bytes that do not hash to their digest are never stored.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { digestHex, verifyDigest } from '../protocol/cid.js'
import { checkNotReplay } from '../protocol/release.js'
import { SchemaVersionError, StoreClosedError, StoreCorruptError, StoreLockedError } from './errors.js'
import { HashMismatchError } from '../protocol/errors.js'
import { decompressChunk } from '../protocol/encoding/compression.js'
import { decodeLocation, encodeLocation, PackSet, type Location, type StoredEncoding } from './packs.js'
import { RwLock } from './rwlock.js'
import { ChunkCommitter } from './commit.js'
import { dec, enc, key, P, upperBound, type BatchOp, type Counters } from './keys.js'
import { recoverShortPacks, type RecoveryReport } from './recovery.js'
import type { CID } from 'multiformats/cid'

/** 2: index entries may name a zstd-stored chunk (schema-1 stores are upgraded in place: their entries stay valid) */
export const SCHEMA_VERSION = 2
/** packs roll over at 1 GiB: big enough to keep file counts low, small enough for GC to rewrite */
export const DEFAULT_PACK_MAX_BYTES = 1024 * 1024 * 1024
/** GC rewrites a pack whose dead share is above this */
const GC_REWRITE_THRESHOLD = 0.5
/** index entries kept in memory: the chunks just stored are the ones peers ask for (~40 B + key each) */
const LOCATION_CACHE_ENTRIES = 65_536

export interface StoreOptions {
  packMaxBytes?: number
}

export interface StoreStats {
  chunks: number
  bytes: number
  diskBytes: number
  manifests: number
  releases: number
  pins: number
}

export interface StoredChunk {
  encoding: StoredEncoding
  data: Uint8Array
  rawSize: number
}

export interface ReleaseEntry {
  dataset: string
  version: string
  seq: number
  manifestCid: string
  publishedAt: number
}

type DB = Level<Uint8Array, Uint8Array>
export type { RecoveryReport }

export class Store {
  readonly dir: string
  readonly #db: DB
  readonly #packs: PackSet
  readonly #lock = new RwLock()
  readonly #pending = new Map<string, Promise<boolean>>()
  /** digest hex → index entry, for recently stored or read chunks; insertion-ordered, oldest dropped first */
  readonly #locations = new Map<string, Location>()
  readonly #committer: ChunkCommitter
  #stats: Counters
  #closed = false
  /** what the open found and repaired: packs shorter than the index said, index entries dropped */
  readonly recovery: RecoveryReport

  private constructor (dir: string, db: DB, packs: PackSet, stats: Counters, recovery: RecoveryReport) {
    this.dir = dir
    this.#db = db
    this.#packs = packs
    this.#stats = stats
    this.recovery = recovery
    this.#committer = new ChunkCommitter(db, packs, () => this.#stats, () => this.#statsOp())
  }

  static async open (dir: string, opts: StoreOptions = {}): Promise<Store> {
    await mkdir(dir, { recursive: true })
    const db: DB = new Level<Uint8Array, Uint8Array>(join(dir, 'index'), { keyEncoding: 'view', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err: any) {
      if (err.code === 'LEVEL_LOCKED' || err.cause?.code === 'LEVEL_LOCKED') throw new StoreLockedError(dir, { cause: err })
      throw err
    }
    try {
      const schemaKey = key(P.meta, 'schema')
      const schema = await db.get(schemaKey)
      if (schema === undefined || Number(dec.decode(schema)) === 1) {
        await db.put(schemaKey, enc.encode(String(SCHEMA_VERSION)))
      } else if (Number(dec.decode(schema)) !== SCHEMA_VERSION) {
        throw new SchemaVersionError(`store schema ${dec.decode(schema)} in ${dir} is not the supported ${SCHEMA_VERSION}: use a heraldd that supports it, or restore a backup`)
      }
      const committed = new Map<number, number>()
      for await (const [k, v] of db.iterator({ gte: key(P.packEnd, ''), lt: upperBound(P.packEnd) })) {
        committed.set(Number(dec.decode(k.subarray(P.packEnd.length))), Number(dec.decode(v)))
      }
      const packs = await PackSet.open(join(dir, 'packs'), committed, opts.packMaxBytes ?? DEFAULT_PACK_MAX_BYTES)
      const raw = await db.get(key(P.meta, 'stats'))
      const stats: Counters = raw !== undefined ? JSON.parse(dec.decode(raw)) : { chunks: 0, bytes: 0, manifests: 0, releases: 0, pins: 0 }
      const statsOp = (): BatchOp => ({ type: 'put', key: key(P.meta, 'stats'), value: enc.encode(JSON.stringify(stats)) })
      const recovery = await recoverShortPacks(db, packs, committed, stats, statsOp)
      return new Store(dir, db, packs, stats, recovery)
    } catch (err) {
      await db.close()
      throw err
    }
  }

  #check (): void { if (this.#closed) throw new StoreClosedError() }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled(this.#pending.values())
    await this.#packs.close()
    await this.#db.close()
  }

  #statsOp (): BatchOp & { type: 'put' } {
    return { type: 'put', key: key(P.meta, 'stats'), value: enc.encode(JSON.stringify(this.#stats)) }
  }

  // ---- chunks --------------------------------------------------------------------------------------

  /**
   * Verify and store a chunk; true if it was new. With `zstdFrame` (the chunk's zstd frame, as compressed
   * transfer sends it) the frame is what the pack keeps: served as it is, decompressed on read.
   */
  async putChunk (digest: Uint8Array, bytes: Uint8Array, zstdFrame?: Uint8Array): Promise<boolean> {
    this.#check()
    if (!verifyDigest(digest, bytes)) throw new HashMismatchError(`chunk bytes do not hash to ${digestHex(digest)}`)
    const k = digestHex(digest)
    const inFlight = this.#pending.get(k)
    if (inFlight != null) { await inFlight; return false }
    const run = (async () => {
      if (this.#locations.has(k) || (await this.#db.get(key(P.chunk, digest))) !== undefined) return false
      const at = await this.#packs.append(zstdFrame ?? bytes)
      const loc: Location = { ...at, encoding: zstdFrame != null ? 'zstd' : 'raw', rawSize: bytes.byteLength }
      // indexed only once the bytes are durable, together with the chunks stored meanwhile
      await this.#committer.commit(digest, loc)
      this.#remember(k, loc)
      return true
    })()
    this.#pending.set(k, run)
    try {
      return await run
    } finally {
      this.#pending.delete(k)
    }
  }

  /** Where a chunk's bytes are (tests and diagnostics). */
  async locate (digest: Uint8Array): Promise<Location | undefined> {
    this.#check()
    return await this.#location(digest)
  }

  /** Bytes of a pack known to be on disk (fsynced): what a power cut leaves. */
  durableLength (pack: number): number { return this.#packs.durableLength(pack) }

  /** fsyncs of pack data and index batches of chunks so far (each batch covers every chunk stored meanwhile). */
  get commits (): { syncs: number, batches: number } { return { syncs: this.#packs.syncs, batches: this.#committer.groups } }

  async #location (digest: Uint8Array): Promise<Location | undefined> {
    const k = digestHex(digest)
    const cached = this.#locations.get(k)
    if (cached !== undefined) return cached
    const v = await this.#db.get(key(P.chunk, digest))
    if (v === undefined) return undefined
    const loc = decodeLocation(v)
    this.#remember(k, loc)
    return loc
  }

  #remember (k: string, loc: Location): void {
    this.#locations.set(k, loc)
    if (this.#locations.size > LOCATION_CACHE_ENTRIES) this.#locations.delete(this.#locations.keys().next().value!)
  }

  /** A chunk's bytes (decompressed when stored compressed). */
  async getChunk (digest: Uint8Array): Promise<Uint8Array | undefined> {
    const stored = await this.getStored(digest)
    if (stored === undefined || stored.encoding === 'raw') return stored?.data
    try {
      return decompressChunk(stored.data, stored.rawSize)
    } catch (err) {
      throw new StoreCorruptError(`stored frame of chunk ${digestHex(digest)} does not decompress`, { cause: err })
    }
  }

  /** A chunk as the pack holds it: raw, or its zstd frame (what the chunk protocol sends as is). */
  async getStored (digest: Uint8Array): Promise<StoredChunk | undefined> {
    this.#check()
    const loc = await this.#location(digest)
    if (loc === undefined) return undefined
    return { encoding: loc.encoding, data: await this.#packs.read(loc), rawSize: loc.rawSize }
  }

  async hasChunk (digest: Uint8Array): Promise<boolean> {
    this.#check()
    return (await this.#db.get(key(P.chunk, digest))) !== undefined
  }

  /**
   * Forget a chunk whose stored bytes failed their check: its index entry goes, so it is neither served nor
   * counted as held; its pack bytes become garbage for the next pack rewrite. Returns whether it was held.
   */
  async dropChunk (digest: Uint8Array): Promise<boolean> {
    this.#check()
    const loc = await this.#location(digest).catch(() => undefined)
    if ((await this.#db.get(key(P.chunk, digest))) === undefined) return false
    this.#locations.delete(digestHex(digest))
    if (loc != null) {
      this.#stats.chunks--
      this.#stats.bytes -= loc.rawSize
    }
    await this.#db.batch([{ type: 'del', key: key(P.chunk, digest) }, this.#statsOp()])
    return true
  }

  async chunkSize (digest: Uint8Array): Promise<number | undefined> {
    return (await this.#location(digest))?.rawSize
  }

  /** Bytes the chunk takes in its pack (its size on the wire when served compressed). */
  async storedSize (digest: Uint8Array): Promise<number | undefined> {
    this.#check()
    return (await this.#location(digest))?.length
  }

  /** Bitmap (MSB first) of which of the n*32-byte digests are held. */
  async hasChunks (digests: Uint8Array): Promise<Uint8Array> {
    this.#check()
    const n = digests.byteLength / 32
    const out = new Uint8Array(Math.ceil(n / 8))
    const BATCH = 4096
    for (let start = 0; start < n; start += BATCH) {
      const keys: Uint8Array[] = []
      for (let i = start; i < Math.min(n, start + BATCH); i++) keys.push(key(P.chunk, digests.subarray(i * 32, i * 32 + 32)))
      const values = await this.#db.getMany(keys)
      values.forEach((v, j) => { if (v !== undefined) { const i = start + j; out[i >> 3] |= 0x80 >> (i & 7) } })
    }
    return out
  }

  // ---- manifests and release records ---------------------------------------------------------------

  async putManifest (cid: CID, bytes: Uint8Array): Promise<void> {
    this.#check()
    const k = key(P.manifest, cid.toString())
    if ((await this.#db.get(k)) !== undefined) return
    this.#stats.manifests++
    await this.#db.batch([{ type: 'put', key: k, value: bytes }, this.#statsOp()])
  }

  async getManifest (cid: CID): Promise<Uint8Array | undefined> {
    this.#check()
    return await this.#db.get(key(P.manifest, cid.toString()))
  }

  async putRelease (rec: { dataset: string, version: string, seq: number, manifestCid: CID, publishedAt: number }, signedBytes: Uint8Array): Promise<void> {
    this.#check()
    const k = key(P.release, `${rec.dataset}@${rec.version}`)
    const prev = await this.#db.get(k)
    let prevEntry: (ReleaseEntry & { bytes: string }) | undefined
    if (prev !== undefined) {
      prevEntry = JSON.parse(dec.decode(prev))
      checkNotReplay(prevEntry, rec)
      if (prevEntry!.seq === rec.seq) return
    }
    const entry = { dataset: rec.dataset, version: rec.version, seq: rec.seq, manifestCid: rec.manifestCid.toString(), publishedAt: rec.publishedAt, bytes: Buffer.from(signedBytes).toString('base64') }
    if (prevEntry === undefined) this.#stats.releases++
    await this.#db.batch([{ type: 'put', key: k, value: enc.encode(JSON.stringify(entry)) }, this.#statsOp()])
  }

  async getRelease (dataset: string, version: string): Promise<Uint8Array | undefined> {
    this.#check()
    const v = await this.#db.get(key(P.release, `${dataset}@${version}`))
    if (v === undefined) return undefined
    return new Uint8Array(Buffer.from(JSON.parse(dec.decode(v)).bytes, 'base64'))
  }

  async listReleases (): Promise<ReleaseEntry[]> {
    this.#check()
    const out: ReleaseEntry[] = []
    for await (const v of this.#db.values({ gte: key(P.release, ''), lt: upperBound(P.release) })) {
      const { dataset, version, seq, manifestCid, publishedAt } = JSON.parse(dec.decode(v))
      out.push({ dataset, version, seq, manifestCid, publishedAt })
    }
    return out
  }

  // ---- pins ----------------------------------------------------------------------------------------

  /** Pin a release: every distinct chunk of it gains one reference. Idempotent. */
  async pin (dataset: string, version: string, chunks: Uint8Array): Promise<void> {
    this.#check()
    const pk = key(P.pin, `${dataset}@${version}`)
    if ((await this.#db.get(pk)) !== undefined) return
    const unique = uniqueDigests(chunks)
    const ops: Array<{ type: 'put', key: Uint8Array, value: Uint8Array }> = []
    const refKeys = unique.map(d => key(P.ref, d))
    const BATCH = 4096
    for (let s = 0; s < refKeys.length; s += BATCH) {
      const ks = refKeys.slice(s, s + BATCH)
      const vals = await this.#db.getMany(ks)
      vals.forEach((v, j) => ops.push({ type: 'put', key: ks[j], value: enc.encode(String((v === undefined ? 0 : Number(dec.decode(v))) + 1)) }))
    }
    const packed = new Uint8Array(unique.length * 32)
    unique.forEach((d, i) => packed.set(d, i * 32))
    ops.push({ type: 'put', key: pk, value: packed })
    this.#stats.pins++
    ops.push(this.#statsOp())
    await this.#db.batch(ops)
  }

  async unpin (dataset: string, version: string): Promise<boolean> {
    this.#check()
    const pk = key(P.pin, `${dataset}@${version}`)
    const packed = await this.#db.get(pk)
    if (packed === undefined) return false
    const ops: Array<{ type: 'put' | 'del', key: Uint8Array, value?: Uint8Array }> = []
    const n = packed.byteLength / 32
    const refKeys = Array.from({ length: n }, (_, i) => key(P.ref, packed.subarray(i * 32, i * 32 + 32)))
    const BATCH = 4096
    for (let s = 0; s < n; s += BATCH) {
      const ks = refKeys.slice(s, s + BATCH)
      const vals = await this.#db.getMany(ks)
      vals.forEach((v, j) => {
        const count = (v === undefined ? 0 : Number(dec.decode(v))) - 1
        ops.push(count > 0 ? { type: 'put', key: ks[j], value: enc.encode(String(count)) } : { type: 'del', key: ks[j] })
      })
    }
    ops.push({ type: 'del', key: pk })
    this.#stats.pins--
    ops.push(this.#statsOp())
    await this.#db.batch(ops as any)
    return true
  }

  async isPinned (dataset: string, version: string): Promise<boolean> {
    this.#check()
    return (await this.#db.get(key(P.pin, `${dataset}@${version}`))) !== undefined
  }

  async listPins (): Promise<Array<{ dataset: string, version: string }>> {
    this.#check()
    const out: Array<{ dataset: string, version: string }> = []
    for await (const k of this.#db.keys({ gte: key(P.pin, ''), lt: upperBound(P.pin) })) {
      const name = dec.decode(k.subarray(P.pin.length))
      const at = name.indexOf('@')
      out.push({ dataset: name.slice(0, at), version: name.slice(at + 1) })
    }
    return out
  }

  async refcount (digest: Uint8Array): Promise<number> {
    const v = await this.#db.get(key(P.ref, digest))
    return v === undefined ? 0 : Number(dec.decode(v))
  }

  // ---- fetch lease and GC --------------------------------------------------------------------------

  /** Run a fetch or publish: GC cannot run meanwhile, so chunks stored but not yet pinned are safe. */
  async withFetch<T> (fn: () => Promise<T>): Promise<T> {
    this.#check()
    return await this.#lock.read(fn)
  }

  /** Delete every chunk no pin references; rewrite packs that are mostly dead. */
  async gc (): Promise<{ chunksFreed: number, bytesFreed: number, seconds: number }> {
    this.#check()
    return await this.#lock.write(async () => {
      // entries move (pack rewrites) or go: the cache starts over
      this.#locations.clear()
      const started = performance.now()
      let chunksFreed = 0
      let bytesFreed = 0
      const live = new Map<number, number>()
      const dead: Uint8Array[] = []
      for await (const [k, v] of this.#db.iterator({ gte: key(P.chunk, ''), lt: upperBound(P.chunk) })) {
        const digest = k.subarray(P.chunk.length)
        const loc = decodeLocation(v)
        if ((await this.#db.get(key(P.ref, digest))) === undefined) {
          dead.push(k)
          chunksFreed++
          bytesFreed += loc.rawSize
        } else {
          live.set(loc.pack, (live.get(loc.pack) ?? 0) + loc.length)
        }
      }
      this.#stats.chunks -= chunksFreed
      this.#stats.bytes -= bytesFreed
      for (let s = 0; s < dead.length; s += 4096) {
        const batch = dead.slice(s, s + 4096)
        await this.#db.batch([
          ...batch.map(k => ({ type: 'del' as const, key: k })),
          ...batch.map(k => ({ type: 'del' as const, key: key(P.features, k.subarray(P.chunk.length)) })),
          this.#statsOp()
        ])
      }
      // reclaim disk: drop empty packs, rewrite mostly-dead ones into a fresh pack
      await this.#packs.rotate()
      for (const [id, size] of [...this.#packs.sizes]) {
        if (id === this.#packs.activeId) continue
        const liveBytes = live.get(id) ?? 0
        if (liveBytes === 0) {
          await this.#db.del(key(P.packEnd, String(id)), { sync: true })
          await this.#packs.remove(id)
        } else if (size > 0 && 1 - liveBytes / size > GC_REWRITE_THRESHOLD) {
          await this.#rewritePack(id)
        }
      }
      // and again: chunks served meanwhile may have cached entries of packs that are gone now
      this.#locations.clear()
      return { chunksFreed, bytesFreed, seconds: (performance.now() - started) / 1000 }
    })
  }

  async #rewritePack (id: number): Promise<void> {
    // the moved bytes are made durable before any index entry points at them, and the old pack is removed
    // only once the new entries are synced to disk
    const moves: BatchOp[] = []
    const ends = new Map<number, number>()
    const it = this.#db.iterator({ gte: key(P.chunk, ''), lt: upperBound(P.chunk) })
    try {
      for await (const [k, v] of it) {
        const loc = decodeLocation(v)
        if (loc.pack !== id) continue
        const bytes = await this.#packs.read(loc)
        const moved = await this.#packs.append(bytes)
        moves.push({ type: 'put', key: k, value: encodeLocation({ ...loc, ...moved }) })
        ends.set(moved.pack, Math.max(ends.get(moved.pack) ?? 0, moved.offset + moved.length))
      }
    } finally {
      await it.close()
    }
    await this.#packs.sync()
    for (let s = 0; s < moves.length; s += 4096) await this.#db.batch(moves.slice(s, s + 4096))
    const tail: BatchOp[] = [...ends].map(([pack, end]) => ({ type: 'put', key: key(P.packEnd, String(pack)), value: enc.encode(String(end)) }))
    tail.push({ type: 'del', key: key(P.packEnd, String(id)) })
    await this.#db.batch(tail, { sync: true })
    await this.#packs.remove(id)
  }

  // ---- resemblance features (delta encoding) -------------------------------------------------------

  /** Super-features of a stored chunk, computed once by the delta encoder and kept until GC drops the chunk. */
  async getFeatures (digest: Uint8Array): Promise<Uint32Array | undefined> {
    this.#check()
    const v = await this.#db.get(key(P.features, digest))
    if (v === undefined || v.byteLength % 4 !== 0) return undefined
    return new Uint32Array(v.slice().buffer)
  }

  async putFeatures (digest: Uint8Array, features: Uint32Array): Promise<void> {
    this.#check()
    await this.#db.put(key(P.features, digest), new Uint8Array(features.buffer.slice(features.byteOffset, features.byteOffset + features.byteLength)))
  }

  // ---- current pointer, progress, small state ------------------------------------------------------

  async setCurrent (dataset: string, version: string): Promise<void> {
    this.#check()
    await this.#db.put(key(P.current, dataset), enc.encode(version))
  }

  async getCurrent (dataset: string): Promise<string | undefined> {
    this.#check()
    const v = await this.#db.get(key(P.current, dataset))
    return v === undefined ? undefined : dec.decode(v)
  }

  async putProgress (k: string, value: Uint8Array | string): Promise<void> {
    this.#check()
    await this.#db.put(key(P.progress, k), typeof value === 'string' ? enc.encode(value) : value)
  }

  async getProgress (k: string): Promise<Uint8Array | undefined> {
    this.#check()
    return await this.#db.get(key(P.progress, k))
  }

  async deleteProgress (k: string): Promise<void> {
    this.#check()
    await this.#db.del(key(P.progress, k))
  }

  async stats (): Promise<StoreStats> {
    return { ...this.#stats, diskBytes: this.#packs.totalBytes }
  }
}

function uniqueDigests (chunks: Uint8Array): Uint8Array[] {
  const seen = new Set<string>()
  const out: Uint8Array[] = []
  for (let i = 0; i < chunks.byteLength / 32; i++) {
    const d = chunks.subarray(i * 32, i * 32 + 32)
    const h = digestHex(d)
    if (seen.has(h)) continue
    seen.add(h)
    out.push(d)
  }
  return out
}
