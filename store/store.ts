// The store: LevelDB is the system of record (chunk index, manifests, release records, pins with
// refcounts, `current` pointers, fetch progress, have-bitmaps, schema version); chunk bytes live in
// append-only pack files indexed from LevelDB (see docs/STORAGE.md for the measurement behind that choice).
// Writes are verify-then-commit: bytes that do not hash to their digest are never stored. This file holds
// the chunks; pins.ts, records.ts, gc.ts, have.ts and commit.ts hold the rest, interface.ts the contract.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { bitSet } from '../protocol/bitmap.js'
import { digestHex, verifyDigest } from '../protocol/cid.js'
import { HashMismatchError } from '../protocol/errors.js'
import { decompressChunk } from '../protocol/encoding/compression.js'
import { ChunkCommitter } from './commit.js'
import { statsOp, type StoreContext } from './context.js'
import { IndexDb } from './db.js'
import { SchemaVersionError, StoreClosedError, StoreCorruptError } from './errors.js'
import { collect } from './gc.js'
import { HaveBitmaps } from './have.js'
import { dec, enc, key, P, upperBound, type Counters } from './keys.js'
import { decodeLocation, PackSet, type Location } from './packs.js'
import * as pins from './pins.js'
import * as records from './records.js'
import { recoverShortPacks, type RecoveryReport } from './recovery.js'
import { RwLock } from './rwlock.js'
import type { GcResult, HaveState, HeraldStore, PutOptions, ReleaseEntry, ReleaseRecordFields, StoredChunk, StoreStats } from './interface.js'
import type { CID } from 'multiformats/cid'

export type { GcResult, HaveState, HeraldStore, ReleaseEntry, StoredChunk, StoreStats } from './interface.js'
export type { RecoveryReport }

/** 2: index entries may name a zstd-stored chunk (schema-1 stores are upgraded in place: their entries stay valid) */
export const SCHEMA_VERSION = 2
/** packs roll over at 1 GiB: big enough to keep file counts low, small enough for GC to rewrite */
export const DEFAULT_PACK_MAX_BYTES = 1024 * 1024 * 1024
/** index entries kept in memory: the chunks just stored are the ones peers ask for (~40 B + key each) */
const LOCATION_CACHE_ENTRIES = 65_536
/** index keys per getMany in hasChunks */
const HAS_BATCH = 4096

export interface StoreOptions {
  packMaxBytes?: number
}

export class Store implements HeraldStore {
  readonly dir: string
  readonly #ctx: StoreContext
  readonly #packs: PackSet
  readonly #lock = new RwLock()
  readonly #pending = new Map<string, Promise<boolean>>()
  /** digest hex → index entry, for recently stored or read chunks; insertion-ordered, oldest dropped first */
  readonly #locations = new Map<string, Location>()
  readonly #committer: ChunkCommitter
  #closed = false
  /** what the open found and repaired: packs shorter than the index said, index entries dropped */
  readonly recovery: RecoveryReport

  private constructor (dir: string, ctx: StoreContext, packs: PackSet, recovery: RecoveryReport) {
    this.dir = dir
    this.#ctx = ctx
    this.#packs = packs
    this.recovery = recovery
    this.#committer = new ChunkCommitter(ctx, packs)
  }

  static async open (dir: string, opts: StoreOptions = {}): Promise<Store> {
    await mkdir(dir, { recursive: true })
    const db = await IndexDb.open(join(dir, 'index'), dir)
    try {
      const schemaKey = key(P.meta, 'schema')
      const schema = await db.get(schemaKey)
      if (schema === undefined || Number(dec.decode(schema)) === 1) {
        await db.put(schemaKey, enc.encode(String(SCHEMA_VERSION)))
      } else if (Number(dec.decode(schema)) !== SCHEMA_VERSION) {
        throw new SchemaVersionError(`store schema ${dec.decode(schema)} in ${dir} is not the supported ${SCHEMA_VERSION}: use a heraldd that supports it, or restore a backup`)
      }
      const committed = new Map<number, number>()
      for await (const [k, v] of db.entries({ gte: key(P.packEnd, ''), lt: upperBound(P.packEnd) })) {
        committed.set(Number(dec.decode(k.subarray(P.packEnd.length))), Number(dec.decode(v)))
      }
      const packs = await PackSet.open(join(dir, 'packs'), committed, opts.packMaxBytes ?? DEFAULT_PACK_MAX_BYTES)
      const raw = await db.get(key(P.meta, 'stats'))
      const stats: Counters = raw !== undefined ? JSON.parse(dec.decode(raw)) : { chunks: 0, bytes: 0, manifests: 0, releases: 0, pins: 0 }
      const ctx: StoreContext = { db, stats, have: await HaveBitmaps.load(db) }
      const recovery = await recoverShortPacks(ctx, packs, committed)
      return new Store(dir, ctx, packs, recovery)
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
    await this.#ctx.db.close()
  }

  /** Index keys read since open (open included): tests bound an operation's work with it. */
  get reads (): number { return this.#ctx.db.reads }

  // ---- chunks --------------------------------------------------------------------------------------

  /**
   * Verify and store a chunk; true if it was new. With `zstdFrame` (the chunk's zstd frame, as compressed
   * transfer sends it) the frame is what the pack keeps: served as it is, decompressed on read.
   */
  async putChunk (digest: Uint8Array, bytes: Uint8Array, zstdFrame?: Uint8Array, opts: PutOptions = {}): Promise<boolean> {
    this.#check()
    if (opts.verified !== true && !verifyDigest(digest, bytes)) throw new HashMismatchError(`chunk bytes do not hash to ${digestHex(digest)}`)
    const k = digestHex(digest)
    const inFlight = this.#pending.get(k)
    if (inFlight != null) { await inFlight; return false }
    const run = (async () => {
      if (this.#locations.has(k) || (await this.#ctx.db.get(key(P.chunk, digest))) !== undefined) return false
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
    const v = await this.#ctx.db.get(key(P.chunk, digest))
    if (v === undefined) return undefined
    const loc = decodeLocation(v)
    this.#remember(k, loc)
    return loc
  }

  #remember (k: string, loc: Location): void {
    this.#locations.set(k, loc)
    if (this.#locations.size > LOCATION_CACHE_ENTRIES) this.#locations.delete(this.#locations.keys().next().value!)
  }

  async getChunk (digest: Uint8Array): Promise<Uint8Array | undefined> {
    const stored = await this.getStored(digest)
    if (stored === undefined || stored.encoding === 'raw') return stored?.data
    try {
      return decompressChunk(stored.data, stored.rawSize)
    } catch (err) {
      throw new StoreCorruptError(`stored frame of chunk ${digestHex(digest)} does not decompress`, { cause: err })
    }
  }

  async getStored (digest: Uint8Array): Promise<StoredChunk | undefined> {
    this.#check()
    const loc = await this.#location(digest)
    if (loc === undefined) return undefined
    return { encoding: loc.encoding, data: await this.#packs.read(loc), rawSize: loc.rawSize }
  }

  async hasChunk (digest: Uint8Array): Promise<boolean> {
    this.#check()
    return (await this.#ctx.db.get(key(P.chunk, digest))) !== undefined
  }

  /**
   * Forget a chunk whose stored bytes failed their check: its index entry goes (and its have-bitmap bits, in
   * the same batch), so it is neither served nor counted as held; its pack bytes become garbage for the next
   * pack rewrite. Returns whether it was held.
   */
  async dropChunk (digest: Uint8Array): Promise<boolean> {
    this.#check()
    const loc = await this.#location(digest).catch(() => undefined)
    if ((await this.#ctx.db.get(key(P.chunk, digest))) === undefined) return false
    this.#locations.delete(digestHex(digest))
    if (loc != null) {
      this.#ctx.stats.chunks--
      this.#ctx.stats.bytes -= loc.rawSize
    }
    await this.#ctx.have.update([digest], false, async haveOps => {
      await this.#ctx.db.batch([{ type: 'del', key: key(P.chunk, digest) }, ...haveOps, statsOp(this.#ctx)])
    })
    return true
  }

  async chunkSize (digest: Uint8Array): Promise<number | undefined> {
    return (await this.#location(digest))?.rawSize
  }

  async storedSize (digest: Uint8Array): Promise<number | undefined> {
    this.#check()
    return (await this.#location(digest))?.length
  }

  async hasChunks (digests: Uint8Array): Promise<Uint8Array> {
    this.#check()
    const n = digests.byteLength / 32
    const out = new Uint8Array(Math.ceil(n / 8))
    for (let start = 0; start < n; start += HAS_BATCH) {
      const keys: Uint8Array[] = []
      for (let i = start; i < Math.min(n, start + HAS_BATCH); i++) keys.push(key(P.chunk, digests.subarray(i * 32, i * 32 + 32)))
      const values = await this.#ctx.db.getMany(keys)
      values.forEach((v, j) => { if (v !== undefined) bitSet(out, start + j) })
    }
    return out
  }

  async getFeatures (digest: Uint8Array): Promise<Uint32Array | undefined> { this.#check(); return await records.getFeatures(this.#ctx, digest) }
  async putFeatures (digest: Uint8Array, features: Uint32Array): Promise<void> { this.#check(); await records.putFeatures(this.#ctx, digest, features) }

  // ---- manifests, release records, current pointers, progress (records.ts) -------------------------

  async putManifest (cid: CID, bytes: Uint8Array): Promise<void> { this.#check(); await records.putManifest(this.#ctx, cid, bytes) }
  async getManifest (cid: CID): Promise<Uint8Array | undefined> { this.#check(); return await records.getManifest(this.#ctx, cid) }
  async putRelease (rec: ReleaseRecordFields, signedBytes: Uint8Array): Promise<void> { this.#check(); await records.putRelease(this.#ctx, rec, signedBytes) }
  async getRelease (dataset: string, version: string): Promise<Uint8Array | undefined> { this.#check(); return await records.getRelease(this.#ctx, dataset, version) }
  async listReleases (): Promise<ReleaseEntry[]> { this.#check(); return await records.listReleases(this.#ctx) }
  async setCurrent (dataset: string, version: string): Promise<void> { this.#check(); await records.setCurrent(this.#ctx, dataset, version) }
  async getCurrent (dataset: string): Promise<string | undefined> { this.#check(); return await records.getCurrent(this.#ctx, dataset) }
  async putProgress (k: string, value: Uint8Array | string): Promise<void> { this.#check(); await records.putProgress(this.#ctx, k, value) }
  async getProgress (k: string): Promise<Uint8Array | undefined> { this.#check(); return await records.getProgress(this.#ctx, k) }
  async deleteProgress (k: string): Promise<void> { this.#check(); await records.deleteProgress(this.#ctx, k) }

  // ---- pins (pins.ts) ------------------------------------------------------------------------------

  async pin (dataset: string, version: string, chunks: Uint8Array): Promise<void> { this.#check(); await pins.pin(this.#ctx, dataset, version, chunks) }
  async unpin (dataset: string, version: string): Promise<boolean> { this.#check(); return await pins.unpin(this.#ctx, dataset, version) }
  async isPinned (dataset: string, version: string): Promise<boolean> { this.#check(); return await pins.isPinned(this.#ctx, dataset, version) }
  async listPins (): Promise<Array<{ dataset: string, version: string }>> { this.#check(); return await pins.listPins(this.#ctx) }
  async refcount (digest: Uint8Array): Promise<number> { return await pins.refcount(this.#ctx, digest) }

  // ---- GC lease and GC (gc.ts) ---------------------------------------------------------------------

  /** Run a fetch or publish holding a GC lease: gc cannot run meanwhile, so chunks stored but not yet pinned are safe. */
  async withGcLease<T> (fn: () => Promise<T>): Promise<T> {
    this.#check()
    return await this.#lock.read(fn)
  }


  /** Delete every chunk no pin references; rewrite packs that are mostly dead. */
  async gc (): Promise<GcResult> {
    this.#check()
    return await this.#lock.write(async () => {
      // entries move (pack rewrites) or go: the cache starts over, before and after (chunks served
      // meanwhile may have cached entries of packs that are gone now)
      this.#locations.clear()
      try {
        return await collect(this.#ctx, this.#packs)
      } finally {
        this.#locations.clear()
      }
    })
  }

  // ---- have-bitmaps (have.ts) ----------------------------------------------------------------------

  async trackHave (manifestCid: CID, entries: Uint8Array, required: number): Promise<HaveState> { this.#check(); return await this.#ctx.have.track(manifestCid.toString(), entries, required) }
  async untrackHave (manifestCid: CID, entries: Uint8Array): Promise<boolean> { this.#check(); return await this.#ctx.have.untrack(manifestCid.toString(), entries) }
  async listHave (): Promise<HaveState[]> { this.#check(); return this.#ctx.have.list() }
  async getHave (manifestCid: CID): Promise<{ state: HaveState, bitmap: Uint8Array } | undefined> { this.#check(); return await this.#ctx.have.get(manifestCid.toString()) }

  async stats (): Promise<StoreStats> {
    return { ...this.#ctx.stats, diskBytes: this.#packs.totalBytes }
  }
}
