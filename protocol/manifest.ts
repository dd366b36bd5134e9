// The manifest: a release's files and each file's ordered chunk list, content-addressed. Encoded as
// DAG-CBOR (deterministic: map keys sorted, shortest integers), so the same release always gives the same
// bytes and the same CID (CIDv1, dag-cbor, sha2-256). Chunk lists are packed byte strings (32-byte digests,
// little-endian uint32 sizes): linear to encode and decode at 10^6 chunks.
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { cidFromDigest, DAG_CBOR_CODEC, DIGEST_LENGTH, digestHex, sha256 } from './cid.js'
import { MAX_CHUNK_SIZE, validateChunkerParams, type ChunkerParams } from './chunker.js'
import { HashMismatchError, InvalidManifestError } from './errors.js'
import { normalizeLinkTarget, normalizeManifestPath } from './paths.js'
import { validDataset, validVersion } from './names.js'
import { MAX_DELTA_BASES, MAX_DELTA_TARGET_BYTES, MAX_DELTA_TARGETS } from './delta.js'
import { MAX_HAVE_CHUNKS } from './exchange/messages.js'

export const MANIFEST_FORMAT = 1
/** the format of manifests that carry symlinks or empty directories (readers of format 1 refuse them) */
export const MANIFEST_FORMAT_LINKS = 2
/**
 * Decoders refuse larger manifests. A chunk costs ~40 bytes (digest, size, wire size) and a chunk rebuilt
 * by a delta run ~40 more: 256 MiB holds 200 GiB at the 64 KiB minimum chunk size (3.3 M chunks, ~130 MB)
 * or at the 256 KiB average with a delta for every chunk (~0.8 M chunks, ~70 MB), with room to spare.
 */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024
/** Decoders refuse manifests listing more chunks: 200 GiB at the 64 KiB minimum chunk size is 3,276,800. */
export const MAX_MANIFEST_CHUNKS = 3_500_000
/** chunks plus delta runs: the have protocol's limit on a bitmap (exchange/messages.ts MAX_HAVE_CHUNKS) */
export const MAX_MANIFEST_ENTRIES = MAX_HAVE_CHUNKS
export const MAX_FILES = 1_000_000

/** What a decoder accepts; a daemon may lower both (config `limits.maxManifestBytes`, `limits.maxManifestChunks`). */
export interface ManifestLimits {
  maxBytes?: number
  maxChunks?: number
}

export interface UpstreamFile {
  /** the file's name as published upstream (e.g. `uniprot_sprot.dat.gz`) */
  name: string
  size: number
  sha256: string
  md5: string
  compression: 'none' | 'gzip' | 'tar' | 'tar.gz'
  /** the member path, when the file came out of a tar archive */
  member?: string
}

export interface ManifestFile {
  path: string
  size: number
  mode: number
  /** concatenated 32-byte sha256 digests, in file order */
  chunks: Uint8Array
  chunkSizes: Uint32Array
  /** per chunk, its size as the chunk protocol sends it (zstd when that is smaller); lets `plan` predict */
  wireSizes?: Uint32Array
  upstream?: UpstreamFile
}

/** A cheaper encoding of a run of chunks: a delta object that rebuilds `targets` (concatenated) from `bases`. */
export interface DeltaEncoding {
  targets: Uint8Array[]
  object: Uint8Array
  size: number
  bases: Uint8Array[]
  kind: string
}

/** A symlink kept as a symlink: `target` is relative and stays inside the release (paths.ts normalizeLinkTarget). */
export interface ManifestLink {
  path: string
  target: string
}

export interface Manifest {
  /** 1, or 2 when `links` or `dirs` are present */
  format: 1 | 2
  dataset: string
  version: string
  chunker: ChunkerParams
  files: ManifestFile[]
  encodings: DeltaEncoding[]
  createdAt: number
  /** symlinks, sorted by path (format 2) */
  links?: ManifestLink[]
  /** empty directories, sorted (format 2) */
  dirs?: string[]
}

/** The format a manifest with these entries is written in. */
export function manifestFormatFor (m: Pick<Manifest, 'links' | 'dirs'>): 1 | 2 {
  return (m.links?.length ?? 0) > 0 || (m.dirs?.length ?? 0) > 0 ? MANIFEST_FORMAT_LINKS : MANIFEST_FORMAT
}

/**
 * Collision checks over every entry of a manifest (files, symlinks, directories): no two entries at one
 * path, nothing inside a file or a symlink. The decoder and the publisher run the same checks.
 */
export class EntryPaths {
  readonly #leaves = new Set<string>()
  readonly #dirs = new Set<string>()

  /** Returns an error text, or undefined when `path` fits. `dir` entries may share a path with parents. */
  add (path: string, dir = false): string | undefined {
    if (this.#leaves.has(path) || (!dir && this.#dirs.has(path))) return `${JSON.stringify(path)} collides with another entry`
    const parts = path.split('/')
    for (let k = 1; k < parts.length; k++) {
      const d = parts.slice(0, k).join('/')
      if (this.#leaves.has(d)) return `${JSON.stringify(path)} is inside a file or symlink ${JSON.stringify(d)}`
    }
    for (let k = 1; k < parts.length; k++) this.#dirs.add(parts.slice(0, k).join('/'))
    if (dir) this.#dirs.add(path)
    else this.#leaves.add(path)
    return undefined
  }

  /** true when `path` is a directory some entry lies in (or a listed directory) */
  isDir (path: string): boolean { return this.#dirs.has(path) }
}

function packSizes (sizes: Uint32Array): Uint8Array {
  const out = new Uint8Array(sizes.length * 4)
  const dv = new DataView(out.buffer)
  for (let i = 0; i < sizes.length; i++) dv.setUint32(i * 4, sizes[i], true)
  return out
}

function unpackSizes (bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(bytes.byteLength / 4)
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(i * 4, true)
  return out
}

export function encodeManifest (m: Manifest): Uint8Array {
  const files = m.files.map(f => {
    const o: Record<string, unknown> = { path: f.path, size: f.size, mode: f.mode, chunks: f.chunks, sizes: packSizes(f.chunkSizes) }
    if (f.wireSizes != null) o.wire = packSizes(f.wireSizes)
    if (f.upstream != null) {
      const u: Record<string, unknown> = { name: f.upstream.name, size: f.upstream.size, sha256: f.upstream.sha256, md5: f.upstream.md5, compression: f.upstream.compression }
      if (f.upstream.member != null) u.member = f.upstream.member
      o.upstream = u
    }
    return o
  })
  // delta objects are written as `runs`; `encodings` stays empty, so that readers that know only
  // single-chunk encodings (which they validate strictly) still read the manifest and fetch whole chunks
  const runs = m.encodings.map(e => ({ targets: e.targets, object: e.object, size: e.size, bases: e.bases, kind: e.kind }))
  const format = manifestFormatFor(m)
  if (m.format !== format) throw new RangeError(`a manifest ${format === 1 ? 'without' : 'with'} symlinks or empty directories is format ${format}, not ${m.format}`)
  const links = (m.links ?? []).map(l => ({ path: l.path, target: l.target }))
  return dagCbor.encode({
    format: m.format,
    dataset: m.dataset,
    version: m.version,
    createdAt: m.createdAt,
    chunker: { ...m.chunker },
    files,
    encodings: [],
    ...(runs.length > 0 ? { runs } : {}),
    ...(links.length > 0 ? { links } : {}),
    ...((m.dirs?.length ?? 0) > 0 ? { dirs: [...(m.dirs as string[])] } : {})
  })
}

export function manifestCid (bytes: Uint8Array): CID {
  return cidFromDigest(sha256(bytes), DAG_CBOR_CODEC)
}

function fail (msg: string): never { throw new InvalidManifestError(`invalid manifest: ${msg}`) }
function isObj (v: unknown): v is Record<string, unknown> { return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) }
function uint (v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what} must be a non-negative integer`)
  return v
}
function str (v: unknown, what: string, max = 1024): string {
  if (typeof v !== 'string' || v.length > max) fail(`${what} must be a string of at most ${max} characters`)
  return v
}
function bytes (v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(`${what} must be bytes`)
  return v
}

function decodeUpstream (u: unknown, where: string): UpstreamFile {
  if (!isObj(u)) fail(`${where}.upstream must be a map`)
  const compression = u.compression
  if (compression !== 'none' && compression !== 'gzip' && compression !== 'tar' && compression !== 'tar.gz') fail(`${where}.upstream.compression is unknown`)
  const out: UpstreamFile = {
    name: str(u.name, `${where}.upstream.name`, 4096),
    size: uint(u.size, `${where}.upstream.size`),
    sha256: str(u.sha256, `${where}.upstream.sha256`, 64),
    md5: str(u.md5, `${where}.upstream.md5`, 32),
    compression
  }
  if (u.member !== undefined) out.member = str(u.member, `${where}.upstream.member`, 4096)
  return out
}

/** Decode and fully validate untrusted manifest bytes. */
export function decodeManifest (data: Uint8Array, limits: ManifestLimits = {}): Manifest {
  const maxBytes = Math.min(limits.maxBytes ?? MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES)
  const maxChunks = Math.min(limits.maxChunks ?? MAX_MANIFEST_CHUNKS, MAX_MANIFEST_ENTRIES)
  if (data.byteLength > maxBytes) fail(`${data.byteLength} bytes is over the ${maxBytes}-byte limit`)
  let raw: unknown
  try {
    raw = dagCbor.decode(data)
  } catch (err) {
    throw new InvalidManifestError('invalid manifest: not DAG-CBOR', { cause: err })
  }
  if (!isObj(raw)) fail('not a map')
  if (raw.format !== MANIFEST_FORMAT && raw.format !== MANIFEST_FORMAT_LINKS) fail(`unsupported format ${String(raw.format)}`)
  const dataset = str(raw.dataset, 'dataset', 64)
  const version = str(raw.version, 'version', 64)
  if (!validDataset(dataset) || !validVersion(version)) fail('invalid dataset or version name')
  let chunker: ChunkerParams
  try {
    chunker = validateChunkerParams(raw.chunker)
  } catch (err: any) {
    fail(err.message)
  }
  if (!Array.isArray(raw.files)) fail('files must be a list')
  if (raw.files.length > MAX_FILES) fail('too many files')
  const files: ManifestFile[] = []
  let chunkCount = 0
  const entries = new EntryPaths()
  const entryPath = (v: unknown, where: string): string => {
    const path = str(v, where, 4096)
    let normal: string
    try {
      normal = normalizeManifestPath(path)
    } catch (err: any) {
      fail(`${where}: ${err.message as string}`)
    }
    if (normal !== path) fail(`${where} is not normalised`)
    return path
  }
  for (const [n, f] of raw.files.entries()) {
    const where = `files[${n}]`
    if (!isObj(f)) fail(`${where} must be a map`)
    const path = entryPath(f.path, `${where}.path`)
    const clash = entries.add(path)
    if (clash != null) fail(`${where}.path ${clash}`)
    const size = uint(f.size, `${where}.size`)
    const mode = uint(f.mode, `${where}.mode`)
    if (mode > 0o777) fail(`${where}.mode has bits beyond 0777`)
    const chunks = bytes(f.chunks, `${where}.chunks`)
    const sizeBytes = bytes(f.sizes, `${where}.sizes`)
    if (chunks.byteLength % DIGEST_LENGTH !== 0) fail(`${where}.chunks is not a list of 32-byte digests`)
    const count = chunks.byteLength / DIGEST_LENGTH
    chunkCount += count
    if (chunkCount > maxChunks) fail(`more than ${maxChunks} chunks (the limit)`)
    if (sizeBytes.byteLength !== count * 4) fail(`${where}.sizes does not match its chunk count`)
    const chunkSizes = unpackSizes(sizeBytes)
    let sum = 0
    for (const s of chunkSizes) {
      if (s === 0 || s > chunker.maxSize) fail(`${where} has a chunk of ${s} bytes (limit ${chunker.maxSize})`)
      sum += s
    }
    if (sum !== size) fail(`${where}.size ${size} is not the sum of its chunks (${sum})`)
    const file: ManifestFile = { path, size, mode, chunks, chunkSizes }
    if (f.wire !== undefined) {
      const wire = bytes(f.wire, `${where}.wire`)
      if (wire.byteLength !== count * 4) fail(`${where}.wire does not match its chunk count`)
      file.wireSizes = unpackSizes(wire)
      for (let i = 0; i < count; i++) if (file.wireSizes[i] > chunkSizes[i]) fail(`${where}.wire has a chunk larger on the wire than raw`)
    }
    if (f.upstream !== undefined) file.upstream = decodeUpstream(f.upstream, where)
    files.push(file)
  }
  const links: ManifestLink[] = []
  const emptyDirs: string[] = []
  if (raw.links !== undefined || raw.dirs !== undefined) {
    if (raw.format === MANIFEST_FORMAT) fail('symlinks and directories need format 2')
    if (raw.links !== undefined && (!Array.isArray(raw.links) || raw.links.length > MAX_FILES)) fail('links must be a list of at most ' + String(MAX_FILES))
    if (raw.dirs !== undefined && (!Array.isArray(raw.dirs) || raw.dirs.length > MAX_FILES)) fail('dirs must be a list of at most ' + String(MAX_FILES))
    for (const [n, l] of (raw.links ?? []).entries()) {
      const where = `links[${n}]`
      if (!isObj(l)) fail(`${where} must be a map`)
      const path = entryPath(l.path, `${where}.path`)
      const target = str(l.target, `${where}.target`, 4096)
      let normal: string
      try {
        normal = normalizeLinkTarget(path, target)
      } catch (err: any) {
        fail(`${where}: ${err.message as string}`)
      }
      if (normal !== target) fail(`${where}.target is not normalised`)
      if (n > 0 && !(links[n - 1].path < path)) fail(`${where} is out of order`)
      const clash = entries.add(path)
      if (clash != null) fail(`${where}.path ${clash}`)
      links.push({ path, target })
    }
    for (const [n, d] of (raw.dirs ?? []).entries()) {
      const path = entryPath(d, `dirs[${n}]`)
      if (n > 0 && !(emptyDirs[n - 1] < path)) fail(`dirs[${n}] is out of order`)
      const clash = entries.add(path, true)
      if (clash != null) fail(`dirs[${n}] ${clash}`)
      emptyDirs.push(path)
    }
    if (links.length === 0 && emptyDirs.length === 0) fail('format 2 without symlinks or directories')
  } else if (raw.format !== MANIFEST_FORMAT) {
    fail('format 2 without symlinks or directories')
  }
  if (!Array.isArray(raw.encodings)) fail('encodings must be a list')
  if (raw.runs !== undefined && !Array.isArray(raw.runs)) fail('runs must be a list')
  if (chunkCount + raw.encodings.length + (raw.runs?.length ?? 0) > MAX_MANIFEST_ENTRIES) fail(`more than ${MAX_MANIFEST_ENTRIES} chunks and delta runs (the have protocol's limit)`)
  const digest = (v: unknown, what: string): Uint8Array => {
    const d = bytes(v, what)
    if (d.byteLength !== DIGEST_LENGTH) fail(`${what} must be a 32-byte digest`)
    return d
  }
  const distinct = (list: Uint8Array[], what: string): void => {
    if (new Set(list.map(digestHex)).size !== list.length) fail(`${what} names a digest twice`)
  }
  const decodeEncoding = (e: unknown, where: string, legacy: boolean): DeltaEncoding => {
    if (!isObj(e)) fail(`${where} must be a map`)
    // in `encodings`, earlier publishers wrote one chunk as `target`: a run of one
    const listed = legacy && e.targets === undefined && e.target !== undefined ? [e.target] : e.targets
    if (!Array.isArray(listed) || listed.length === 0 || listed.length > MAX_DELTA_TARGETS) fail(`${where}.targets must be a list of 1–${MAX_DELTA_TARGETS} digests`)
    const targets = listed.map((t: unknown) => digest(t, `${where}.targets[]`))
    distinct(targets, `${where}.targets`)
    const object = digest(e.object, `${where}.object`)
    if (!Array.isArray(e.bases) || e.bases.length === 0 || e.bases.length > MAX_DELTA_BASES) fail(`${where}.bases must be a list of 1–${MAX_DELTA_BASES} digests`)
    const bases = e.bases.map((b: unknown) => digest(b, `${where}.bases[]`))
    distinct(bases, `${where}.bases`)
    const size = uint(e.size, `${where}.size`)
    if (size === 0 || size > MAX_CHUNK_SIZE) fail(`${where}.size must be 1–${MAX_CHUNK_SIZE}`)
    return { targets, object, size, bases, kind: str(e.kind, `${where}.kind`, 64) }
  }
  const encodings: DeltaEncoding[] = [
    ...raw.encodings.map((e: unknown, n: number) => decodeEncoding(e, `encodings[${n}]`, true)),
    ...(raw.runs ?? []).map((e: unknown, n: number) => decodeEncoding(e, `runs[${n}]`, false))
  ]
  if (encodings.length > 0) {
    const sizes = new Map<string, number>()
    for (const f of files) for (let i = 0; i < f.chunkSizes.length; i++) sizes.set(digestHex(f.chunks.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH)), f.chunkSizes[i])
    encodings.forEach((e, n) => {
      let total = 0
      for (const t of e.targets) {
        const size = sizes.get(digestHex(t))
        if (size == null) fail(`delta encoding ${n} names a target that is not a chunk of this manifest`)
        total += size
      }
      if (total > MAX_DELTA_TARGET_BYTES) fail(`delta encoding ${n} rebuilds ${total} bytes (limit ${MAX_DELTA_TARGET_BYTES})`)
    })
  }
  const out: Manifest = { format: raw.format === MANIFEST_FORMAT_LINKS ? 2 : 1, dataset, version, chunker, files, encodings, createdAt: uint(raw.createdAt, 'createdAt') }
  if (links.length > 0) out.links = links
  if (emptyDirs.length > 0) out.dirs = emptyDirs
  return out
}

/** Check bytes against the CID they were asked for, then decode them. */
export function verifyManifest (cid: CID, data: Uint8Array, limits?: ManifestLimits): Manifest {
  const expected = manifestCid(data)
  if (!expected.equals(cid)) throw new HashMismatchError(`manifest bytes do not match ${String(cid)}`)
  return decodeManifest(data, limits)
}

export interface ChunkIndex {
  count: number
  /** n*32 bytes */
  digests: Uint8Array
  sizes: Uint32Array
  /** wire sizes, when the manifest gives them */
  wireSizes?: Uint32Array
  totalBytes: number
  digestAt: (i: number) => Uint8Array
  indexOf: (digest: Uint8Array) => number
}

/** The deduplicated chunk list of a manifest, in order of first appearance: the have-bitmap order. */
export function manifestChunkIndex (m: Manifest): ChunkIndex {
  const seen = new Map<string, number>()
  let total = 0
  for (const f of m.files) total += f.chunkSizes.length
  const digests = new Uint8Array(total * DIGEST_LENGTH)
  const sizes = new Uint32Array(total)
  const hasWire = m.files.length > 0 && m.files.every(f => f.wireSizes != null)
  const wire = hasWire ? new Uint32Array(total) : undefined
  let count = 0
  let totalBytes = 0
  for (const f of m.files) {
    for (let i = 0; i < f.chunkSizes.length; i++) {
      const d = f.chunks.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH)
      const key = digestHex(d)
      if (seen.has(key)) continue
      seen.set(key, count)
      digests.set(d, count * DIGEST_LENGTH)
      sizes[count] = f.chunkSizes[i]
      if (wire != null) wire[count] = (f.wireSizes as Uint32Array)[i]
      totalBytes += f.chunkSizes[i]
      count++
    }
  }
  const packed = digests.slice(0, count * DIGEST_LENGTH)
  return {
    count,
    digests: packed,
    sizes: sizes.slice(0, count),
    wireSizes: wire?.slice(0, count),
    totalBytes,
    digestAt: (i: number) => packed.subarray(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH),
    indexOf: (digest: Uint8Array) => seen.get(digestHex(digest)) ?? -1
  }
}

/**
 * The delta objects of a manifest as have-bitmap entries: entry `chunks.count + k` is `digests[k]`, an
 * object that rebuilds the run of chunks `targets[k]` (chunk-index positions, in order) from `bases[k]`.
 * Encodings of unknown kinds are left out.
 */
export interface DeltaIndex {
  count: number
  digests: Uint8Array
  sizes: Uint32Array
  targets: Int32Array[]
  bases: Uint8Array[][]
  kinds: string[]
  digestAt: (k: number) => Uint8Array
}

export function manifestDeltaIndex (m: Manifest, chunks: ChunkIndex, kinds: string[]): DeltaIndex {
  const usable = m.encodings.filter(e => kinds.includes(e.kind) && e.targets.every(t => chunks.indexOf(t) !== -1))
  const digests = new Uint8Array(usable.length * DIGEST_LENGTH)
  usable.forEach((e, k) => digests.set(e.object, k * DIGEST_LENGTH))
  return {
    count: usable.length,
    digests,
    sizes: Uint32Array.from(usable, e => e.size),
    targets: usable.map(e => Int32Array.from(e.targets, t => chunks.indexOf(t))),
    bases: usable.map(e => e.bases),
    kinds: usable.map(e => e.kind),
    digestAt: (k: number) => digests.subarray(k * DIGEST_LENGTH, (k + 1) * DIGEST_LENGTH)
  }
}

export { CID }
