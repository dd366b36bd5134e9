// Import: chunk a directory already on disk (a release downloaded by FTP or rsync) into the store. When a
// peer has the named release's record, its manifest gives the chunker, and the release is pinned so that gc
// keeps what was imported; the next fetch of it, or of a later release, moves only what is missing.
import { stat } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { importDirectory } from '../../store/import.js'
import { codeOf, HeraldError } from '../errors.js'
import { entryDigests, repin, type ReleaseRegistry } from './release-registry.js'
import type { Manifest } from '../../protocol/manifest.js'
import type { Store } from '../../store/store.js'
import type { RwLock } from '../../store/rwlock.js'
import type { Announcer } from '../announce/announcer.js'
import type { Log } from '../log.js'
import type { ImportRequest, ImportResult } from '../types.js'
import type { Resolver } from './resolver.js'
import type { CID } from 'multiformats/cid'

export interface ImportInit {
  store: Store
  registry: ReleaseRegistry
  resolver: Resolver
  gcLease: RwLock
  announcer: Pick<Announcer, 'provideManifest'>
  log: Log
}

export async function importRelease (init: ImportInit, req: ImportRequest): Promise<ImportResult> {
  const { store, registry, log } = init
  const { dataset, version } = parseReleaseName(req.name)
  const name = formatReleaseName(dataset, version)
  if (typeof req.dir !== 'string' || !isAbsolute(req.dir)) throw new HeraldError('INVALID_PATH', 'import needs an absolute directory path')
  const info = await stat(req.dir).catch((err: any) => { throw new HeraldError('INVALID_PATH', `cannot read ${req.dir}: ${err.code ?? err.message}`) })
  if (!info.isDirectory()) throw new HeraldError('INVALID_PATH', `${req.dir} is not a directory`)
  const started = performance.now()
  let known: { cid: CID, manifest: Manifest } | undefined
  try {
    known = await init.resolver.resolve(dataset, version, AbortSignal.timeout(30_000))
  } catch (err: any) {
    if (!['RELEASE_NOT_FOUND', 'NO_SOURCE'].includes(codeOf(err) ?? '')) throw err
    log.warn({ release: name, err: err.message }, 'import: no record of the release found; chunks are imported unpinned (a gc before the next fetch deletes them)')
  }
  return await init.gcLease.read(async () => {
    const r = await importDirectory(store, req.dir, known?.manifest.chunker)
    const out: ImportResult = { name, ...r, pinned: false, seconds: 0 }
    if (known != null) {
      // the ledger of this release must now say what the store holds
      const swarm = await registry.reopen(known.cid, known.manifest)
      await repin(store, dataset, version, entryDigests(swarm.index.digests, swarm.deltas.digests))
      out.pinned = true
      out.releaseChunks = swarm.index.count
      out.releaseChunksHeld = swarm.held
      init.announcer.provideManifest(known.cid)
    }
    out.seconds = (performance.now() - started) / 1000
    log.info({ release: name, files: r.files, chunks: r.chunks, newChunks: r.newChunks, pinned: out.pinned }, 'imported')
    return out
  })
}
