// The publish pipeline: scan a release directory (regular files, relative symlinks that stay inside it,
// empty directories), decompress `.gz` inputs and unpack `.tar`/`.tar.gz` archives (chunking compressed
// bytes finds almost nothing shared between releases) unless asked to keep them as they are, chunk with
// FastCDC, hash, hand every chunk to the caller (the store) and build the manifest with upstream
// provenance. Every input file is stat'ed before and after it is read: a file that changed meanwhile fails
// the publish, naming it. The path checks labs make on a manifest are made here, before anything is signed.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, readlink, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { pipeline, Readable, Transform } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createGunzip } from 'node:zlib'
import tar from 'tar-stream'
import { sha256 } from './cid.js'
import { chunkStream, DEFAULT_CHUNKER, validateChunkerParams, type ChunkerParams } from './chunker.js'
import {
  EmptyReleaseError, InputChangedError, InputNotFoundError, InputUnreadableError, InvalidInputError, InvalidPathError, PathCollisionError,
  PathEscapeError
} from './errors.js'
import {
  encodeManifest, EntryPaths, manifestCid, manifestFormatFor, type Manifest, type ManifestFile, type ManifestLink, type UpstreamFile
} from './manifest.js'
import { normalizeLinkTarget, normalizeManifestPath } from './paths.js'
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
  /** a tar hard link: the same content as this earlier file of the release (written as a copy) */
  copyOf?: string
  /** where the file comes from, for messages: the input path, and the member for tar members */
  source: string
}

/** Counters a publish reports while it runs; updated in place. */
export interface IngestProgress {
  /** input files (an archive counts once) and their bytes, known once the input was scanned */
  filesTotal: number
  bytesTotal: number
  filesRead: number
  bytesRead: number
  chunks: number
  /** the input file being read */
  current?: string
}

export interface IngestOptions {
  /**
   * Keep `.gz` inputs (`.tar.gz`/`.tgz` included) as they are: chunked as is, materialized byte-identical
   * under their own name. true for every one, or glob patterns (`*` within a name, `**` across
   * directories) matched against the input's path in the release, or its name when the pattern has no `/`.
   */
  keepCompressed?: boolean | string[]
  /** publish a release with no file and no symlink (refused otherwise) */
  allowEmpty?: boolean
  signal?: AbortSignal
  /** input read rate limit, bytes/s (0 or absent: none) */
  readBytesPerSecond?: number
  progress?: IngestProgress
  /** called once the input was scanned (progress totals known), before any file is read */
  onScanned?: () => void
  /** called once an input file was read to its end, before it is stat'ed again (tests change files here) */
  afterRead?: (path: string) => Promise<void> | void
}

interface InputFile {
  abs: string
  /** '/'-separated path relative to the input root */
  rel: string
  size: number
  mtimeNs: bigint
  ino: bigint
  mode: number
}

/** What a scan of the publish input found. */
export interface ReleaseInput {
  files: InputFile[]
  links: ManifestLink[]
  /** every directory under the root, as release paths (the empty ones become manifest `dirs`) */
  dirs: string[]
  bytes: number
}

function fsError (err: any, path: string): Error {
  switch (err?.code) {
    case 'ENOENT': case 'ENOTDIR':
      return new InputNotFoundError(`${path} does not exist`, { cause: err })
    case 'EACCES': case 'EPERM':
      return new InputUnreadableError(`${path} cannot be read (permission denied)`, { cause: err })
    case 'EIO': case 'ESTALE': case 'ENXIO': case 'EISDIR': case 'ELOOP':
      return new InputUnreadableError(`${path} cannot be read (${String(err.code)})`, { cause: err })
    default:
      return err
  }
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

function globRegExp (pattern: string): RegExp {
  let re = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '*' && pattern[i + 1] === '*') { re += '.*'; i++; if (pattern[i + 1] === '/') i++ } else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

/** Whether an input at release path `rel` is kept compressed under `keep`. */
export function keepsCompressed (rel: string, keep: IngestOptions['keepCompressed']): boolean {
  if (keep === true) return true
  if (keep == null || keep === false) return false
  return keep.some(p => globRegExp(p).test(p.includes('/') ? rel : basename(rel)))
}

function kindOf (rel: string, keep: IngestOptions['keepCompressed']): UpstreamFile['compression'] {
  let kind: UpstreamFile['compression'] = 'none'
  if (/\.(tar\.gz|tgz)$/i.test(rel)) kind = 'tar.gz'
  else if (/\.tar$/i.test(rel)) kind = 'tar'
  else if (/\.gz$/i.test(rel)) kind = 'gzip'
  return (kind === 'gzip' || kind === 'tar.gz') && keepsCompressed(rel, keep) ? 'none' : kind
}

/** Scan the publish input without reading file contents: missing, unreadable or unsafe input fails here. */
export async function scanInput (dir: string): Promise<ReleaseInput> {
  const out: ReleaseInput = { files: [], links: [], dirs: [], bytes: 0 }
  let st
  try {
    st = await stat(dir)
  } catch (err) {
    throw fsError(err, dir)
  }
  const addFile = async (abs: string, rel: string): Promise<void> => {
    let fst
    try {
      fst = await stat(abs, { bigint: true })
    } catch (err) {
      throw fsError(err, abs)
    }
    out.files.push({ abs, rel, size: Number(fst.size), mtimeNs: fst.mtimeNs, ino: fst.ino, mode: Number(fst.mode) & 0o755 })
    out.bytes += Number(fst.size)
  }
  if (st.isFile()) {
    await addFile(dir, basename(dir))
    return out
  }
  if (!st.isDirectory()) throw new InvalidInputError(`${dir} is not a regular file or directory`)
  const walk = async (abs: string, rel: string): Promise<void> => {
    let entries
    try {
      entries = await readdir(abs, { withFileTypes: true })
    } catch (err) {
      throw fsError(err, abs)
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      const p = join(abs, e.name)
      const r = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) {
        out.dirs.push(normalizeManifestPath(r))
        await walk(p, r)
      } else if (e.isFile()) {
        await addFile(p, r)
      } else if (e.isSymbolicLink()) {
        const path = normalizeManifestPath(r)
        let target: string
        try {
          target = await readlink(p)
        } catch (err) {
          throw fsError(err, p)
        }
        out.links.push({ path, target: normalizeLinkTarget(path, target) })
      } else {
        throw new InvalidInputError(`${p} is not a regular file, directory or symlink (sockets, FIFOs and devices are not published)`)
      }
    }
  }
  await walk(dir, '')
  return out
}

class Throttle {
  readonly #rate: number
  readonly #start = performance.now()
  #bytes = 0

  constructor (rate: number) { this.#rate = rate }

  async take (n: number, signal?: AbortSignal): Promise<void> {
    if (this.#rate <= 0) return
    this.#bytes += n
    const due = (this.#bytes / this.#rate) * 1000 - (performance.now() - this.#start)
    if (due > 1) await sleep(due, undefined, { signal })
  }
}

interface WalkContext {
  opts: IngestOptions
  progress: IngestProgress
  throttle: Throttle
  /** symlinks and directories found in archives */
  links: ManifestLink[]
  dirs: string[]
}

async function checkUnchanged (f: InputFile, read: number): Promise<void> {
  let now
  try {
    now = await stat(f.abs, { bigint: true })
  } catch (err) {
    throw new InputChangedError(`${f.rel} disappeared while the release was being read: publish again once the input is settled`, { cause: err })
  }
  const changes: string[] = []
  if (read !== f.size) changes.push(`${read} bytes read of ${f.size}`)
  if (Number(now.size) !== f.size) changes.push(`size ${f.size} → ${String(now.size)}`)
  if (now.mtimeNs !== f.mtimeNs) changes.push('modification time changed')
  if (now.ino !== f.ino) changes.push('replaced by another file')
  if (changes.length > 0) throw new InputChangedError(`${f.rel} changed while the release was being read (${changes.join(', ')}): publish again once the input is settled`)
}

/** An input file's bytes, counted, rate-limited, and checked unchanged once read to the end. */
function readInput (f: InputFile, ctx: WalkContext): Readable {
  async function * read (): AsyncGenerator<Buffer> {
    const stream = createReadStream(f.abs, { highWaterMark: READ_SIZE })
    let n = 0
    ctx.progress.current = f.rel
    try {
      for await (const buf of stream as AsyncIterable<Buffer>) {
        ctx.opts.signal?.throwIfAborted()
        n += buf.byteLength
        ctx.progress.bytesRead += buf.byteLength
        await ctx.throttle.take(buf.byteLength, ctx.opts.signal)
        yield buf
      }
    } catch (err) {
      throw fsError(err, f.abs)
    } finally {
      stream.destroy()
    }
    await ctx.opts.afterRead?.(f.rel)
    await checkUnchanged(f, n)
    ctx.progress.filesRead++
  }
  return Readable.from(read(), { objectMode: false })
}

function chain (streams: Array<NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream>): any {
  // pipeline destroys every stream with the first error, so a reader of the last one sees it
  return (pipeline as any)(...streams, () => {})
}

async function * tarMembers (f: InputFile, mode: 'tar' | 'tar.gz', upstream: UpstreamFile, ctx: WalkContext): AsyncGenerator<SourceFile> {
  const rel = f.rel
  const prefix = normalizeManifestPath(rel.replace(/\.(tar\.gz|tgz|tar)$/i, ''))
  const extract = tar.extract()
  const stages: any[] = [readInput(f, ctx), hashing(upstream)]
  if (mode === 'tar.gz') stages.push(createGunzip({ chunkSize: 256 * 1024 }))
  chain([...stages, extract])
  const memberPath = (name: string, what: string): string => {
    try {
      return normalizeManifestPath(name)
    } catch (err: any) {
      throw new InvalidInputError(`${rel}: unsafe ${what} ${JSON.stringify(name)}: ${err.message as string}`, { cause: err })
    }
  }
  for await (const entry of extract) {
    const h = entry.header
    const where = `${rel}: member ${JSON.stringify(h.name)}`
    if (h.type === 'directory') {
      entry.resume()
      const trimmed = h.name.split('/').filter(s => s !== '' && s !== '.')
      if (trimmed.length > 0) ctx.dirs.push(`${prefix}/${memberPath(h.name, 'member path')}`)
      continue
    }
    if (h.type === 'symlink') {
      entry.resume()
      const path = `${prefix}/${memberPath(h.name, 'member path')}`
      try {
        ctx.links.push({ path, target: normalizeLinkTarget(path, h.linkname ?? '') })
      } catch (err: any) {
        throw new (err.code === 'PATH_ESCAPE' ? PathEscapeError : InvalidPathError)(`${where}: ${err.message as string}`, { cause: err })
      }
      continue
    }
    if (h.type === 'link') {
      entry.resume()
      const member = memberPath(h.name, 'member path')
      const to = memberPath(h.linkname ?? '', 'hard link target')
      yield {
        path: `${prefix}/${member}`,
        mode: (h.mode ?? 0o644) & 0o755,
        upstream: { ...upstream, member, get sha256 () { return upstream.sha256 }, get md5 () { return upstream.md5 }, get size () { return upstream.size } } as UpstreamFile,
        open: () => Readable.from([]),
        copyOf: `${prefix}/${to}`,
        source: `${rel} member ${member}`
      }
      continue
    }
    if (h.type !== 'file' && h.type !== 'contiguous-file') {
      entry.resume()
      throw new InvalidInputError(`${where} is a ${String(h.type)}, not a regular file, directory or link`)
    }
    const member = memberPath(h.name, 'member path')
    let consumed = false
    yield {
      path: normalizeManifestPath(`${prefix}/${member}`),
      mode: (h.mode ?? 0o644) & 0o755,
      upstream: { ...upstream, member, get sha256 () { return upstream.sha256 }, get md5 () { return upstream.md5 }, get size () { return upstream.size } } as UpstreamFile,
      open: () => { consumed = true; return entry as unknown as AsyncIterable<Uint8Array> },
      source: `${rel} member ${member}`
    }
    if (!consumed) entry.resume()
  }
}

async function * walkInput (input: ReleaseInput, ctx: WalkContext): AsyncGenerator<SourceFile> {
  for (const f of input.files) {
    ctx.opts.signal?.throwIfAborted()
    const rel = f.rel
    const compression = kindOf(rel, ctx.opts.keepCompressed)
    const upstream: UpstreamFile = { name: basename(rel), size: f.size, sha256: '', md5: '', compression }
    if (compression === 'tar' || compression === 'tar.gz') {
      yield * tarMembers(f, compression, upstream, ctx)
    } else if (compression === 'gzip') {
      yield {
        path: normalizeManifestPath(rel.replace(/\.gz$/i, '')),
        mode: f.mode,
        upstream,
        open: () => chain([readInput(f, ctx), hashing(upstream), createGunzip({ chunkSize: 256 * 1024 })]),
        source: rel
      }
    } else {
      yield {
        path: normalizeManifestPath(rel),
        mode: f.mode,
        upstream,
        open: () => chain([readInput(f, ctx), hashing(upstream)]),
        source: rel
      }
    }
  }
}

function newContext (opts: IngestOptions): WalkContext {
  return {
    opts,
    progress: opts.progress ?? { filesTotal: 0, bytesTotal: 0, filesRead: 0, bytesRead: 0, chunks: 0 },
    throttle: new Throttle(opts.readBytesPerSecond ?? 0),
    links: [],
    dirs: []
  }
}

/** The logical files of a release: sorted, decompressed, unpacked, with upstream provenance. */
export async function * walkRelease (dir: string, opts: IngestOptions = {}): AsyncGenerator<SourceFile> {
  yield * walkInput(await scanInput(dir), newContext(opts))
}

export interface BuildOptions extends IngestOptions {
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

/** Path claims of a release being built: the lab-side collision checks, with messages naming the inputs. */
class Claims {
  readonly #entries = new EntryPaths()
  readonly #sources = new Map<string, string>()

  claim (path: string, source: string, dir = false): void {
    const clash = this.#entries.add(path, dir)
    if (clash == null) { this.#sources.set(path, source); return }
    const other = this.#sources.get(path)
    throw new PathCollisionError(`${source} would be published as ${clash}${other != null ? ` (from ${other})` : ''}: labs refuse such a release; rename one of them${/\.gz$/i.test(source) ? ' or keep it compressed (--keep-compressed)' : ''}`)
  }
}

export async function buildRelease (dir: string, opts: BuildOptions): Promise<BuiltRelease> {
  const params = validateChunkerParams(opts.chunker ?? DEFAULT_CHUNKER)
  const input = await scanInput(dir)
  if (input.files.length === 0 && input.links.length === 0 && opts.allowEmpty !== true) {
    throw new EmptyReleaseError(`${dir} holds no file to publish (an unmounted mount point looks like this); publish an empty release only with --allow-empty`)
  }
  const ctx = newContext(opts)
  ctx.progress.filesTotal = input.files.length
  ctx.progress.bytesTotal = input.bytes
  opts.onScanned?.()
  const claims = new Claims()
  for (const l of input.links) claims.claim(l.path, `symlink ${l.path}`)
  const files: ManifestFile[] = []
  const byPath = new Map<string, ManifestFile>()
  const upstreams: UpstreamFile[] = []
  let chunks = 0
  let total = 0
  let linksSeen = 0
  for await (const src of walkInput(input, ctx)) {
    for (; linksSeen < ctx.links.length; linksSeen++) claims.claim(ctx.links[linksSeen].path, `symlink ${ctx.links[linksSeen].path}`)
    claims.claim(src.path, src.source)
    let file: ManifestFile
    if (src.copyOf != null) {
      const of = byPath.get(src.copyOf)
      if (of == null) throw new InvalidInputError(`${src.source} is a hard link to ${src.copyOf}, which is not an earlier regular file of the archive`)
      file = { path: src.path, size: of.size, mode: src.mode, chunks: of.chunks, chunkSizes: of.chunkSizes }
    } else {
      const digests: Uint8Array[] = []
      const sizes: number[] = []
      let size = 0
      for await (const chunk of chunkStream(src.open(), params)) {
        const digest = sha256(chunk)
        await opts.onChunk(digest, chunk)
        digests.push(digest)
        sizes.push(chunk.byteLength)
        size += chunk.byteLength
        ctx.progress.chunks++
      }
      const packed = new Uint8Array(digests.length * 32)
      digests.forEach((d, i) => packed.set(d, i * 32))
      file = { path: src.path, size, mode: src.mode, chunks: packed, chunkSizes: Uint32Array.from(sizes) }
    }
    upstreams.push(src.upstream)
    files.push(file)
    byPath.set(file.path, file)
    chunks += file.chunkSizes.length
    total += file.size
  }
  for (; linksSeen < ctx.links.length; linksSeen++) claims.claim(ctx.links[linksSeen].path, `symlink ${ctx.links[linksSeen].path}`)
  const links = [...input.links, ...ctx.links]
  if (files.length === 0 && links.length === 0 && opts.allowEmpty !== true) {
    throw new EmptyReleaseError(`${dir} holds no file to publish (only empty archives or directories); publish an empty release only with --allow-empty`)
  }
  // directories with nothing under them survive as `dirs`
  const parents = new Set<string>()
  const candidates = [...new Set([...input.dirs, ...ctx.dirs])]
  for (const p of [...files.map(f => f.path), ...links.map(l => l.path), ...candidates]) {
    const parts = p.split('/')
    for (let k = 1; k < parts.length; k++) parents.add(parts.slice(0, k).join('/'))
  }
  const dirs = candidates.filter(d => !parents.has(d)).sort()
  for (const d of dirs) claims.claim(d, `directory ${d}`, true)
  // upstream checksums are final only once each input (a whole archive, for tar members) was read
  files.forEach((f, i) => {
    const u = upstreams[i]
    f.upstream = { name: u.name, size: u.size, sha256: u.sha256, md5: u.md5, compression: u.compression }
    if (u.member !== undefined) f.upstream.member = u.member
  })
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  links.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const manifest: Manifest = {
    format: 1,
    dataset: opts.dataset,
    version: opts.version,
    chunker: { ...params },
    files,
    encodings: [],
    createdAt: opts.now ?? 0
  }
  if (links.length > 0) manifest.links = links
  if (dirs.length > 0) manifest.dirs = dirs
  manifest.format = manifestFormatFor(manifest)
  const bytes = encodeManifest(manifest)
  return { manifest, bytes, cid: manifestCid(bytes), stats: { files: files.length, chunks, bytes: total } }
}
