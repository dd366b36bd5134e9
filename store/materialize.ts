// Materialization: a release's files are written into a staging directory next to their final place,
// fsynced, renamed into place, and only then does the dataset's `current` symlink switch (a symlink to a
// temporary name renamed over `current`, which is atomic). Nothing half-written is ever visible; the
// previous release stays until it is unpinned, so a rollback is one pointer switch.
import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { digestHex, verifyDigest } from '../protocol/cid.js'
import { HashMismatchError } from '../protocol/errors.js'
import { encodeManifest, manifestCid, type Manifest } from '../protocol/manifest.js'
import { resolveInside } from '../protocol/paths.js'
import { MissingChunkError } from './errors.js'
import type { Store } from './store.js'

const STAGING_PREFIX = '.staging-'

async function fsyncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try { await fh.sync() } finally { await fh.close() }
}

async function exists (p: string): Promise<boolean> {
  try { await stat(p); return true } catch { return false }
}

/** Write a release under <root>/<dataset>/<version> and make it `current`. Returns the version directory. */
export async function materialize (store: Store, manifest: Manifest, opts: { root: string, signal?: AbortSignal }): Promise<string> {
  const datasetDir = resolveInside(opts.root, manifest.dataset)
  const target = resolveInside(datasetDir, manifest.version)
  const marker = join(datasetDir, `.${manifest.version}.manifest`)
  const cid = manifestCid(encodeManifest(manifest)).toString()
  await mkdir(datasetDir, { recursive: true })
  // leftovers of an interrupted materialization are never visible and are removed here
  for (const name of await readdir(datasetDir)) {
    if (name.startsWith(STAGING_PREFIX) || name.startsWith('.old-')) await rm(join(datasetDir, name), { recursive: true, force: true })
  }
  const already = (await exists(target)) && (await readFile(marker, 'utf8').catch(() => '')).trim() === cid
  if (!already) {
    const staging = join(datasetDir, `${STAGING_PREFIX}${manifest.version}-${randomBytes(4).toString('hex')}`)
    await mkdir(staging)
    try {
      for (const file of manifest.files) {
        opts.signal?.throwIfAborted()
        const path = resolveInside(staging, file.path)
        await mkdir(dirname(path), { recursive: true })
        const fh = await open(path, 'wx', 0o600)
        try {
          for (let i = 0; i < file.chunkSizes.length; i++) {
            const digest = file.chunks.subarray(i * 32, i * 32 + 32)
            const bytes = await store.getChunk(digest)
            if (bytes == null) throw new MissingChunkError(`chunk ${digestHex(digest)} of ${file.path} is not in the store`)
            if (!verifyDigest(digest, bytes)) throw new HashMismatchError(`stored chunk ${digestHex(digest)} of ${file.path} is corrupt`)
            await fh.write(bytes)
          }
          await fh.chmod(file.mode & 0o755)
          await fh.sync()
        } finally {
          await fh.close()
        }
      }
      await fsyncDir(staging)
      if (await exists(target)) {
        const old = join(datasetDir, `.old-${manifest.version}-${randomBytes(4).toString('hex')}`)
        await rename(target, old)
        await rename(staging, target)
        await rm(old, { recursive: true, force: true })
      } else {
        await rename(staging, target)
      }
      await writeFile(marker, cid + '\n')
      await fsyncDir(datasetDir)
    } catch (err) {
      await rm(staging, { recursive: true, force: true })
      throw err
    }
  }
  await switchCurrent(opts.root, manifest.dataset, manifest.version)
  await store.setCurrent(manifest.dataset, manifest.version)
  return target
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

/** Re-read a materialized release and check every chunk of every file against the manifest. */
export async function verifyMaterialized (_store: Store, manifest: Manifest, root: string): Promise<{ filesChecked: number, badFiles: string[] }> {
  const dir = resolveInside(resolveInside(root, manifest.dataset), manifest.version)
  const badFiles: string[] = []
  for (const file of manifest.files) {
    const path = resolveInside(dir, file.path)
    let ok = true
    try {
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
  return { filesChecked: manifest.files.length, badFiles }
}
