// Append-only pack files holding chunk bytes. LevelDB indexes them (digest → pack, offset, length) and
// records each pack's committed length in the same batch as the index entries. The pack bytes are fsynced
// before that batch is written (see commit.ts), so a power cut never leaves an index entry pointing at
// bytes the disk does not hold; a crash between a pack append and its index write leaves only an
// unreferenced tail, cut off at the next open. A pack shorter than its committed length (a store written
// by an older build, or a disk that lost acknowledged writes) is reported to the store, which drops the
// index entries past its end (recovery.ts).
import { mkdir, open, readdir, rm, stat, truncate, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { DiskFullError, StoreCorruptError } from './errors.js'
import type { StoredEncoding } from './interface.js'

export interface Location {
  pack: number
  offset: number
  /** bytes in the pack */
  length: number
  /** how the bytes are stored: the chunk itself, or its zstd frame (the form compressed transfer sends) */
  encoding: StoredEncoding
  /** the chunk's own size (= length when stored raw) */
  rawSize: number
}

export type { StoredEncoding }

const PACK_RE = /^pack-(\d{8})\.dat$/

export function packName (id: number): string {
  return `pack-${String(id).padStart(8, '0')}.dat`
}

// Index entry: pack u32, offset f64, length u32 (16 bytes: stored raw, the schema-1 layout), then for a
// compressed entry encoding u8 (1 = zstd) and the raw size u32 (21 bytes).
const RAW_ENTRY = 16
const ENCODED_ENTRY = 21
const ENCODING_ZSTD = 1

export function encodeLocation (loc: Location): Uint8Array {
  const out = new Uint8Array(loc.encoding === 'raw' ? RAW_ENTRY : ENCODED_ENTRY)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, loc.pack, true)
  dv.setFloat64(4, loc.offset, true)
  dv.setUint32(12, loc.length, true)
  if (loc.encoding === 'zstd') {
    dv.setUint8(16, ENCODING_ZSTD)
    dv.setUint32(17, loc.rawSize, true)
  }
  return out
}

export function decodeLocation (b: Uint8Array): Location {
  if (b.byteLength !== RAW_ENTRY && b.byteLength !== ENCODED_ENTRY) throw new StoreCorruptError(`chunk index entry is ${b.byteLength} bytes, not ${RAW_ENTRY} or ${ENCODED_ENTRY}`)
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const pack = dv.getUint32(0, true)
  const offset = dv.getFloat64(4, true)
  const length = dv.getUint32(12, true)
  if (b.byteLength === RAW_ENTRY) return { pack, offset, length, encoding: 'raw', rawSize: length }
  if (dv.getUint8(16) !== ENCODING_ZSTD) throw new StoreCorruptError(`chunk index entry has unknown encoding ${dv.getUint8(16)}`)
  return { pack, offset, length, encoding: 'zstd', rawSize: dv.getUint32(17, true) }
}

export class PackSet {
  readonly dir: string
  readonly maxBytes: number
  /** committed or pending length of each pack */
  readonly sizes = new Map<number, number>()
  /** packs found shorter than their committed length at open: id → bytes on disk (see recovery.ts) */
  readonly short = new Map<number, number>()
  /** length of each pack known to be on disk (fsynced, or found at open) */
  readonly #durable = new Map<number, number>()
  /** fsyncs of pack data so far */
  syncs = 0
  #active = 0
  #writer?: FileHandle
  #writerId = 0
  /** fsyncs running on the writer: it is not closed under them */
  readonly #syncing = new Set<Promise<void>>()
  /** one read handle per pack, shared: the promise is cached so that concurrent first reads open it once */
  #readers = new Map<number, Promise<FileHandle>>()
  #tail: Promise<unknown> = Promise.resolve()

  private constructor (dir: string, maxBytes: number) {
    this.dir = dir
    this.maxBytes = maxBytes
  }

  /**
   * Open the packs, cutting each back to its committed length (from the index). A pack shorter than its
   * committed length (or missing) is left as it is and listed in `short` for the store to recover.
   */
  static async open (dir: string, committed: Map<number, number>, maxBytes: number): Promise<PackSet> {
    await mkdir(dir, { recursive: true })
    const set = new PackSet(dir, maxBytes)
    for (const name of await readdir(dir)) {
      const m = PACK_RE.exec(name)
      if (m == null) continue
      const id = Number(m[1])
      const path = join(dir, name)
      const end = committed.get(id)
      const size = (await stat(path)).size
      if (end === undefined) {
        await rm(path, { force: true })
        continue
      }
      if (size < end) {
        set.short.set(id, size)
        set.sizes.set(id, size)
        set.#durable.set(id, size)
        continue
      }
      if (size > end) await truncate(path, end)
      set.sizes.set(id, end)
      set.#durable.set(id, end)
    }
    for (const id of committed.keys()) {
      if (!set.sizes.has(id)) { set.short.set(id, 0); set.sizes.set(id, 0); set.#durable.set(id, 0) }
    }
    set.#active = Math.max(0, ...set.sizes.keys())
    return set
  }

  /** Cut a short pack back to `end` (the end of its last chunk still indexed) after recovery. */
  async settle (id: number, end: number): Promise<void> {
    if (end === 0) {
      await this.remove(id)
    } else {
      await truncate(join(this.dir, packName(id)), end)
      this.sizes.set(id, end)
      this.#durable.set(id, end)
    }
    this.short.delete(id)
  }

  /** Bytes of the pack known to be on disk: what survives a power cut. */
  durableLength (id: number): number { return this.#durable.get(id) ?? 0 }

  get activeId (): number { return this.#active }
  get totalBytes (): number { let n = 0; for (const s of this.sizes.values()) n += s; return n }

  async #closeWriter (): Promise<void> {
    if (this.#writer == null) return
    await Promise.all(this.#syncing)
    const id = this.#writerId
    const size = this.sizes.get(id) ?? 0
    await this.#writer.sync()
    this.syncs++
    this.#durable.set(id, size)
    await this.#writer.close()
    this.#writer = undefined
  }

  async #openWriter (): Promise<FileHandle> {
    if (this.#writer != null && (this.sizes.get(this.#active) ?? 0) < this.maxBytes) return this.#writer
    await this.#closeWriter()
    if (this.#active === 0 || (this.sizes.get(this.#active) ?? 0) >= this.maxBytes) {
      this.#active++
      this.sizes.set(this.#active, 0)
    }
    this.#writer = await open(join(this.dir, packName(this.#active)), 'a')
    this.#writerId = this.#active
    return this.#writer
  }

  /** Append bytes; appends are serialised so that offsets are exact. */
  async append (bytes: Uint8Array): Promise<{ pack: number, offset: number, length: number }> {
    const run = this.#tail.then(async () => {
      const fh = await this.#openWriter()
      const pack = this.#active
      const offset = this.sizes.get(pack) ?? 0
      try {
        let written = 0
        while (written < bytes.byteLength) {
          const r = await fh.write(bytes, written, bytes.byteLength - written)
          written += r.bytesWritten
        }
      } catch (err: any) {
        // leave the pack as it was: the partial tail is cut off
        await truncate(join(this.dir, packName(pack)), offset).catch(() => {})
        if (err.code === 'ENOSPC' || err.code === 'EDQUOT') throw new DiskFullError(`disk full writing ${packName(pack)}`, { cause: err })
        throw err
      }
      this.sizes.set(pack, offset + bytes.byteLength)
      return { pack, offset, length: bytes.byteLength }
    })
    this.#tail = run.catch(() => {})
    return await run
  }

  /**
   * Make every append made so far durable (one fdatasync of the active pack; packs rolled over were
   * synced when they were closed). Concurrent callers share one fsync.
   */
  async sync (): Promise<void> {
    // not in the append chain: appends go on while the disk syncs (a rollover waits for the fsync before
    // closing the handle). Appends completed before this call are covered; later ones by the next sync.
    const fh = this.#writer
    if (fh == null) return
    const id = this.#writerId
    const size = this.sizes.get(id) ?? 0
    if (this.durableLength(id) >= size) return
    const run = (async () => {
      try {
        await fh.datasync()
      } catch (err: any) {
        if (err.code === 'ENOSPC' || err.code === 'EDQUOT') throw new DiskFullError(`disk full syncing ${packName(id)}`, { cause: err })
        throw err
      }
      this.syncs++
      if (size > this.durableLength(id)) this.#durable.set(id, size)
    })()
    const settled = run.catch(() => {})
    this.#syncing.add(settled)
    try {
      await run
    } finally {
      this.#syncing.delete(settled)
    }
  }

  async read (loc: Location): Promise<Uint8Array> {
    let opening = this.#readers.get(loc.pack)
    if (opening == null) {
      opening = open(join(this.dir, packName(loc.pack)), 'r')
      this.#readers.set(loc.pack, opening)
      // a failed open is not cached
      opening.catch(() => { if (this.#readers.get(loc.pack) === opening) this.#readers.delete(loc.pack) })
    }
    const fh = await opening
    const buf = new Uint8Array(loc.length)
    let got = 0
    while (got < loc.length) {
      const r = await fh.read(buf, got, loc.length - got, loc.offset + got)
      if (r.bytesRead === 0) throw new StoreCorruptError(`${packName(loc.pack)} ends before offset ${loc.offset + loc.length}`)
      got += r.bytesRead
    }
    return buf
  }

  /** Start a fresh pack for subsequent appends (used by GC before rewriting). */
  async rotate (): Promise<void> {
    await this.#tail
    await this.#closeWriter()
    if ((this.sizes.get(this.#active) ?? 0) > 0 || this.#active === 0) {
      this.#active++
      this.sizes.set(this.#active, 0)
    }
  }

  async remove (id: number): Promise<void> {
    const reader = this.#readers.get(id)
    this.#readers.delete(id)
    await (await reader?.catch(() => undefined))?.close()
    this.sizes.delete(id)
    this.#durable.delete(id)
    await rm(join(this.dir, packName(id)), { force: true })
  }

  async close (): Promise<void> {
    await this.#tail
    await this.#closeWriter()
    const readers = [...this.#readers.values()]
    this.#readers.clear()
    for (const r of readers) await (await r.catch(() => undefined))?.close()
  }
}
