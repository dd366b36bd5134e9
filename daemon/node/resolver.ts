// The resolver: the newest verified release record for a name, and its manifest, from the local store,
// the connected peers and the seed. Trust is checked here (scoped to datasets); a peer whose answer does not
// decode or verify is penalised.
import { setMaxListeners } from 'node:events'
import { decodeSignedRelease, verifyRelease, type SignedRelease, type TrustedKey } from '../../protocol/release.js'
import { verifyManifest, type Manifest } from '../../protocol/manifest.js'
import { HeraldError } from '../errors.js'
import { manifestFromOrigins, recordsFromOrigins } from '../fetch/origin-records.js'
import { parseCid } from '../../protocol/cid.js'
import type { ManifestFetchOptions, ReleaseExchange } from '../../protocol/exchange/release-exchange.js'
import type { Store } from '../../store/store.js'
import type { HeraldConfig } from '../config.js'
import type { PeerStats } from '../fetch/peer-stats.js'
import type { Log } from '../log.js'
import type { PeerManager, PeerPenalties } from './peer-manager.js'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const RESOLVE_TIMEOUT_MS = 5_000
/** rounds over the peers when fetching a manifest, and the pause before the second (doubling after) */
const MANIFEST_ROUNDS = 3
const MANIFEST_RETRY_MS = 1_000
/** error codes that are a peer's doing when its answer fails to decode or verify */
const PEER_FAULTS = new Set(['MALFORMED_MESSAGE', 'INVALID_RECORD', 'BAD_SIGNATURE', 'INVALID_MANIFEST', 'HASH_MISMATCH'])

export interface ResolverInit {
  store: Store
  releases: ReleaseExchange
  /** the peers connected now */
  getPeers: () => PeerId[]
  peers: Pick<PeerManager, 'ensureConnected'>
  penalties: PeerPenalties
  stats: PeerStats
  trusted: TrustedKey[]
  limits: Pick<HeraldConfig['limits'], 'maxManifestBytes' | 'maxManifestChunks'>
  /** static origins (config `origins`): asked for records beside the peers, for manifests after them */
  origins: string[]
  /** a verified record this resolver kept (release announcements learn from it) */
  onRecord?: (bytes: Uint8Array) => void
  log: Log
}

export interface Resolved {
  signed: SignedRelease
  cid: CID
  manifest: Manifest
}

export class Resolver {
  readonly #init: ResolverInit

  constructor (init: ResolverInit) {
    this.#init = init
  }

  /** The record of `dataset@version` and the manifest it names, both verified, the manifest named alike. */
  async resolve (dataset: string, version: string, signal: AbortSignal, onWire?: (bytes: number, delta: boolean) => void): Promise<Resolved> {
    const { signed, from } = await this.record(dataset, version, signal)
    const cid = signed.record.manifestCid
    const manifest = await this.manifest(cid, from, signal, { base: await this.baseFor(dataset, cid), onWire })
    checkManifestName(manifest, dataset, version)
    return { signed, cid, manifest }
  }

  /** The newest verified record for a release: local store, connected peers and the seed all asked. */
  async record (dataset: string, version: string, signal: AbortSignal): Promise<{ signed: SignedRelease, from?: PeerId }> {
    const { store, releases, trusted, log } = this.#init
    let best: { signed: SignedRelease, from?: PeerId } | undefined
    const local = await store.getRelease(dataset, version)
    if (local != null) best = { signed: decodeSignedRelease(local) }
    let lastError: unknown
    await this.#init.peers.ensureConnected(signal)
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(RESOLVE_TIMEOUT_MS)])
    const peers = this.#init.getPeers()
    // one listener per peer asked at once, for as long as the answers take: a bounded fan-out, not a leak
    setMaxListeners(peers.length + 10, timeout)
    await Promise.all(peers.map(async peer => {
      try {
        const bytes = await releases.fetchRelease(peer, dataset, version, { signal: timeout })
        if (bytes == null) return
        const signed = decodeSignedRelease(bytes)
        if (signed.record.dataset !== dataset || signed.record.version !== version) throw new HeraldError('INVALID_RECORD', 'peer answered with a record for another release')
        await verifyRelease(signed, trusted)
        if (best == null || signed.record.seq > best.signed.record.seq) best = { signed, from: peer }
      } catch (err: any) {
        lastError = err
        // a malformed, forged or misnamed record counts against the peer (an untrusted signer need not be its doing)
        if (PEER_FAULTS.has(err?.code)) this.#init.penalties.penalize(peer, 'bad_record')
        log.debug({ peer: peer.toString(), err: err.message }, 'release record from peer refused')
      }
    }))
    // static origins (config `origins`): the exported record, verified like a peer's; the newest seq wins
    for (const signed of await recordsFromOrigins(this.#init.origins, dataset, version, trusted, timeout)) if (best == null || signed.record.seq > best.signed.record.seq) best = { signed }
    if (best == null) {
      if (lastError != null && ['UNTRUSTED_PUBLISHER', 'BAD_SIGNATURE', 'INVALID_RECORD'].includes((lastError as any).code)) throw lastError
      throw new HeraldError('RELEASE_NOT_FOUND', `no peer has a release record for ${dataset}@${version} (asked ${peers.length} peer(s))`)
    }
    await verifyRelease(best.signed, trusted)
    const r = best.signed.record
    await store.putRelease({ dataset, version, seq: r.seq, manifestCid: r.manifestCid, publishedAt: r.publishedAt }, best.signed.bytes)
    this.#init.onRecord?.(best.signed.bytes)
    return best
  }

  /**
   * The manifest a new one of `dataset` is best sent as a delta against: the current release's, else the
   * newest held release's (a manifest the store holds, other than `cid`).
   */
  async baseFor (dataset: string, cid: CID): Promise<{ cid: CID, bytes: Uint8Array } | undefined> {
    const { store } = this.#init
    const current = await store.getCurrent(dataset)
    const held = (await store.listReleases()).filter(r => r.dataset === dataset)
    held.sort((a, b) => Number(b.version === current) - Number(a.version === current) || b.publishedAt - a.publishedAt)
    for (const r of held) {
      const base = parseCid(r.manifestCid)
      if (base.equals(cid)) continue
      const bytes = await store.getManifest(base)
      if (bytes != null) return { cid: base, bytes }
    }
    return undefined
  }

  /**
   * A manifest by CID: the local store, else `from` first, then every usable peer, a few rounds. With a
   * `base` the peers may send it as a delta against that manifest; the result is checked against `cid`.
   */
  async manifest (cid: CID, from: PeerId | undefined, signal: AbortSignal, opts: Pick<ManifestFetchOptions, 'base' | 'onWire'> = {}): Promise<Manifest> {
    const { store, releases, stats, limits, log } = this.#init
    const local = await store.getManifest(cid)
    if (local != null) return verifyManifest(cid, local)
    let lastError: unknown
    // a busy peer may time out once: every peer is asked again, after a pause, up to MANIFEST_ROUNDS times
    for (let round = 0; round < MANIFEST_ROUNDS; round++) {
      if (round > 0) await abortableDelay(MANIFEST_RETRY_MS * 2 ** (round - 1), signal)
      const peers = this.#init.getPeers().filter(p => stats.usable(p.toString()))
      const order = from != null ? [from, ...peers.filter(p => !p.equals(from))] : peers
      for (const peer of order) {
        try {
          const bytes = await releases.fetchManifest(peer, cid, { signal, base: opts.base, onWire: opts.onWire })
          if (bytes == null) continue
          const manifest = verifyManifest(cid, bytes, { maxBytes: limits.maxManifestBytes, maxChunks: limits.maxManifestChunks })
          await store.putManifest(cid, bytes)
          return manifest
        } catch (err: any) {
          if (signal.aborted) throw err
          lastError = err
          // bytes that are not the manifest, or a malformed frame, count against the peer
          if (PEER_FAULTS.has(err?.code)) this.#init.penalties.penalize(peer, 'bad_manifest')
          log.warn({ peer: peer.toString(), round, err: err.message }, 'manifest from peer refused')
        }
      }
      // then the static origins (config `origins`): the exported manifest block, checked against its CID
      const fromOrigin = await manifestFromOrigins(this.#init.origins, cid, limits, signal)
      if (fromOrigin != null) { await store.putManifest(cid, fromOrigin.bytes); return fromOrigin.manifest }
    }
    if (lastError != null && (lastError as any).code != null) throw lastError
    throw new HeraldError('NO_SOURCE', `no peer could provide manifest ${cid.toString()}`)
  }
}

/**
 * A record names the release it signs; the manifest it points at must name the same one, or a record for
 * one name could make a lab write another release's directory.
 */
export function checkManifestName (manifest: Manifest, dataset: string, version: string): void {
  if (manifest.dataset !== dataset || manifest.version !== version) {
    throw new HeraldError('INVALID_MANIFEST', `the record for ${dataset}@${version} points at a manifest of ${manifest.dataset}@${manifest.version}`)
  }
}

async function abortableDelay (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(signal.reason) }
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
