// The release registry: the have-ledger (a ReleaseSwarm) of every release this node holds or fetches, keyed
// by manifest CID. It is the have-source of the have protocol (bitmap, then updates), and the one place
// that knows which stored entries a release has: loaded at start, refreshed after a gc, updated as chunks
// arrive or are quarantined.
import { parseCid, digestHex } from '../../protocol/cid.js'
import { decodeManifest, manifestChunkIndex, manifestDeltaIndex, type Manifest } from '../../protocol/manifest.js'
import { DELTA_KIND } from '../../protocol/delta.js'
import { ReleaseSwarm } from '../fetch/swarm.js'
import type { Store } from '../../store/store.js'
import type { Log } from '../log.js'
import type { CID } from 'multiformats/cid'

export interface ReleaseRegistryInit {
  store: Store
  log: Log
}

/** What the have protocol serves: a release's local bitmap, and its updates. */
export interface HaveSource {
  getHave: (cid: CID) => { bitmap: Uint8Array, count: number } | undefined
  subscribe: (cid: CID, listener: (indices: number[], complete: boolean) => void) => () => void
}

export class ReleaseRegistry implements HaveSource {
  readonly #store: Store
  readonly #log: Log
  readonly #swarms = new Map<string, ReleaseSwarm>()

  constructor (init: ReleaseRegistryInit) {
    this.#store = init.store
    this.#log = init.log
  }

  get (cid: CID): ReleaseSwarm | undefined { return this.#swarms.get(cid.toString()) }

  values (): IterableIterator<ReleaseSwarm> { return this.#swarms.values() }

  /** A manifest from the local store, decoded (it was verified when stored). */
  async manifest (cid: CID): Promise<Manifest | undefined> {
    const bytes = await this.#store.getManifest(cid)
    return bytes == null ? undefined : decodeManifest(bytes)
  }

  /** The ledger of a release, built from what the store holds the first time it is asked for. */
  async open (cid: CID, manifest: Manifest): Promise<ReleaseSwarm> {
    const key = cid.toString()
    const known = this.#swarms.get(key)
    if (known != null) return known
    const swarm = await this.#build(cid, manifest)
    // two callers may have built it at once: the first one kept wins
    const first = this.#swarms.get(key) ?? swarm
    this.#swarms.set(key, first)
    return first
  }

  /** Rebuild a release's ledger from the store (after chunks reached it by another way than a fetch). */
  async reopen (cid: CID, manifest: Manifest): Promise<ReleaseSwarm> {
    this.#swarms.delete(cid.toString())
    return await this.open(cid, manifest)
  }

  /** Open the ledgers of the releases in the store; returns the manifest CIDs loaded. */
  async loadHeld (): Promise<CID[]> {
    const loaded: CID[] = []
    for (const r of await this.#store.listReleases()) {
      try {
        const cid = parseCid(r.manifestCid)
        const manifest = await this.manifest(cid)
        if (manifest == null) continue
        await this.open(cid, manifest)
        loaded.push(cid)
      } catch (err: any) {
        this.#log.warn({ release: `${r.dataset}@${r.version}`, err: err.message }, 'cannot load release')
      }
    }
    return loaded
  }

  /** After a gc: every ledger says again what the store holds (callers hold the GC lease exclusively). */
  async refresh (): Promise<void> {
    for (const [key, swarm] of this.#swarms) {
      const have = await this.#store.hasChunks(entryDigests(swarm.index.digests, swarm.deltas.digests))
      this.#swarms.set(key, new ReleaseSwarm(swarm.manifestCid, swarm.index, have, swarm.deltas))
    }
  }

  /** A stored entry was dropped (quarantined): no ledger may claim it any more. */
  unmarkEverywhere (digest: Uint8Array): void {
    const hex = digestHex(digest)
    for (const swarm of this.#swarms.values()) {
      for (let e = 0; e < swarm.entries; e++) {
        if (swarm.hasLocal(e) && digestHex(swarm.digestAt(e)) === hex) swarm.unmarkHave(e)
      }
    }
  }

  /** A peer went away: what it held is no longer a source. */
  removeRemote (peerId: string): void {
    for (const swarm of this.#swarms.values()) swarm.removeRemote(peerId)
  }

  /** A ledger built from the store, not registered (plans look without opening a swarm). */
  async #build (cid: CID, manifest: Manifest): Promise<ReleaseSwarm> {
    const index = manifestChunkIndex(manifest)
    const deltas = manifestDeltaIndex(manifest, index, [DELTA_KIND])
    const have = await this.#store.hasChunks(entryDigests(index.digests, deltas.digests))
    return new ReleaseSwarm(cid, index, have, deltas)
  }

  async detached (cid: CID, manifest: Manifest): Promise<ReleaseSwarm> { return await this.#build(cid, manifest) }

  getHave (cid: CID): { bitmap: Uint8Array, count: number } | undefined {
    const swarm = this.#swarms.get(cid.toString())
    return swarm == null ? undefined : { bitmap: swarm.have, count: swarm.entries }
  }

  subscribe (cid: CID, listener: (indices: number[], complete: boolean) => void): () => void {
    return this.#swarms.get(cid.toString())?.subscribe(listener) ?? (() => {})
  }
}

/** The digests of a release's have-entries: its chunks, then its delta objects. */
export function entryDigests (chunks: Uint8Array, objects: Uint8Array): Uint8Array {
  if (objects.byteLength === 0) return chunks
  const out = new Uint8Array(chunks.byteLength + objects.byteLength)
  out.set(chunks)
  out.set(objects, chunks.byteLength)
  return out
}

/** The entry digests a pin of this release must keep: its chunks and its delta objects. */
export function releaseEntryDigests (manifest: Manifest): Uint8Array {
  const index = manifestChunkIndex(manifest)
  return entryDigests(index.digests, manifestDeltaIndex(manifest, index, [DELTA_KIND]).digests)
}

/**
 * Pin a release to exactly these chunks. A release re-published under the same name (higher seq) has
 * other chunks than the pin an older record left, so the old pin is replaced. Callers hold the GC lease,
 * so a gc cannot run between the two steps.
 */
export async function repin (store: Store, dataset: string, version: string, digests: Uint8Array): Promise<void> {
  await store.unpin(dataset, version)
  await store.pin(dataset, version, digests)
}
