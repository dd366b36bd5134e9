// The receive pipeline: every entry a fetch receives goes through here, once.
//   chunk:        check the bytes against the CID → store (the zstd frame they came in, if any) → staging files
//   delta object: check it against its CID → rebuild its run of chunks from held bases → check each against
//                 its CID → store them → staging files → store the object itself last
// Every byte is hashed here exactly once; the store is told so and does not hash again.
// Outcomes are typed: HASH_MISMATCH (bad bytes: the sender's fault), DELTA_FAILED (an intact object that
// does not rebuild its chunks: fetch the chunks instead), anything else (DISK_FULL, STORE_CLOSED, ...) is a
// local failure that ends the fetch.
import { digestHex, verifyDigest } from '../../protocol/cid.js'
import { HashMismatchError } from '../../protocol/errors.js'
import { compressChunk } from '../../protocol/encoding/compression.js'
import { decodeDelta, MAX_DELTA_BASE_BYTES } from '../../protocol/delta.js'
import { DeltaFailedError } from '../fetch/scheduler.js'
import type { HeraldStore } from '../../store/interface.js'
import type { StagedRelease } from '../../store/materialize.js'
import type { ReleaseSwarm } from '../fetch/swarm.js'
import type { CID } from 'multiformats/cid'

/** the pipeline has checked the bytes it stores */
const VERIFIED = { verified: true }

export class ReceivePipeline {
  readonly #store: HeraldStore
  /** per manifest CID: the staged releases that received chunks are also written into */
  readonly #staged = new Map<string, Set<StagedRelease>>()

  constructor (init: { store: HeraldStore }) {
    this.#store = init.store
  }

  /** From now on, chunks of this release are also written into `staged` (until detached). */
  attach (cid: CID, staged: StagedRelease): void {
    const key = cid.toString()
    const writers = this.#staged.get(key) ?? new Set()
    this.#staged.set(key, writers.add(staged))
  }

  detach (cid: CID, staged: StagedRelease): void {
    const key = cid.toString()
    const writers = this.#staged.get(key)
    writers?.delete(staged)
    if (writers?.size === 0) this.#staged.delete(key)
  }

  /**
   * Take in a received entry of `swarm`: a chunk, or a delta object and the run of chunks it rebuilds.
   * Returns the chunks it stored (the caller marks them held).
   */
  async receive (swarm: ReleaseSwarm, e: number, digest: Uint8Array, bytes: Uint8Array, frame?: Uint8Array): Promise<number[]> {
    if (!verifyDigest(digest, bytes)) throw new HashMismatchError(`received bytes do not hash to ${digestHex(digest)}`)
    if (!swarm.isObject(e)) {
      await this.#storeChunk(swarm, e, digest, bytes, frame)
      return [e]
    }
    const targets = swarm.targetsOf(e)
    const stored: number[] = []
    if (targets.some(i => !swarm.hasLocal(i))) {
      const chunks = await this.#rebuild(swarm, e, bytes)
      for (const [n, i] of targets.entries()) {
        if (swarm.hasLocal(i)) continue
        await this.#storeChunk(swarm, i, swarm.index.digestAt(i), chunks[n])
        stored.push(i)
      }
    }
    // the object is stored after the chunks it rebuilt: a fetch interrupted in between finds the chunks
    // (and fetches the object again only if it still needs it), never an object without its chunks.
    // A delta object is itself zstd: kept as it came.
    await this.#store.putChunk(digest, bytes, undefined, VERIFIED)
    swarm.markHave(e)
    return stored
  }

  /** The chunks a delta object rebuilds, each checked against its CID before any is stored. */
  async #rebuild (swarm: ReleaseSwarm, e: number, object: Uint8Array): Promise<Uint8Array[]> {
    const targets = swarm.targetsOf(e)
    const k = e - swarm.index.count
    const bases: Uint8Array[] = []
    let baseBytes = 0
    for (const b of swarm.deltas.bases[k]) {
      const data = await this.#store.getChunk(b)
      if (data == null) throw new DeltaFailedError('a base chunk of the delta is no longer in the store')
      baseBytes += data.byteLength
      if (baseBytes > MAX_DELTA_BASE_BYTES) throw new DeltaFailedError(`the delta's bases exceed ${MAX_DELTA_BASE_BYTES} bytes`)
      bases.push(data)
    }
    let size = 0
    for (const i of targets) size += swarm.index.sizes[i]
    let run: Uint8Array
    try {
      run = decodeDelta(object, bases, size)
    } catch (err: any) {
      throw new DeltaFailedError(err.message, { cause: err })
    }
    const chunks: Uint8Array[] = []
    let at = 0
    for (const i of targets) {
      const chunk = run.subarray(at, at + swarm.index.sizes[i])
      at += chunk.byteLength
      if (!verifyDigest(swarm.index.digestAt(i), chunk)) throw new DeltaFailedError('the delta object rebuilt bytes that do not match the chunk')
      chunks.push(chunk)
    }
    return chunks
  }

  /**
   * Store a chunk in the form the chunk protocol serves: the zstd frame as received, or compressed here when
   * the manifest says compression pays for it (the publisher measured each chunk's wire size); then write it
   * into the release's staging files, so that materializing need not read it back.
   */
  async #storeChunk (swarm: ReleaseSwarm, i: number, digest: Uint8Array, bytes: Uint8Array, frame?: Uint8Array): Promise<void> {
    const wire = swarm.index.wireSizes?.[i]
    if (frame == null && wire != null && wire < bytes.byteLength) frame = compressChunk(bytes)
    await this.#store.putChunk(digest, bytes, frame, VERIFIED)
    for (const staged of this.#staged.get(swarm.manifestCid.toString()) ?? []) staged.write(digest, bytes)
  }
}
