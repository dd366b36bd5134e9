// The publish pipeline: walk a release directory, decompress `.gz` inputs and unpack `.tar`/`.tar.gz`
// archives (chunking compressed bytes finds almost nothing shared between releases), chunk with FastCDC,
// hash, hand every chunk to the caller (the store) and build the manifest with upstream provenance.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { basename, join, relative, sep } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import tar from 'tar-stream'
import { sha256 } from './cid.js'
import { chunkStream, DEFAULT_CHUNKER, type ChunkerParams } from './chunker.js'
import { InvalidInputError } from './errors.js'
import { encodeManifest, manifestCid, MANIFEST_FORMAT, type Manifest, type ManifestFile, type UpstreamFile } from './manifest.js'
import { normalizeManifestPath } from './paths.js'
import type { CID } from 'multiformats/cid'

/** reads of 1 MiB keep the chunker from re-copying its pending window on every small read */
const READ_SIZE = 1024 * 1024

export interface SourceFile {
  /** normalised manifest path */
  path: string
  mode: number
  /** filled in completely once open() has been read to its end */
  upstream: UpstreamFile
  open: () => AsyncIterable<Uint8Array>
}

function hashing (upstream: UpstreamFile): Transform {
  const s = createHash('sha256')
  const m = createHash('md5')
  let size = 0
  return new Transform({
    transform (chunk: Buffer, _enc, cb) {
      s.update(chunk)
      m.update(chunk)
      size += chunk.byteLength
      cb(null, chunk)
    },
    flush (cb) {
      upstream.sha256 = s.digest('hex')
      upstream.md5 = m.digest('hex')
      upstream.size = size
      cb()
    }
  })
}

function kindOf (name: string): UpstreamFile['compression'] {
  if (/\.(tar\.gz|tgz)$/i.test(name)) return 'tar.gz'
  if (/\.tar$/i.test(name)) return 'tar'
  if (/\.gz$/i.test(name)) return 'gzip'
  return 'none'
}

async function listFiles (root: string): Promise<string[]> {
  const out: string[] = []
  async function walk (dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      const p = join(dir, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile()) out.push(p)
      else throw new InvalidInputError(`${p} is not a regular file or directory (symlinks and special files are not published)`)
    }
  }
  await walk(root)
  return out
}

async function * tarMembers (file: string, rel: string, mode: 'tar' | 'tar.gz', upstream: UpstreamFile): AsyncGenerator<SourceFile> {
  const prefix = rel.replace(/\.(tar\.gz|tgz|tar)$/i, '')
  const extract = tar.extract()
  let source: Readable = createReadStream(file, { highWaterMark: READ_SIZE }).pipe(hashing(upstream))
  if (mode === 'tar.gz') source = source.pipe(createGunzip({ chunkSize: 256 * 1024 }))
  source.on('error', err => { extract.destroy(err) })
  source.pipe(extract)
  for await (const entry of extract) {
    const h = entry.header
    if (h.type === 'directory') { entry.resume(); continue }
    if (h.type !== 'file' && h.type !== 'contiguous-file') {
      entry.resume()
      throw new InvalidInputError(`${rel}: member ${JSON.stringify(h.name)} is a ${String(h.type)}, not a regular file`)
    }
    let member: string
    try {
      member = normalizeManifestPath(h.name)
    } catch (err: any) {
      entry.resume()
      throw new InvalidInputError(`${rel}: unsafe member path ${JSON.stringify(h.name)}: ${err.message as string}`, { cause: err })
    }
    let consumed = false
    yield {
      path: normalizeManifestPath(`${prefix}/${member}`),
      mode: (h.mode ?? 0o644) & 0o755,
      upstream: { ...upstream, member, get sha256 () { return upstream.sha256 }, get md5 () { return upstream.md5 }, get size () { return upstream.size } } as UpstreamFile,
      open: () => { consumed = true; return entry as unknown as AsyncIterable<Uint8Array> }
    }
    if (!consumed) entry.resume()
  }
}

/** The logical files of a release: sorted, decompressed, unpacked, with upstream provenance. */
export async function * walkRelease (dir: string): AsyncGenerator<SourceFile> {
  const st = await lstat(dir)
  const files = st.isFile() ? [dir] : await listFiles(dir)
  const root = st.isFile() ? join(dir, '..') : dir
  for (const file of files) {
    const rel = relative(root, file).split(sep).join('/')
    const fst = await lstat(file)
    const mode = fst.mode & 0o755
    const compression = kindOf(rel)
    const upstream: UpstreamFile = { name: basename(rel), size: fst.size, sha256: '', md5: '', compression }
    if (compression === 'tar' || compression === 'tar.gz') {
      yield * tarMembers(file, rel, compression, upstream)
    } else if (compression === 'gzip') {
      yield {
        path: normalizeManifestPath(rel.replace(/\.gz$/i, '')),
        mode,
        upstream,
        open: () => createReadStream(file, { highWaterMark: READ_SIZE }).pipe(hashing(upstream)).pipe(createGunzip({ chunkSize: 256 * 1024 }))
      }
    } else {
      yield {
        path: normalizeManifestPath(rel),
        mode,
        upstream,
        open: () => createReadStream(file, { highWaterMark: READ_SIZE }).pipe(hashing(upstream))
      }
    }
  }
}

export interface BuildOptions {
  dataset: string
  version: string
  chunker?: ChunkerParams
  onChunk: (digest: Uint8Array, bytes: Uint8Array) => Promise<void> | void
  now?: number
}

export interface BuiltRelease {
  manifest: Manifest
  bytes: Uint8Array
  cid: CID
  stats: { files: number, chunks: number, bytes: number }
}

export async function buildRelease (dir: string, opts: BuildOptions): Promise<BuiltRelease> {
  const params = opts.chunker ?? DEFAULT_CHUNKER
  const files: ManifestFile[] = []
  const upstreams: UpstreamFile[] = []
  let chunks = 0
  let total = 0
  for await (const src of walkRelease(dir)) {
    const digests: Uint8Array[] = []
    const sizes: number[] = []
    let size = 0
    for await (const chunk of chunkStream(src.open(), params)) {
      const digest = sha256(chunk)
      await opts.onChunk(digest, chunk)
      digests.push(digest)
      sizes.push(chunk.byteLength)
      size += chunk.byteLength
    }
    const packed = new Uint8Array(digests.length * 32)
    digests.forEach((d, i) => packed.set(d, i * 32))
    upstreams.push(src.upstream)
    files.push({ path: src.path, size, mode: src.mode, chunks: packed, chunkSizes: Uint32Array.from(sizes) })
    chunks += digests.length
    total += size
  }
  // upstream checksums are final only once each input (a whole archive, for tar members) was read
  files.forEach((f, i) => {
    const u = upstreams[i]
    f.upstream = { name: u.name, size: u.size, sha256: u.sha256, md5: u.md5, compression: u.compression }
    if (u.member !== undefined) f.upstream.member = u.member
  })
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    dataset: opts.dataset,
    version: opts.version,
    chunker: { ...params },
    files,
    encodings: [],
    createdAt: opts.now ?? 0
  }
  const bytes = encodeManifest(manifest)
  return { manifest, bytes, cid: manifestCid(bytes), stats: { files: files.length, chunks, bytes: total } }
}
