// The store's contract: what the daemon asks of it. Two implementations keep it: `Store` (store.ts: LevelDB
// index, pack files, durable) and `MemoryStore` (memory.ts: for tests); test/store/compliance.ts runs the
// same suite against both.
//
// Every write of content is verify-then-commit: bytes that do not hash to their digest are refused with
// HASH_MISMATCH and nothing is stored. Delta objects are stored and served like chunks (content-addressed
// by the sha256 of their bytes). Errors are the typed errors of store/errors.ts and protocol/errors.ts.
import type { CID } from 'multiformats/cid'

export type StoredEncoding = 'raw' | 'zstd'

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

export interface ReleaseRecordFields {
  dataset: string
  version: string
  seq: number
  manifestCid: CID
  publishedAt: number
}

export interface GcResult {
  chunksFreed: number
  bytesFreed: number
  seconds: number
}

/**
 * What the store knows of one tracked manifest's have-bitmap (see `trackHave`): `entries` bits, of which
 * the first `required` must be held for the release to be complete (its chunks; the delta objects after
 * them are optional).
 */
export interface HaveState {
  manifestCid: string
  entries: number
  required: number
  /** entries held */
  held: number
  /** of the first `required` entries, how many are held */
  heldRequired: number
  /** every required entry held */
  complete: boolean
  /** entries whose presence is known: below `entries` only while `trackHave` has not finished (resume it) */
  tracked: number
}

export interface PutOptions { verified?: boolean }

export interface HeraldStore {
  /** the directory the store writes into (free-space checks look at its filesystem) */
  readonly dir: string
  close: () => Promise<void>

  // ---- chunks and delta objects -----------------------------------------------------------------------
  /**
   * Verify and store; true if it was new. With `zstdFrame`, that frame is what is kept and served.
   * `verified`: the caller has just checked `bytes` against `digest` (the receive pipeline does, once), so
   * the store does not hash them again.
   */
  putChunk: (digest: Uint8Array, bytes: Uint8Array, zstdFrame?: Uint8Array, opts?: PutOptions) => Promise<boolean>
  /** The bytes (decompressed if stored compressed); STORE_CORRUPT when a stored frame does not decompress. */
  getChunk: (digest: Uint8Array) => Promise<Uint8Array | undefined>
  /** As kept: raw, or the zstd frame (what the chunk protocol sends as is). */
  getStored: (digest: Uint8Array) => Promise<StoredChunk | undefined>
  hasChunk: (digest: Uint8Array) => Promise<boolean>
  /** Bitmap (MSB first) of which of the n packed 32-byte digests are held. */
  hasChunks: (digests: Uint8Array) => Promise<Uint8Array>
  /** Forget a chunk found corrupt: no longer served nor counted as held. True if it was held. */
  dropChunk: (digest: Uint8Array) => Promise<boolean>
  chunkSize: (digest: Uint8Array) => Promise<number | undefined>
  /** Bytes as kept (the wire size when served compressed). */
  storedSize: (digest: Uint8Array) => Promise<number | undefined>
  /** Resemblance super-features of a stored chunk (delta encoding), kept until the chunk is collected. */
  getFeatures: (digest: Uint8Array) => Promise<Uint32Array | undefined>
  putFeatures: (digest: Uint8Array, features: Uint32Array) => Promise<void>

  // ---- manifests and release records -------------------------------------------------------------------
  putManifest: (cid: CID, bytes: Uint8Array) => Promise<void>
  getManifest: (cid: CID) => Promise<Uint8Array | undefined>
  /** Keep a signed release record; RELEASE_REPLAY for an older sequence than the one held. */
  putRelease: (rec: ReleaseRecordFields, signedBytes: Uint8Array) => Promise<void>
  getRelease: (dataset: string, version: string) => Promise<Uint8Array | undefined>
  listReleases: () => Promise<ReleaseEntry[]>

  // ---- pins: refcounts over distinct chunks ------------------------------------------------------------
  /** Every distinct chunk of the packed digests gains one reference. Idempotent per release. */
  pin: (dataset: string, version: string, chunks: Uint8Array) => Promise<void>
  unpin: (dataset: string, version: string) => Promise<boolean>
  isPinned: (dataset: string, version: string) => Promise<boolean>
  listPins: () => Promise<Array<{ dataset: string, version: string }>>
  refcount: (digest: Uint8Array) => Promise<number>

  // ---- GC lease and GC -------------------------------------------------------------------------------
  /** Run `fn` holding a GC lease: gc waits until it ends, so chunks stored but not yet pinned are safe. */
  withGcLease: <T>(fn: () => Promise<T>) => Promise<T>
  /** Delete every chunk no pin references (waits for the leases held, holds new ones back). */
  gc: () => Promise<GcResult>

  // ---- current pointers, fetch/publish progress ----------------------------------------------------------
  setCurrent: (dataset: string, version: string) => Promise<void>
  getCurrent: (dataset: string) => Promise<string | undefined>
  putProgress: (key: string, value: Uint8Array | string) => Promise<void>
  getProgress: (key: string) => Promise<Uint8Array | undefined>
  deleteProgress: (key: string) => Promise<void>

  stats: () => Promise<StoreStats>

  // ---- persisted have-bitmaps -------------------------------------------------------------------------
  /**
   * Track a manifest's have-bitmap over its `entries` (packed 32-byte digests: the chunks, then the delta
   * objects; the first `required` must be held for completeness). Reads the index once per entry, then keeps
   * the bitmap current as entries are stored, dropped or collected, in the same atomic write as the index
   * change: the bitmap never claims an entry the index lacks. Idempotent; resumes an interrupted tracking.
   */
  trackHave: (manifestCid: CID, entries: Uint8Array, required: number) => Promise<HaveState>
  /** Stop tracking (the same entries as given to trackHave). False if it was not tracked. */
  untrackHave: (manifestCid: CID, entries: Uint8Array) => Promise<boolean>
  /** The tracked manifests' states: reads one record per manifest, nothing per entry. */
  listHave: () => Promise<HaveState[]>
  /** A tracked manifest's state and bitmap (a copy): reads the bitmap, not the entries. */
  getHave: (manifestCid: CID) => Promise<{ state: HaveState, bitmap: Uint8Array } | undefined>
  /** Keys (or entries) read so far: for tests that bound the work of an operation by counting. */
  readonly reads: number
}
