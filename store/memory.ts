// The store's contract kept in memory: for tests of the parts above the store, and the second
// implementation the compliance suite (test/store/compliance.ts) runs against. Same checks and errors as
// the LevelDB store (verify-then-commit, replayed records refused, GC leases), nothing durable.
import { tmpdir } from 'node:os'
import { bitClear, bitGet, bitmapBytes, bitSet } from '../protocol/bitmap.js'
import { digestHex, verifyDigest } from '../protocol/cid.js'
import { decompressChunk } from '../protocol/encoding/compression.js'
import { HashMismatchError } from '../protocol/errors.js'
import { checkNotReplay } from '../protocol/release.js'
import { StoreClosedError, StoreCorruptError } from './errors.js'
import { uniqueDigests } from './pins.js'
import { RwLock } from './rwlock.js'
import type { GcResult, HaveState, HeraldStore, PutOptions, ReleaseEntry, ReleaseRecordFields, StoredChunk, StoreStats } from './interface.js'
import type { CID } from 'multiformats/cid'

interface Have {
  state: Omit<HaveState, 'complete'>
  bitmap: Uint8Array
}

function copy (b: Uint8Array): Uint8Array { return b.slice() }

export class MemoryStore implements HeraldStore {
  readonly dir: string
  reads = 0
  readonly #chunks = new Map<string, StoredChunk>()
  readonly #features = new Map<string, Uint32Array>()
  readonly #manifests = new Map<string, Uint8Array>()
  readonly #releases = new Map<string, ReleaseEntry & { bytes: Uint8Array }>()
  readonly #pins = new Map<string, Uint8Array[]>()
  readonly #refs = new Map<string, number>()
  readonly #current = new Map<string, string>()
  readonly #progress = new Map<string, Uint8Array>()
  readonly #haves = new Map<string, Have>()
  /** digest hex → where it sits in tracked manifests */
  readonly #positions = new Map<string, Array<{ cid: string, pos: number }>>()
  readonly #lock = new RwLock()
  #closed = false

  /** `dir`: where free-space checks should look (nothing is written there) */
  constructor (opts: { dir?: string } = {}) {
    this.dir = opts.dir ?? tmpdir()
  }

  #check (): void { if (this.#closed) throw new StoreClosedError() }

  async close (): Promise<void> { this.#closed = true }

  // ---- chunks ----------------------------------------------------------------------------------------

  async putChunk (digest: Uint8Array, bytes: Uint8Array, zstdFrame?: Uint8Array, opts: PutOptions = {}): Promise<boolean> {
    this.#check()
    if (opts.verified !== true && !verifyDigest(digest, bytes)) throw new HashMismatchError(`chunk bytes do not hash to ${digestHex(digest)}`)
    const k = digestHex(digest)
    this.reads++
    if (this.#chunks.has(k)) return false
    this.#chunks.set(k, zstdFrame != null ? { encoding: 'zstd', data: copy(zstdFrame), rawSize: bytes.byteLength } : { encoding: 'raw', data: copy(bytes), rawSize: bytes.byteLength })
    this.#mark(k, true)
    return true
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
    this.reads++
    const c = this.#chunks.get(digestHex(digest))
    return c === undefined ? undefined : { ...c, data: copy(c.data) }
  }

  async hasChunk (digest: Uint8Array): Promise<boolean> {
    this.#check()
    this.reads++
    return this.#chunks.has(digestHex(digest))
  }

  async hasChunks (digests: Uint8Array): Promise<Uint8Array> {
    this.#check()
    const n = digests.byteLength / 32
    const out = new Uint8Array(bitmapBytes(n))
    for (let i = 0; i < n; i++) if (this.#chunks.has(digestHex(digests.subarray(i * 32, i * 32 + 32)))) bitSet(out, i)
    this.reads += n
    return out
  }

  async dropChunk (digest: Uint8Array): Promise<boolean> {
    this.#check()
    const k = digestHex(digest)
    if (!this.#chunks.delete(k)) return false
    this.#mark(k, false)
    return true
  }

  async chunkSize (digest: Uint8Array): Promise<number | undefined> {
    return this.#chunks.get(digestHex(digest))?.rawSize
  }

  async storedSize (digest: Uint8Array): Promise<number | undefined> {
    this.#check()
    return this.#chunks.get(digestHex(digest))?.data.byteLength
  }

  async getFeatures (digest: Uint8Array): Promise<Uint32Array | undefined> {
    this.#check()
    return this.#features.get(digestHex(digest))?.slice()
  }

  async putFeatures (digest: Uint8Array, features: Uint32Array): Promise<void> {
    this.#check()
    this.#features.set(digestHex(digest), features.slice())
  }

  // ---- manifests and release records -----------------------------------------------------------------

  async putManifest (cid: CID, bytes: Uint8Array): Promise<void> {
    this.#check()
    if (!this.#manifests.has(cid.toString())) this.#manifests.set(cid.toString(), copy(bytes))
  }

  async getManifest (cid: CID): Promise<Uint8Array | undefined> {
    this.#check()
    this.reads++
    const m = this.#manifests.get(cid.toString())
    return m === undefined ? undefined : copy(m)
  }

  async putRelease (rec: ReleaseRecordFields, signedBytes: Uint8Array): Promise<void> {
    this.#check()
    const name = `${rec.dataset}@${rec.version}`
    const prev = this.#releases.get(name)
    if (prev !== undefined) {
      checkNotReplay(prev, rec)
      if (prev.seq === rec.seq) return
    }
    this.#releases.set(name, { dataset: rec.dataset, version: rec.version, seq: rec.seq, manifestCid: rec.manifestCid.toString(), publishedAt: rec.publishedAt, bytes: copy(signedBytes) })
  }

  async getRelease (dataset: string, version: string): Promise<Uint8Array | undefined> {
    this.#check()
    this.reads++
    const r = this.#releases.get(`${dataset}@${version}`)
    return r === undefined ? undefined : copy(r.bytes)
  }

  async listReleases (): Promise<ReleaseEntry[]> {
    this.#check()
    this.reads += this.#releases.size
    // in key order, as LevelDB lists them
    return [...this.#releases.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([, { dataset, version, seq, manifestCid, publishedAt }]) => ({ dataset, version, seq, manifestCid, publishedAt }))
  }

  // ---- pins ------------------------------------------------------------------------------------------

  async pin (dataset: string, version: string, chunks: Uint8Array): Promise<void> {
    this.#check()
    const name = `${dataset}@${version}`
    if (this.#pins.has(name)) return
    const unique = uniqueDigests(chunks).map(copy)
    for (const d of unique) { const k = digestHex(d); this.#refs.set(k, (this.#refs.get(k) ?? 0) + 1) }
    this.#pins.set(name, unique)
  }

  async unpin (dataset: string, version: string): Promise<boolean> {
    this.#check()
    const name = `${dataset}@${version}`
    const unique = this.#pins.get(name)
    if (unique === undefined) return false
    for (const d of unique) {
      const k = digestHex(d)
      const n = (this.#refs.get(k) ?? 0) - 1
      if (n > 0) this.#refs.set(k, n); else this.#refs.delete(k)
    }
    this.#pins.delete(name)
    return true
  }

  async isPinned (dataset: string, version: string): Promise<boolean> {
    this.#check()
    return this.#pins.has(`${dataset}@${version}`)
  }

  async listPins (): Promise<Array<{ dataset: string, version: string }>> {
    this.#check()
    return [...this.#pins.keys()].sort().map(name => {
      const at = name.indexOf('@')
      return { dataset: name.slice(0, at), version: name.slice(at + 1) }
    })
  }

  async refcount (digest: Uint8Array): Promise<number> {
    return this.#refs.get(digestHex(digest)) ?? 0
  }

  // ---- GC lease and GC -------------------------------------------------------------------------------

  async withGcLease<T> (fn: () => Promise<T>): Promise<T> {
    this.#check()
    return await this.#lock.read(fn)
  }

  async gc (): Promise<GcResult> {
    this.#check()
    return await this.#lock.write(async () => {
      const started = performance.now()
      let chunksFreed = 0
      let bytesFreed = 0
      for (const [k, c] of [...this.#chunks]) {
        if (this.#refs.has(k)) continue
        this.#chunks.delete(k)
        this.#features.delete(k)
        this.#mark(k, false)
        chunksFreed++
        bytesFreed += c.rawSize
      }
      return { chunksFreed, bytesFreed, seconds: (performance.now() - started) / 1000 }
    })
  }

  // ---- current pointers, progress --------------------------------------------------------------------

  async setCurrent (dataset: string, version: string): Promise<void> { this.#check(); this.#current.set(dataset, version) }
  async getCurrent (dataset: string): Promise<string | undefined> { this.#check(); this.reads++; return this.#current.get(dataset) }
  async putProgress (k: string, value: Uint8Array | string): Promise<void> {
    this.#check()
    this.#progress.set(k, typeof value === 'string' ? new TextEncoder().encode(value) : copy(value))
  }

  async getProgress (k: string): Promise<Uint8Array | undefined> {
    this.#check()
    this.reads++
    const v = this.#progress.get(k)
    return v === undefined ? undefined : copy(v)
  }

  async deleteProgress (k: string): Promise<void> { this.#check(); this.#progress.delete(k) }

  async stats (): Promise<StoreStats> {
    let bytes = 0
    let diskBytes = 0
    for (const c of this.#chunks.values()) { bytes += c.rawSize; diskBytes += c.data.byteLength }
    return { chunks: this.#chunks.size, bytes, diskBytes, manifests: this.#manifests.size, releases: this.#releases.size, pins: this.#pins.size }
  }

  // ---- have-bitmaps ----------------------------------------------------------------------------------

  #mark (k: string, held: boolean): void {
    for (const { cid, pos } of this.#positions.get(k) ?? []) {
      const h = this.#haves.get(cid)
      if (h === undefined || bitGet(h.bitmap, pos) === held) continue
      if (held) bitSet(h.bitmap, pos); else bitClear(h.bitmap, pos)
      const d = held ? 1 : -1
      h.state.held += d
      if (pos < h.state.required) h.state.heldRequired += d
    }
  }

  async trackHave (manifestCid: CID, entries: Uint8Array, required: number): Promise<HaveState> {
    this.#check()
    if (entries.byteLength % 32 !== 0) throw new RangeError('entries must be packed 32-byte digests')
    const n = entries.byteLength / 32
    if (!Number.isInteger(required) || required < 0 || required > n) throw new RangeError(`required ${required} is not within 0..${n}`)
    const cid = manifestCid.toString()
    const known = this.#haves.get(cid)
    if (known !== undefined) {
      if (known.state.entries !== n || known.state.required !== required) throw new RangeError(`${cid} is tracked with ${known.state.entries} entries (${known.state.required} required), not ${n} (${required})`)
      return this.#state(known)
    }
    const h: Have = { state: { manifestCid: cid, entries: n, required, held: 0, heldRequired: 0, tracked: n }, bitmap: new Uint8Array(bitmapBytes(n)) }
    for (let pos = 0; pos < n; pos++) {
      const k = digestHex(entries.subarray(pos * 32, pos * 32 + 32))
      const list = this.#positions.get(k) ?? []
      list.push({ cid, pos })
      this.#positions.set(k, list)
      this.reads++
      if (this.#chunks.has(k)) {
        bitSet(h.bitmap, pos)
        h.state.held++
        if (pos < required) h.state.heldRequired++
      }
    }
    this.#haves.set(cid, h)
    return this.#state(h)
  }

  async untrackHave (manifestCid: CID, entries: Uint8Array): Promise<boolean> {
    this.#check()
    const cid = manifestCid.toString()
    if (!this.#haves.delete(cid)) return false
    for (let pos = 0; pos < entries.byteLength / 32; pos++) {
      const k = digestHex(entries.subarray(pos * 32, pos * 32 + 32))
      const kept = (this.#positions.get(k) ?? []).filter(p => p.cid !== cid)
      if (kept.length > 0) this.#positions.set(k, kept); else this.#positions.delete(k)
    }
    return true
  }

  async listHave (): Promise<HaveState[]> {
    this.#check()
    this.reads += this.#haves.size
    return [...this.#haves.values()].map(h => this.#state(h))
  }

  async getHave (manifestCid: CID): Promise<{ state: HaveState, bitmap: Uint8Array } | undefined> {
    this.#check()
    const h = this.#haves.get(manifestCid.toString())
    if (h === undefined) return undefined
    this.reads++
    return { state: this.#state(h), bitmap: copy(h.bitmap) }
  }

  #state (h: Have): HaveState {
    return { ...h.state, complete: h.state.heldRequired === h.state.required }
  }
}
