// The release registry: the have-ledger (a ReleaseSwarm) of every release this node holds or fetches, keyed
// by manifest CID. It is the have-source of the have protocol (bitmap, then updates), and the one place
// that knows which stored entries a release has. A ledger starts from the have-bitmap the store keeps
// current with every chunk stored, dropped or collected (store/have.ts), so nothing is looked up per chunk:
// at start the registry only learns which releases are held (one record each); a held release's manifest
// is decoded and its ledger opened the first time a fetch, a query or a peer's have request needs it.
import { parseCid, digestHex } from '../../protocol/cid.js'
import { decodeManifest, manifestChunkIndex, manifestDeltaIndex, type ChunkIndex, type DeltaIndex, type Manifest } from '../../protocol/manifest.js'
import { DELTA_KIND } from '../../protocol/delta.js'
import { ReleaseSwarm } from '../fetch/swarm.js'
import type { HeraldStore } from '../../store/interface.js'
import type { Log } from '../log.js'
import type { CID } from 'multiformats/cid'

export interface ReleaseRegistryInit {
  store: HeraldStore
  log: Log
}

/** What the have protocol serves: a release's local bitmap, and its updates. */
export interface HaveSource {
  getHave: (cid: CID) => Promise<{ bitmap: Uint8Array, count: number } | undefined>
  subscribe: (cid: CID, listener: (indices: number[], complete: boolean) => void) => () => void
}

export class ReleaseRegistry implements HaveSource {
  readonly #store: HeraldStore
  readonly #log: Log
  readonly #swarms = new Map<string, ReleaseSwarm>()
  /** held releases not opened yet, by manifest CID */
  readonly #held = new Map<string, CID>()
  readonly #opening = new Map<string, Promise<ReleaseSwarm | undefined>>()

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
    const index = manifestChunkIndex(manifest)
    const swarm = await this.#build(cid, index, manifestDeltaIndex(manifest, index, [DELTA_KIND]))
    // two callers may have built it at once: the first one kept wins
    const first = this.#swarms.get(key) ?? swarm
    this.#swarms.set(key, first)
    this.#held.delete(key)
    return first
  }

  /** Rebuild a release's ledger from the store (after chunks reached it by another way than a fetch). */
  async reopen (cid: CID, manifest: Manifest): Promise<ReleaseSwarm> {
    this.#swarms.delete(cid.toString())
    return await this.open(cid, manifest)
  }

  /**
   * Learn which releases the store holds (one record each, no manifest decoded, nothing read per chunk);
   * their ledgers open when first needed. Returns their manifest CIDs.
   */
  async loadHeld (): Promise<CID[]> {
    const loaded: CID[] = []
    for (const r of await this.#store.listReleases()) {
      try {
        const cid = parseCid(r.manifestCid)
        if (!this.#swarms.has(cid.toString())) this.#held.set(cid.toString(), cid)
        loaded.push(cid)
      } catch (err: any) {
        this.#log.warn({ release: `${r.dataset}@${r.version}`, err: err.message }, 'cannot load release')
      }
    }
    return loaded
  }

  /** The ledger of a release, opening a held one from the store when it is not open yet. */
  async ledger (cid: CID): Promise<ReleaseSwarm | undefined> {
    const key = cid.toString()
    const open = this.#swarms.get(key)
    if (open != null || !this.#held.has(key)) return open
    let opening = this.#opening.get(key)
    if (opening == null) {
      opening = (async () => {
        try {
          const manifest = await this.manifest(cid)
          return manifest == null ? undefined : await this.open(cid, manifest)
        } catch (err: any) {
          this.#log.warn({ manifest: key, err: err.message }, 'cannot open a held release')
          return undefined
        } finally {
          this.#opening.delete(key)
        }
      })()
      this.#opening.set(key, opening)
    }
    return await opening
  }

  /** After a gc: every open ledger says again what the store holds (callers hold the GC lease exclusively). */
  async refresh (): Promise<void> {
    for (const [key, swarm] of this.#swarms) {
      this.#swarms.set(key, await this.#build(swarm.manifestCid, swarm.index, swarm.deltas))
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

  /**
   * A ledger from the store's have-bitmap of the release, which the store keeps current from now on; the
   * first time, tracking reads the index once for each entry (then never again, across restarts).
   */
  async #build (cid: CID, index: ChunkIndex, deltas: DeltaIndex): Promise<ReleaseSwarm> {
    const entries = entryDigests(index.digests, deltas.digests)
    let have = await this.#store.getHave(cid)
    if (have == null || have.state.tracked < have.state.entries || have.state.entries !== index.count + deltas.count) {
      await this.#store.trackHave(cid, entries, index.count)
      have = await this.#store.getHave(cid)
    }
    return new ReleaseSwarm(cid, index, have?.bitmap ?? await this.#store.hasChunks(entries), deltas)
  }

  /** A ledger that is not registered nor tracked (a plan looks at a release it may never fetch). */
  async detached (cid: CID, manifest: Manifest): Promise<ReleaseSwarm> {
    const index = manifestChunkIndex(manifest)
    const deltas = manifestDeltaIndex(manifest, index, [DELTA_KIND])
    return new ReleaseSwarm(cid, index, await this.#store.hasChunks(entryDigests(index.digests, deltas.digests)), deltas)
  }

  async getHave (cid: CID): Promise<{ bitmap: Uint8Array, count: number } | undefined> {
    const swarm = await this.ledger(cid)
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
export async function repin (store: HeraldStore, dataset: string, version: string, digests: Uint8Array): Promise<void> {
  await store.unpin(dataset, version)
  await store.pin(dataset, version, digests)
}
