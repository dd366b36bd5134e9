// `herald export`: writes one release in the URL layout of the HTTP chunk path, so that any static web
// server, bucket or CDN serving DIR answers the same URLs as a heraldd:
//   DIR/ipfs/<cid>                              each chunk and delta object, as its raw block
//   DIR/ipfs/<manifestCid>                      the manifest block (dag-cbor)
//   DIR/herald/releases/<dataset>/<version>     the signed release record, as stored
// Each file is written to a temporary name and renamed, so a server never serves half a block; a file
// already there with the right size is kept (an export can be rerun to resume or to add a release).
// Every block is checked against its CID before it is written: an export never publishes bad bytes.
import { mkdir, rename, stat, writeFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { cidFromDigest, verifyDigest } from '../../protocol/cid.js'
import { DELTA_KIND } from '../../protocol/delta.js'
import { decodeManifest, manifestChunkIndex, manifestDeltaIndex } from '../../protocol/manifest.js'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { decodeSignedRelease } from '../../protocol/release.js'
import { HeraldError } from '../errors.js'
import type { Store } from '../../store/store.js'
import type { ExportResult } from '../types.js'

export async function exportRelease (store: Store, name: string, dir: string): Promise<ExportResult> {
  // under the store's fetch lease: a gc cannot delete the release's chunks halfway through the export
  return await store.withGcLease(async () => await exportLocked(store, name, dir))
}

async function exportLocked (store: Store, name: string, dir: string): Promise<ExportResult> {
  const started = performance.now()
  const { dataset, version } = parseReleaseName(name)
  if (!isAbsolute(dir)) throw new HeraldError('INVALID_PATH', `the export directory must be an absolute path, got ${JSON.stringify(dir)}`)
  const recordBytes = await store.getRelease(dataset, version)
  if (recordBytes == null) throw new HeraldError('RELEASE_NOT_FOUND', `${name} is not in the local store`)
  const signed = decodeSignedRelease(recordBytes)
  const manifestCid = signed.record.manifestCid
  const manifestBytes = await store.getManifest(manifestCid)
  if (manifestBytes == null) throw new HeraldError('RELEASE_NOT_FOUND', `the manifest of ${name} is not in the local store: fetch it first`)
  const manifest = decodeManifest(manifestBytes)
  const index = manifestChunkIndex(manifest)
  const deltas = manifestDeltaIndex(manifest, index, [DELTA_KIND])
  const blocks = join(dir, 'ipfs')
  await mkdir(blocks, { recursive: true })
  const result: ExportResult = {
    name: formatReleaseName(dataset, version),
    dir,
    manifestCid: manifestCid.toString(),
    chunks: 0,
    deltaObjects: 0,
    deltaObjectsMissing: 0,
    written: 0,
    kept: 0,
    bytesWritten: 0,
    seconds: 0
  }
  const seen = new Set<string>()
  const put = async (digest: Uint8Array, optional = false): Promise<void> => {
    const cid = cidFromDigest(digest).toString()
    if (seen.has(cid)) return
    const bytes = await store.getChunk(digest)
    if (bytes == null && optional) { result.deltaObjectsMissing++; return }
    seen.add(cid)
    if (bytes == null) throw new HeraldError('RELEASE_NOT_FOUND', `${name} is not complete here: chunk ${cid} is missing (fetch it first)`)
    if (!verifyDigest(digest, bytes)) throw new HeraldError('HASH_MISMATCH', `stored chunk ${cid} does not match its CID: run herald verify ${name}`)
    if (await writeBlock(join(blocks, cid), bytes)) { result.written++; result.bytesWritten += bytes.byteLength } else result.kept++
  }
  for (let i = 0; i < index.count; i++) await put(index.digestAt(i))
  result.chunks = seen.size
  // a node that fetched chunks rather than delta objects does not hold them: labs then take the chunks
  for (let k = 0; k < deltas.count; k++) await put(deltas.digestAt(k), true)
  result.deltaObjects = seen.size - result.chunks
  if (await writeBlock(join(blocks, manifestCid.toString()), manifestBytes)) { result.written++; result.bytesWritten += manifestBytes.byteLength } else result.kept++
  const recordDir = join(dir, 'herald', 'releases', dataset)
  await mkdir(recordDir, { recursive: true })
  // the record is rewritten every time: a newer signature (higher seq) of the same release replaces it
  await writeAtomic(join(recordDir, version), recordBytes)
  result.seconds = (performance.now() - started) / 1000
  return result
}

/** Write a content-addressed block unless a file of its size is already there; true when written. */
async function writeBlock (path: string, bytes: Uint8Array): Promise<boolean> {
  try {
    if ((await stat(path)).size === bytes.byteLength) return false
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw err
  }
  await writeAtomic(path, bytes)
  return true
}

async function writeAtomic (path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, bytes, { mode: 0o644 })
  await rename(tmp, path)
}
