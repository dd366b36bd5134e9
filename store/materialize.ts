// Materialization: a release's files are written into a staging directory next to their final place,
// fsynced, renamed into place, and only then does the dataset's `current` symlink switch (a symlink to a
// temporary name renamed over `current`, which is atomic). Nothing half-written is ever visible; the
// previous release stays until it is unpinned, so a rollback is one pointer switch.
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, open, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile, type FileHandle } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { digestHex, verifyDigest } from '../protocol/cid.js'
import { HashMismatchError } from '../protocol/errors.js'
import { encodeManifest, manifestCid, type Manifest } from '../protocol/manifest.js'
import { resolveInside } from '../protocol/paths.js'
import { DiskFullError, MissingChunkError } from './errors.js'
import type { Store } from './store.js'

const STAGING_PREFIX = '.staging-'

async function fsyncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try { await fh.sync() } finally { await fh.close() }
}

async function exists (p: string): Promise<boolean> {
  try { await stat(p); return true } catch { return false }
}

/** open file handles a staging directory keeps (a release may have many more files) */
const MAX_OPEN_FILES = 64

/**
 * A release being written into its staging directory. Chunks can be written as they arrive (`write`, with
 * bytes already verified against their digest), in any order; `finish` writes every chunk not written yet
 * from the store (verified as it is read), fsyncs, renames the directory into place and switches `current`.
 * Nothing in the staging directory is ever visible under the release's name; `abort` removes it.
 */
export class StagedRelease {
  readonly #store: Store
  readonly #manifest: Manifest
  readonly #datasetDir: string
  readonly #target: string
  readonly #marker: string
  readonly #cid: string
  readonly #root: string
  #staging: string | undefined
  /** digest hex → where the chunk goes: [file index, offset] pairs */
  #places = new Map<string, number[]>()
  #written = new Set<string>()
  #open = new Map<number, FileHandle>()
  /** writes run one after another (the handle cache may close a handle between two) */
  #chain: Promise<void> = Promise.resolve()
  #failure: unknown

  private constructor (store: Store, manifest: Manifest, root: string) {
    this.#store = store
    this.#manifest = manifest
    this.#root = root
    this.#datasetDir = resolveInside(root, manifest.dataset)
    this.#target = resolveInside(this.#datasetDir, manifest.version)
    this.#marker = join(this.#datasetDir, `.${manifest.version}.manifest`)
    this.#cid = manifestCid(encodeManifest(manifest)).toString()
  }

  /** Prepare the staging directory (every file created at its size), unless the release is already in place. */
  static async open (store: Store, manifest: Manifest, opts: { root: string }): Promise<StagedRelease> {
    const r = new StagedRelease(store, manifest, opts.root)
    await mkdir(r.#datasetDir, { recursive: true })
    // leftovers of an interrupted materialization of this version are never visible and are removed here
    for (const name of await readdir(r.#datasetDir)) {
      if (name.startsWith(`${STAGING_PREFIX}${manifest.version}-`) || name.startsWith(`.old-${manifest.version}-`)) await rm(join(r.#datasetDir, name), { recursive: true, force: true })
    }
    if ((await exists(r.#target)) && (await readFile(r.#marker, 'utf8').catch(() => '')).trim() === r.#cid) return r
    const staging = join(r.#datasetDir, `${STAGING_PREFIX}${manifest.version}-${randomBytes(4).toString('hex')}`)
    await mkdir(staging)
    r.#staging = staging
    try {
      for (const [n, file] of manifest.files.entries()) {
        const path = resolveInside(staging, file.path)
        await mkdir(dirname(path), { recursive: true })
        const fh = await open(path, 'wx', 0o600)
        try { await fh.truncate(file.size) } finally { await fh.close() }
        let offset = 0
        for (let i = 0; i < file.chunkSizes.length; i++) {
          const key = digestHex(file.chunks.subarray(i * 32, i * 32 + 32))
          let places = r.#places.get(key)
          if (places == null) { places = []; r.#places.set(key, places) }
          places.push(n, offset)
          offset += file.chunkSizes[i]
        }
      }
      // empty directories, then symlinks (nothing of the release lies inside a symlink: the decoder checks)
      for (const d of manifest.dirs ?? []) await mkdir(resolveInside(staging, d), { recursive: true })
      for (const link of manifest.links ?? []) {
        const path = resolveInside(staging, link.path)
        await mkdir(dirname(path), { recursive: true })
        await symlink(link.target, path)
      }
    } catch (err) {
      await r.abort()
      throw err
    }
    return r
  }

  async #handle (n: number): Promise<FileHandle> {
    let fh = this.#open.get(n)
    if (fh != null) return fh
    if (this.#open.size >= MAX_OPEN_FILES) {
      const [oldest, h] = this.#open.entries().next().value as [number, FileHandle]
      this.#open.delete(oldest)
      await h.close()
    }
    fh = await open(resolveInside(this.#staging as string, this.#manifest.files[n].path), 'r+')
    this.#open.set(n, fh)
    return fh
  }

  async #put (key: string, bytes: Uint8Array): Promise<void> {
    const places = this.#places.get(key)
    if (places == null || this.#written.has(key)) return
    this.#written.add(key)
    for (let k = 0; k < places.length; k += 2) {
      const fh = await this.#handle(places[k])
      await fh.write(bytes, 0, bytes.byteLength, places[k + 1])
    }
  }

  /** Write a chunk the caller has verified wherever the release holds it (a no-op once in place). */
  write (digest: Uint8Array, bytes: Uint8Array): void {
    if (this.#staging == null || this.#failure != null) return
    const key = digestHex(digest)
    this.#chain = this.#chain.then(async () => { if (this.#failure == null) await this.#put(key, bytes) }).catch(err => { this.#failure ??= err })
  }

  /** Write what is missing from the store, fsync, move into place and make the release `current`. */
  async finish (signal?: AbortSignal): Promise<string> {
    try {
      if (this.#staging != null) {
        await this.#chain
        if (this.#failure != null) throw this.#failure
        for (const [n, file] of this.#manifest.files.entries()) {
          signal?.throwIfAborted()
          for (let i = 0; i < file.chunkSizes.length; i++) {
            const digest = file.chunks.subarray(i * 32, i * 32 + 32)
            if (this.#written.has(digestHex(digest))) continue
            const bytes = await this.#store.getChunk(digest)
            if (bytes == null) throw new MissingChunkError(`chunk ${digestHex(digest)} of ${file.path} is not in the store`)
            if (!verifyDigest(digest, bytes)) throw new HashMismatchError(`stored chunk ${digestHex(digest)} of ${file.path} is corrupt`)
            await this.#put(digestHex(digest), bytes)
          }
          const fh = await this.#handle(n)
          await fh.chmod(file.mode & 0o755)
          await fh.sync()
          this.#open.delete(n)
          await fh.close()
        }
        await fsyncDir(this.#staging)
        if (await exists(this.#target)) {
          const old = join(this.#datasetDir, `.old-${this.#manifest.version}-${randomBytes(4).toString('hex')}`)
          await rename(this.#target, old)
          await rename(this.#staging, this.#target)
          await rm(old, { recursive: true, force: true })
        } else {
          await rename(this.#staging, this.#target)
        }
        this.#staging = undefined
        await writeFile(this.#marker, this.#cid + '\n')
        await fsyncDir(this.#datasetDir)
      }
      await switchCurrent(this.#root, this.#manifest.dataset, this.#manifest.version)
      await this.#store.setCurrent(this.#manifest.dataset, this.#manifest.version)
      return this.#target
    } catch (err: any) {
      await this.abort()
      if (err?.code === 'ENOSPC' || err?.code === 'EDQUOT') throw new DiskFullError(`disk full writing ${this.#manifest.dataset}@${this.#manifest.version} into place`, { cause: err })
      throw err
    }
  }

  /** Drop the staging directory (nothing of it was ever visible). */
  async abort (): Promise<void> {
    await this.#chain
    for (const fh of this.#open.values()) await fh.close().catch(() => {})
    this.#open.clear()
    if (this.#staging != null) await rm(this.#staging, { recursive: true, force: true })
    this.#staging = undefined
  }
}

/** Write a release under <root>/<dataset>/<version> and make it `current`. Returns the version directory. */
export async function materialize (store: Store, manifest: Manifest, opts: { root: string, signal?: AbortSignal }): Promise<string> {
  const staged = await StagedRelease.open(store, manifest, opts)
  return await staged.finish(opts.signal)
}

/** Point <root>/<dataset>/current at <version>, atomically. */
export async function switchCurrent (root: string, dataset: string, version: string): Promise<void> {
  const datasetDir = resolveInside(root, dataset)
  resolveInside(datasetDir, version)
  const tmp = join(datasetDir, `.current-${randomBytes(4).toString('hex')}`)
  await symlink(version, tmp)
  await rename(tmp, join(datasetDir, 'current'))
  await fsyncDir(datasetDir)
}

/**
 * Re-read a materialized release and check every chunk of every file against the manifest, each file's
 * executable bits, each symlink's target and each empty directory. `filesChecked` counts all of them.
 */
export async function verifyMaterialized (_store: Store, manifest: Manifest, root: string): Promise<{ filesChecked: number, badFiles: string[] }> {
  const dir = resolveInside(resolveInside(root, manifest.dataset), manifest.version)
  const badFiles: string[] = []
  for (const link of manifest.links ?? []) {
    const path = resolveInside(dir, link.path)
    const ok = await lstat(path).then(async st => st.isSymbolicLink() && await readlink(path) === link.target, () => false)
    if (!ok) badFiles.push(link.path)
  }
  for (const d of manifest.dirs ?? []) {
    const ok = await lstat(resolveInside(dir, d)).then(st => st.isDirectory(), () => false)
    if (!ok) badFiles.push(d)
  }
  for (const file of manifest.files) {
    const path = resolveInside(dir, file.path)
    let ok = true
    try {
      const lst = await lstat(path)
      if (!lst.isFile() || (lst.mode & 0o111) !== (file.mode & 0o111)) ok = false
      const fh = await open(path, 'r')
      try {
        if ((await fh.stat()).size !== file.size) ok = false
        let offset = 0
        for (let i = 0; ok && i < file.chunkSizes.length; i++) {
          const buf = new Uint8Array(file.chunkSizes[i])
          const r = await fh.read(buf, 0, buf.byteLength, offset)
          offset += buf.byteLength
          if (r.bytesRead !== buf.byteLength || !verifyDigest(file.chunks.subarray(i * 32, i * 32 + 32), buf)) ok = false
        }
      } finally {
        await fh.close()
      }
    } catch {
      ok = false
    }
    if (!ok) badFiles.push(file.path)
  }
  return { filesChecked: manifest.files.length + (manifest.links?.length ?? 0) + (manifest.dirs?.length ?? 0), badFiles }
}
