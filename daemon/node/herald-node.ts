// The composition root of a running heraldd: store, libp2p with Herald's services, announcer, fetch
// jobs. Implements HeraldService for the local API.
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { digestHex, cidFromDigest, parseCid, verifyDigest } from '../../protocol/cid.js'
import { chunkExchange, haveExchange, releaseExchange, type StoredChunk } from '../../protocol/exchange/index.js'
import { compressChunk } from '../../protocol/exchange/compression.js'
import { manifestChunkIndex, manifestDeltaIndex, decodeManifest, verifyManifest, type Manifest } from '../../protocol/manifest.js'
import { decodeDelta, DELTA_KIND, MAX_DELTA_BASE_BYTES } from '../../protocol/delta.js'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { parseChunkSize } from '../../protocol/chunker.js'
import { decodeSignedRelease, publisherKeyText, signRelease, verifyRelease, type SignedRelease, type TrustedKey } from '../../protocol/release.js'
import { checkFreeSpace } from '../../store/space.js'
import { Store } from '../../store/store.js'
import { materialize, StagedRelease, switchCurrent, verifyMaterialized } from '../../store/materialize.js'
import { Announcer } from '../announce/announcer.js'
import { releasesDir, type HeraldConfig } from '../config.js'
import { codeOf, HeraldError, HTTP_STATUS_BY_CODE } from '../errors.js'
import { RepeatWarning } from '../repeat-warning.js'
import { PeerStats } from '../fetch/peer-stats.js'
import { HolderDiscovery } from '../fetch/holder-discovery.js'
import { DeltaFailedError, FetchScheduler } from '../fetch/scheduler.js'
import { ReleaseSwarm } from '../fetch/swarm.js'
import { FetchJob } from './fetch-job.js'
import { PublishJob } from './publish-job.js'
import { Publisher, sameContent } from './publisher.js'
import { createHeraldLibp2p, routingTableSize, VERSION } from './libp2p.js'

export { VERSION }
import { SuperSeedPolicy } from './super-seed.js'
import { ReleaseNotifier } from '../net/release-notifier.js'
import { exportRelease } from './exporter.js'
import { loadTrustedKeys, unscopedWarning } from './trust.js'
import { RwLock } from '../../store/rwlock.js'
import { readdir, rm, stat } from 'node:fs/promises'
import { setMaxListeners } from 'node:events'
import { isAbsolute } from 'node:path'
import { importDirectory } from '../../store/import.js'
import type { Log } from '../log.js'
import type { HeraldMetrics } from '../metrics.js'
import type {
  FetchProgress, FetchRequest, GcResult, HeraldService, ImportRequest, ImportResult, PeerInfo, PlanResult, PublishProgress, PublishRequest, PublishResult,
  ReleaseInfo, RollbackResult, StatusInfo, VerifyResult, ExportResult, ReleaseAvailable
} from '../types.js'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const RESOLVE_TIMEOUT_MS = 5_000
const FETCHES_KEY = 'fetches'
const PUBLISHES_KEY = 'publishes'
/** finished publish jobs kept for GET /v1/publish/:id (a few KB each) */
const MAX_FINISHED_PUBLISHES = 100
const CONNECT_WAIT_MS = 10_000
/** how long a record lookup waits for a seed once other peers are connected (the seed is not required) */
const SEED_GRACE_MS = 2_000
/** how long stop() waits for fetches to checkpoint before closing the store anyway */
const STOP_JOBS_TIMEOUT_MS = 10_000
/** rounds over the peers when fetching a manifest, and the pause before the second (doubling after) */
const MANIFEST_ROUNDS = 3
const MANIFEST_RETRY_MS = 1_000
/** error codes that are a peer's doing when its answer fails to decode or verify */
const PEER_FAULTS = new Set(['MALFORMED_MESSAGE', 'INVALID_RECORD', 'BAD_SIGNATURE', 'INVALID_MANIFEST', 'HASH_MISMATCH'])

async function abortableDelay (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(signal.reason) }
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}


export interface HeraldNodeInit {
  config: HeraldConfig
  peerKey: PrivateKey
  publisherKey?: PrivateKey
  metrics?: HeraldMetrics
  log: Log
}

export class HeraldNode implements HeraldService {
  readonly config: HeraldConfig
  readonly store: Store
  readonly libp2p: Awaited<ReturnType<typeof createNodeLibp2p>>
  readonly announcer: Announcer
  readonly stats = new PeerStats()
  /** new-release notifications (pubsub): latest(dataset), onReleaseAvailable (daemon/net/release-notifier.ts) */
  readonly notifications: ReleaseNotifier
  readonly #publisherKey?: PrivateKey
  readonly #trusted: TrustedKey[]
  readonly #metrics?: HeraldMetrics
  readonly #log: Log
  readonly #bootstrapWarning: RepeatWarning
  readonly #swarms = new Map<string, ReleaseSwarm>()
  readonly #jobs = new Map<string, FetchJob>()
  readonly #publishJobs = new Map<string, PublishJob>()
  readonly #startedAt = Date.now()
  readonly #received = { peer: 0, seed: 0 }
  #served = 0
  #activeTransfers = 0
  #materializing = 0
  /** per manifest CID: the staged releases that chunks stored by fetches are also written into */
  readonly #staged = new Map<string, Set<StagedRelease>>()
  #lastServedAt = 0
  #timers: Array<ReturnType<typeof setInterval>> = []
  readonly #publisher: Publisher
  #stopping = false
  /**
   * The GC lease at node level: a fetch holds it (shared) from the moment it reads what the store holds
   * until its release is pinned; gc holds it alone while it deletes chunks and refreshes the have-ledgers,
   * so no fetch ever works from a ledger that a gc has made stale.
   */
  readonly #gcLease = new RwLock()

  private constructor (init: HeraldNodeInit, store: Store, libp2p: HeraldNode['libp2p'], trusted: TrustedKey[]) {
    this.config = init.config
    this.store = store
    this.libp2p = libp2p
    this.#publisherKey = init.publisherKey
    this.#metrics = init.metrics
    this.#log = init.log
    this.#bootstrapWarning = new RepeatWarning(init.log)
    this.#trusted = trusted
    this.#publisher = new Publisher(store, init.config.publish)
    // release announcements: verified with the same trusted keys as fetched records
    this.notifications = new ReleaseNotifier({
      pubsub: libp2p.services.pubsub,
      trusted,
      log: init.log,
      stateFile: join(init.config.dataDir, 'latest-releases.json'),
      onMisbehaved: (peer, reason) => { this.onMisbehaved(peer, reason) },
      maxFutureMs: init.config.notify.maxFutureMs,
      reannounceMs: init.config.notify.reannounceMs,
      publisher: init.publisherKey != null
    })
    this.announcer = new Announcer({
      provide: async (cid, signal) => { await this.libp2p.contentRouting.provide(cid, { signal }) },
      provideChunks: init.config.dht.provideChunks,
      queueMax: init.config.dht.provideQueueMax,
      // chunk provides wait while this node fetches, writes a release out or serves: on release day the CPU
      // goes to transfers (each provide costs CPU on every DHT peer)
      paused: () => this.#activeTransfers > 0 || this.#materializing > 0 || Date.now() - this.#lastServedAt < 5_000,
      onProvide: (kind, result, seconds) => {
        this.#metrics?.dhtProvidesTotal.inc({ kind, result })
        this.#metrics?.dhtProvideDurationSeconds.observe({ kind }, seconds)
      }
    })
  }

  static async create (init: HeraldNodeInit): Promise<HeraldNode> {
    const trusted = await loadTrustedKeys(init.config.trustedPublishers)
    const warning = unscopedWarning(trusted)
    if (warning != null) init.log.warn({}, warning)
    // a seed trusts its own key for what it publishes
    if (init.publisherKey != null) trusted.push({ key: init.publisherKey.publicKey.raw })
    const store = await Store.open(join(init.config.dataDir, 'store'))
    if (store.recovery.packs.length > 0) init.log.warn(store.recovery, 'packs shorter than the index (power loss?): chunks past their end are dropped and will be fetched again')
    let node: HeraldNode | undefined
    try {
      const libp2p = await createNodeLibp2p(init.config, init.peerKey, {
        getStored: async (d: Uint8Array) => await store.getStored(d),
        onServed: (peer: PeerId, bytes: number) => node?.onServed(peer, bytes),
        onMisbehaved: (peer: PeerId, reason: string) => node?.onMisbehaved(peer, reason),
        getHave: (cid: CID) => node?.getHave(cid),
        subscribe: (cid: CID, l: (indices: number[], complete: boolean) => void) => node?.subscribeHave(cid, l) ?? (() => {}),
        getRelease: async (dataset: string, version: string) => await store.getRelease(dataset, version),
        getManifest: async (cid: CID) => await store.getManifest(cid)
      })
      node = new HeraldNode(init, store, libp2p, trusted)
      return node
    } catch (err) {
      await store.close()
      throw err
    }
  }

  get peerId (): string { return this.libp2p.peerId.toString() }
  get isSeed (): boolean { return this.config.seed }

  async start (): Promise<void> {
    this.#configureSeeds()
    await this.libp2p.start()
    if (this.config.notify.enabled) await this.notifications.start()
    this.announcer.start()
    this.libp2p.addEventListener('peer:disconnect', (evt) => {
      const id = evt.detail.toString()
      for (const swarm of this.#swarms.values()) swarm.removeRemote(id)
    })
    await this.#loadHeldReleases()
    void this.#bootstrap()
    this.#timers.push(setInterval(() => { void this.#bootstrap() }, 10_000))
    this.#timers.push(setInterval(() => { this.#recordRtts() }, 5_000))
    for (const t of this.#timers) t.unref()
    await this.#resumeFetches()
    await this.#endInterruptedPublishes()
    this.#log.info({ peerId: this.peerId, addrs: this.listenAddrs(), seed: this.isSeed }, 'heraldd started')
  }

  async stop (): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    for (const t of this.#timers) clearInterval(t)
    for (const job of [...this.#jobs.values(), ...this.#publishJobs.values()]) {
      try {
        job.controller.abort(new HeraldError('SHUTTING_DOWN', 'daemon stopping'))
      } catch (err: any) {
        // an abort listener that throws must not stop the shutdown
        this.#log.error({ err }, 'abort listener threw while stopping a fetch')
      }
    }
    // interrupted fetches stay in the pending list (checkpointed), so the next start resumes them; a fetch
    // that does not settle in time is left to the process exit, the store is closed regardless
    const settled = Promise.allSettled([...this.#jobs.values(), ...this.#publishJobs.values()].map(async j => await j.done))
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = await Promise.race([
      settled.then(() => false),
      new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, STOP_JOBS_TIMEOUT_MS) })
    ])
    clearTimeout(timer)
    if (late) this.#log.warn({ timeoutMs: STOP_JOBS_TIMEOUT_MS }, 'fetches did not stop in time; closing anyway')
    this.announcer.stop()
    await this.notifications.stop()
    await this.#publisher.close()
    await this.libp2p.stop()
    await this.store.close()
    this.#log.info({}, 'heraldd stopped')
  }

  listenAddrs (): string[] {
    return this.libp2p.getMultiaddrs().map(ma => ma.toString())
  }

  // ---- hooks for the protocol services -------------------------------------------------------------

  /** `peer`: a libp2p peer, or `http:<address>` for the HTTP chunk listener */
  onServed (peer: PeerId | string, bytes: number): void {
    this.#served += bytes
    this.#lastServedAt = Date.now()
    this.stats.recordSent(peer.toString(), bytes)
    this.#metrics?.serveSentBytesTotal.inc(bytes)
    this.#metrics?.serveChunksTotal.inc({ result: 'ok' })
  }

  onMisbehaved (peer: PeerId, reason: string): void {
    this.stats.penalize(peer.toString())
    this.#metrics?.peerErrorsTotal.inc({ kind: reason })
    this.#metrics?.peerPenaltiesTotal.inc()
    this.#log.warn({ peer: peer.toString(), reason }, 'peer misbehaved')
  }

  getHave (cid: CID): { bitmap: Uint8Array, count: number } | undefined {
    const swarm = this.#swarms.get(cid.toString())
    return swarm == null ? undefined : { bitmap: swarm.have, count: swarm.entries }
  }

  subscribeHave (cid: CID, listener: (indices: number[], complete: boolean) => void): () => void {
    return this.#swarms.get(cid.toString())?.subscribe(listener) ?? (() => {})
  }

  // ---- peers ---------------------------------------------------------------------------------------

  #peerIsSeed (peerId: PeerId | string): boolean {
    const id = typeof peerId === 'string' ? peerId : peerId.toString()
    return this.#seedPeers.has(id)
  }

  /** the seeds' peer IDs: from configuration, or learned by dialing a bootstrap address */
  readonly #seedPeers = new Set<string>()

  /**
   * Is this peer a seed? Only configuration says so — the `seeds` list, or, when that is empty, the peer a
   * configured bootstrap address led to — never what the peer says about itself.
   */
  async #identifySeed (peerId: PeerId): Promise<boolean> {
    return this.#seedPeers.has(peerId.toString())
  }

  #configureSeeds (): void {
    for (const id of this.config.seeds) this.#seedPeers.add(id)
    if (this.config.seeds.length > 0) return
    for (const addr of this.config.bootstrap) {
      try {
        const id = multiaddr(addr).getComponents().find(c => c.name === 'p2p')?.value
        if (id != null) this.#seedPeers.add(id)
      } catch {}
    }
  }

  async #bootstrap (): Promise<void> {
    for (const addr of this.config.bootstrap) {
      try {
        const ma = multiaddr(addr)
        const id = ma.getComponents().find(c => c.name === 'p2p')?.value
        if (id != null && this.libp2p.getConnections(peerIdFromString(id)).length > 0) continue
        if (id == null && this.libp2p.getConnections().some(c => c.remoteAddr.toString().startsWith(addr))) continue
        const conn = await this.libp2p.dial(ma, { signal: AbortSignal.timeout(10_000) })
        if (this.config.seeds.length === 0 && id == null && !this.#seedPeers.has(conn.remotePeer.toString())) {
          this.#seedPeers.add(conn.remotePeer.toString())
          this.#log.info({ addr, peer: conn.remotePeer.toString() }, 'bootstrap peer taken as the seed (name it with /p2p/<id> or `seeds` to pin it)')
        }
      } catch (err: any) {
        this.#bootstrapWarning.warn(addr, { addr, err: err.message }, 'bootstrap dial failed')
      }
    }
  }

  /**
   * Before asking peers for a record: right after start the bootstrap dials may still be running, and the
   * first peer connected may not be the seed (a lab, or a peer that holds nothing). Wait for a seed to be
   * connected, or, when none comes, for any peer and SEED_GRACE_MS, at most CONNECT_WAIT_MS.
   */
  async #ensureConnected (signal: AbortSignal): Promise<void> {
    if (this.config.bootstrap.length === 0) return
    const seedUp = (): boolean => this.libp2p.getPeers().some(p => this.#seedPeers.has(p.toString()))
    if (seedUp()) return
    const started = Date.now()
    await this.#bootstrap()
    const deadline = started + CONNECT_WAIT_MS
    while (!seedUp() && Date.now() < deadline) {
      if (this.libp2p.getPeers().length > 0 && Date.now() - started >= SEED_GRACE_MS) return
      signal.throwIfAborted()
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  /** Peer RTTs as libp2p's connection monitor measures them (a ping every 10 s per connection). */
  #recordRtts (): void {
    for (const conn of this.libp2p.getConnections()) {
      if (conn.rtt != null) this.stats.recordRtt(conn.remotePeer.toString(), conn.rtt)
    }
  }

  // ---- releases ------------------------------------------------------------------------------------

  async #loadHeldReleases (): Promise<void> {
    for (const r of await this.store.listReleases()) {
      try {
        const cid = parseCid(r.manifestCid)
        const manifest = await this.#localManifest(cid)
        if (manifest == null) continue
        await this.#openSwarm(cid, manifest)
        this.announcer.provideManifest(cid)
      } catch (err: any) {
        this.#log.warn({ release: `${r.dataset}@${r.version}`, err: err.message }, 'cannot load release')
      }
    }
  }

  async #localManifest (cid: CID): Promise<Manifest | undefined> {
    const bytes = await this.store.getManifest(cid)
    return bytes == null ? undefined : decodeManifest(bytes)
  }

  async #openSwarm (cid: CID, manifest: Manifest): Promise<ReleaseSwarm> {
    const key = cid.toString()
    let swarm = this.#swarms.get(key)
    if (swarm != null) return swarm
    const index = manifestChunkIndex(manifest)
    const deltas = manifestDeltaIndex(manifest, index, [DELTA_KIND])
    const have = await this.store.hasChunks(entryDigests(index.digests, deltas.digests))
    swarm = this.#swarms.get(key) ?? new ReleaseSwarm(cid, index, have, deltas)
    this.#swarms.set(key, swarm)
    return swarm
  }

  /**
   * For the missing chunks that a delta object whose bases are all held here can rebuild: the object's entry.
   * An object is used when it is smaller than its missing chunks as they would travel otherwise; where objects
   * overlap (deltas against several earlier releases), the cheapest per missing byte wins.
   */
  async #usableDeltas (swarm: ReleaseSwarm): Promise<Map<number, number>> {
    const out = new Map<number, number>()
    const { deltas, index } = swarm
    const wire = (i: number): number => (this.config.limits.compress ? index.wireSizes?.[i] : undefined) ?? index.sizes[i]
    const candidates: Array<{ k: number, missing: number[], perByte: number }> = []
    for (let k = 0; k < deltas.count; k++) {
      const missing = [...deltas.targets[k]].filter(i => !swarm.hasLocal(i))
      if (missing.length === 0) continue
      let otherwise = 0
      let raw = 0
      for (const i of missing) { otherwise += wire(i); raw += index.sizes[i] }
      if (deltas.sizes[k] >= otherwise) continue
      candidates.push({ k, missing, perByte: deltas.sizes[k] / raw })
    }
    candidates.sort((a, b) => a.perByte - b.perByte)
    for (const { k, missing } of candidates) {
      if (missing.some(i => out.has(i))) continue
      const bases = deltas.bases[k]
      const packed = new Uint8Array(bases.length * 32)
      bases.forEach((b, n) => packed.set(b, n * 32))
      const held = await this.store.hasChunks(packed)
      let all = true
      for (let n = 0; n < bases.length; n++) if ((held[n >> 3] & (0x80 >> (n & 7))) === 0) { all = false; break }
      if (all) for (const i of missing) out.set(i, index.count + k)
    }
    return out
  }

  /**
   * Store a chunk in the form the chunk protocol serves: the zstd frame as received, or compressed here when
   * the manifest says compression pays for it (the publisher measured each chunk's wire size).
   */
  async #storeChunk (swarm: ReleaseSwarm, i: number, digest: Uint8Array, bytes: Uint8Array, frame?: Uint8Array): Promise<void> {
    const wire = swarm.index.wireSizes?.[i]
    if (frame == null && wire != null && wire < bytes.byteLength) frame = compressChunk(bytes)
    await this.store.putChunk(digest, bytes, frame)
    // verified: also written into the release's staging files, so that materializing need not read it back
    for (const staged of this.#staged.get(swarm.manifestCid.toString()) ?? []) staged.write(digest, bytes)
  }

  /**
   * Store a fetched entry: a chunk, or a delta object and the run of chunks it rebuilds (each verified like
   * any chunk). Returns the chunks it stored.
   */
  async #storeEntry (swarm: ReleaseSwarm, e: number, digest: Uint8Array, bytes: Uint8Array, frame?: Uint8Array): Promise<number[]> {
    if (!swarm.isObject(e)) {
      await this.#storeChunk(swarm, e, digest, bytes, frame)
      return [e]
    }
    const targets = swarm.targetsOf(e)
    const stored: number[] = []
    if (targets.some(i => !swarm.hasLocal(i))) {
      const k = e - swarm.index.count
      const bases: Uint8Array[] = []
      let baseBytes = 0
      for (const b of swarm.deltas.bases[k]) {
        const data = await this.store.getChunk(b)
        if (data == null) throw new DeltaFailedError('a base chunk of the delta is no longer in the store')
        baseBytes += data.byteLength
        if (baseBytes > MAX_DELTA_BASE_BYTES) throw new DeltaFailedError(`the delta's bases exceed ${MAX_DELTA_BASE_BYTES} bytes`)
        bases.push(data)
      }
      let size = 0
      for (const i of targets) size += swarm.index.sizes[i]
      let run: Uint8Array
      try {
        run = decodeDelta(bytes, bases, size)
      } catch (err: any) {
        throw new DeltaFailedError(err.message, { cause: err })
      }
      // every chunk of the run checked before any is stored: a bad object leaves nothing half-done
      const chunks: Uint8Array[] = []
      let at = 0
      for (const i of targets) {
        const chunk = run.subarray(at, at + swarm.index.sizes[i])
        at += chunk.byteLength
        if (!verifyDigest(swarm.index.digestAt(i), chunk)) throw new DeltaFailedError('the delta object rebuilt bytes that do not match the chunk')
        chunks.push(chunk)
      }
      for (const [n, i] of targets.entries()) {
        if (swarm.hasLocal(i)) continue
        await this.#storeChunk(swarm, i, swarm.index.digestAt(i), chunks[n])
        stored.push(i)
      }
    }
    // the object is stored after the chunks it rebuilt: a fetch interrupted in between finds the chunks
    // (and fetches the object again only if it still needs it), never an object without its chunks.
    // A delta object is itself zstd: kept as it came.
    await this.store.putChunk(digest, bytes)
    swarm.markHave(e)
    return stored
  }

  /** The newest verified record for a release: local store, connected peers and the seed all asked. */
  async #resolveRelease (dataset: string, version: string, signal: AbortSignal): Promise<{ signed: SignedRelease, from?: PeerId }> {
    let best: { signed: SignedRelease, from?: PeerId } | undefined
    const local = await this.store.getRelease(dataset, version)
    if (local != null) best = { signed: decodeSignedRelease(local) }
    let lastError: unknown
    await this.#ensureConnected(signal)
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(RESOLVE_TIMEOUT_MS)])
    const peers = this.libp2p.getPeers()
    // one listener per peer asked at once, for as long as the answers take: a bounded fan-out, not a leak
    setMaxListeners(peers.length + 10, timeout)
    await Promise.all(peers.map(async peer => {
      try {
        const bytes = await this.libp2p.services.releases.fetchRelease(peer, dataset, version, { signal: timeout })
        if (bytes == null) return
        const signed = decodeSignedRelease(bytes)
        if (signed.record.dataset !== dataset || signed.record.version !== version) throw new HeraldError('INVALID_RECORD', 'peer answered with a record for another release')
        await verifyRelease(signed, this.#trusted)
        if (best == null || signed.record.seq > best.signed.record.seq) best = { signed, from: peer }
      } catch (err: any) {
        lastError = err
        // a malformed, forged or misnamed record counts against the peer (an untrusted signer need not be its doing)
        if (PEER_FAULTS.has(err?.code)) this.onMisbehaved(peer, 'bad_record')
        this.#log.debug({ peer: peer.toString(), err: err.message }, 'release record from peer refused')
      }
    }))
    if (best == null) {
      if (lastError != null && ['UNTRUSTED_PUBLISHER', 'BAD_SIGNATURE', 'INVALID_RECORD'].includes((lastError as any).code)) throw lastError
      throw new HeraldError('RELEASE_NOT_FOUND', `no peer has a release record for ${dataset}@${version} (asked ${peers.length} peer(s))`)
    }
    await verifyRelease(best.signed, this.#trusted)
    const r = best.signed.record
    await this.store.putRelease({ dataset, version, seq: r.seq, manifestCid: r.manifestCid, publishedAt: r.publishedAt }, best.signed.bytes)
    // a record resolved here may be news too (a lab that missed the announcement): latest(dataset) learns it
    void this.notifications.offer(best.signed.bytes)
    return best
  }

  async #fetchManifest (cid: CID, from: PeerId | undefined, signal: AbortSignal): Promise<Manifest> {
    const local = await this.store.getManifest(cid)
    if (local != null) return verifyManifest(cid, local)
    let lastError: unknown
    // a busy peer may time out once: every peer is asked again, after a pause, up to MANIFEST_ROUNDS times
    for (let round = 0; round < MANIFEST_ROUNDS; round++) {
      if (round > 0) await abortableDelay(MANIFEST_RETRY_MS * 2 ** (round - 1), signal)
      const peers = this.libp2p.getPeers().filter(p => this.stats.usable(p.toString()))
      const order = from != null ? [from, ...peers.filter(p => !p.equals(from))] : peers
      for (const peer of order) {
        try {
          const bytes = await this.libp2p.services.releases.fetchManifest(peer, cid, { signal })
          if (bytes == null) continue
          const manifest = verifyManifest(cid, bytes, { maxBytes: this.config.limits.maxManifestBytes, maxChunks: this.config.limits.maxManifestChunks })
          await this.store.putManifest(cid, bytes)
          return manifest
        } catch (err: any) {
          if (signal.aborted) throw err
          lastError = err
          // bytes that are not the manifest, or a malformed frame, count against the peer
          if (PEER_FAULTS.has(err?.code)) this.onMisbehaved(peer, 'bad_manifest')
          this.#log.warn({ peer: peer.toString(), round, err: err.message }, 'manifest from peer refused')
        }
      }
    }
    if (lastError != null && (lastError as any).code != null) throw lastError
    throw new HeraldError('NO_SOURCE', `no peer could provide manifest ${cid.toString()}`)
  }

  // ---- fetch ---------------------------------------------------------------------------------------

  async startFetch (req: FetchRequest): Promise<FetchProgress> {
    const { dataset, version } = parseReleaseName(req.name)
    const name = formatReleaseName(dataset, version)
    for (const job of this.#jobs.values()) {
      if (job.name === name && !job.finished) return job.snapshot()
    }
    const job = new FetchJob(name, req.out)
    this.#jobs.set(job.id, job)
    await this.#rememberFetch(name, req.out)
    job.done = this.#runFetch(job, dataset, version)
    return job.snapshot()
  }

  getFetch (id: string): FetchProgress | undefined {
    return this.#jobs.get(id)?.snapshot()
  }

  onFetchProgress (id: string, listener: (p: FetchProgress) => void): () => void {
    const job = this.#jobs.get(id)
    if (job == null) throw new HeraldError('FETCH_NOT_FOUND', `no fetch with id ${id}`)
    return job.onProgress(listener)
  }

  /** Fetches in progress are kept in the store, so that a restarted daemon resumes them. */
  async #pendingFetches (): Promise<Record<string, { out?: string }>> {
    const raw = await this.store.getProgress(FETCHES_KEY)
    if (raw == null) return {}
    try {
      return JSON.parse(typeof raw === 'string' ? raw : new TextDecoder().decode(raw))
    } catch {
      return {}
    }
  }

  async #rememberFetch (name: string, out?: string): Promise<void> {
    const pending = await this.#pendingFetches()
    pending[name] = { out }
    await this.store.putProgress(FETCHES_KEY, JSON.stringify(pending))
  }

  async #forgetFetch (name: string): Promise<void> {
    const pending = await this.#pendingFetches()
    delete pending[name]
    await this.store.putProgress(FETCHES_KEY, JSON.stringify(pending))
  }

  async #resumeFetches (): Promise<void> {
    for (const [name, { out }] of Object.entries(await this.#pendingFetches())) {
      try {
        this.#log.info({ release: name }, 'resuming interrupted fetch')
        await this.startFetch({ name, out })
      } catch (err: any) {
        this.#log.warn({ release: name, err: err.message }, 'cannot resume fetch')
      }
    }
  }

  async #runFetch (job: FetchJob, dataset: string, version: string): Promise<void> {
    const signal = job.controller.signal
    const started = performance.now()
    this.#metrics?.fetchActive.inc()
    try {
      const { signed, from } = await this.#resolveRelease(dataset, version, signal)
      const cid = signed.record.manifestCid
      job.progress.manifestCid = cid.toString()
      job.setState('planning')
      const manifest = await this.#fetchManifest(cid, from, signal)
      checkManifestName(manifest, dataset, version)
      this.announcer.provideManifest(cid)
      const root = job.out ?? releasesDir(this.config)
      // what the store holds is read under the GC lease, and the release is pinned before any chunk moves:
      // a gc (now, or after a restart before this fetch resumes) never deletes what this fetch relies on
      const { swarm, staged } = await this.#gcLease.read(async () => await this.store.withFetch(async () => {
        const swarm = await this.#openSwarm(cid, manifest)
        const index = swarm.index
        await this.#repin(dataset, version, entryDigests(index.digests, swarm.deltas.digests))
        job.progress.totalChunks = index.count
        job.progress.totalBytes = index.totalBytes
        job.progress.reusedChunks = 0
        job.progress.reusedBytes = 0
        for (let i = 0; i < index.count; i++) {
          if (swarm.hasLocal(i)) { job.progress.reusedChunks++; job.progress.reusedBytes += index.sizes[i] }
        }
        job.setState('fetching')
        // chunks into the packs (in their stored form), the whole release into its staging directory
        let packBytes = 0
        for (let i = 0; i < index.count; i++) if (!swarm.hasLocal(i)) packBytes += index.wireSizes?.[i] ?? index.sizes[i]
        await checkFreeSpace([{ path: this.store.dir, bytes: packBytes }, { path: root, bytes: index.totalBytes, unlessExists: join(root, dataset, version) }])
        const staged = await StagedRelease.open(this.store, manifest, { root })
        const key = cid.toString()
        const writers = this.#staged.get(key) ?? new Set()
        this.#staged.set(key, writers.add(staged))
        try {
          if (!swarm.complete) await this.#transfer(job, swarm, signal)
        } catch (err) {
          await staged.abort()
          throw err
        } finally {
          writers.delete(staged)
          if (writers.size === 0) this.#staged.delete(key)
        }
        return { swarm, staged }
      }))
      try {
        // chunks, and the delta objects this node now holds (it serves them like chunks)
        this.announcer.provideChunks(Array.from({ length: swarm.entries }, (_, e) => e).filter(e => swarm.hasLocal(e)).map(e => cidFromDigest(swarm.digestAt(e))))
        job.setState('materializing')
        this.#materializing++
        try {
          job.progress.path = await staged.finish(signal)
        } finally {
          this.#materializing--
        }
      } catch (err) {
        await staged.abort()
        throw err
      }
      await this.#forgetFetch(job.name)
      job.setState('done')
      this.#metrics?.fetchDurationSeconds.observe({ result: 'done' }, (performance.now() - started) / 1000)
      this.#log.info({ release: job.name, seconds: (performance.now() - started) / 1000, wire: job.progress.wireBytes, reusedBytes: job.progress.reusedBytes }, 'fetch done')
    } catch (err: any) {
      if (err instanceof TypeError || err instanceof RangeError) {
        this.#log.error({ err }, 'fetch crashed on a programming error')
      }
      const code = typeof err?.code === 'string' && !signal.aborted ? err.code : (signal.aborted ? 'SHUTTING_DOWN' : 'FETCH_FAILED')
      job.progress.error = { code, message: err?.message ?? String(err) }
      job.setState('failed')
      this.#metrics?.fetchDurationSeconds.observe({ result: 'failed' }, (performance.now() - started) / 1000)
      if (!signal.aborted) {
        // a fetch that failed for good is not resumed at the next start; an interrupted one is, and so is
        // one that ran out of disk (it resumes once space is freed: at the next start, or asked again)
        if (code !== 'DISK_FULL') await this.#forgetFetch(job.name).catch(() => {})
        this.#log.warn({ release: job.name, code, err: err?.message }, 'fetch failed')
      }
    } finally {
      this.#metrics?.fetchActive.dec()
    }
  }

  async #transfer (job: FetchJob, swarm: ReleaseSwarm, signal: AbortSignal): Promise<void> {
    const discovery = new HolderDiscovery({
      libp2p: this.libp2p,
      have: this.libp2p.services.have,
      swarm,
      isSeed: async (peer) => await this.#identifySeed(peer),
      onMisbehaviour: (peer, reason) => { this.onMisbehaved(peer, reason) }
    })
    // progress.peers counts the sources (peers and seed) that have sent this fetch bytes
    const senders = new Set<string>()
    discovery.start(signal)
    const cfg = this.config
    const sizeOf = entrySizeLookup(swarm)
    this.#activeTransfers++
    const scheduler = new FetchScheduler({
      swarm,
      stats: this.stats,
      signal,
      maxInflightPerPeer: cfg.limits.maxInflightPerPeer,
      maxInflight: cfg.limits.maxInflight,
      batchSize: cfg.limits.batchSize,
      deltaFor: await this.#usableDeltas(swarm),
      seedDeadlineMs: cfg.fetch.seedDeadlineMs,
      hedgeAfterMs: cfg.fetch.hedgeAfterMs,
      requestTimeoutMs: cfg.fetch.requestTimeoutMs,
      stallTimeoutMs: cfg.fetch.stallTimeoutMs,
      request: (peerId, digests, s) => this.libp2p.services.chunks.fetch(peerIdFromString(peerId), digests, { signal: s, sizes: digests.map(sizeOf) }),
      store: async (e, digest, bytes, reply) => {
        for (const i of await this.#storeEntry(swarm, e, digest, bytes, reply.frame)) {
          // a hedged duplicate may land twice: count the chunk once
          if (swarm.hasLocal(i)) continue
          swarm.markHave(i)
          job.progress.doneChunks++
          job.progress.doneBytes += swarm.index.sizes[i]
        }
        job.emit()
      },
      onReceived: (peerId, seed, wireBytes, rawBytes, encoding) => {
        const source = seed ? 'seed' : 'peer'
        job.progress.wireBytes[source] += wireBytes
        this.#received[source] += wireBytes
        this.#metrics?.fetchReceivedBytesTotal.inc({ source, encoding }, wireBytes)
        this.#metrics?.fetchVerifiedBytesTotal.inc({ source }, rawBytes)
        this.#metrics?.releaseReceivedBytesTotal.inc({ release: job.name, source }, wireBytes)
        job.progress.peers = senders.add(peerId).size
      },
      onRequest: (_peerId, seed, result, seconds) => {
        const source = seed ? 'seed' : 'peer'
        this.#metrics?.fetchChunksTotal.inc({ source, result })
        this.#metrics?.fetchRequestDurationSeconds.observe({ source }, seconds)
      },
      onMisbehaviour: (peerId, reason) => {
        this.#metrics?.peerErrorsTotal.inc({ kind: reason })
        this.#metrics?.peerPenaltiesTotal.inc()
        this.#log.warn({ peer: peerId, reason }, 'peer penalised')
      }
    })
    try {
      await scheduler.run()
    } finally {
      this.#activeTransfers--
      discovery.stop()
    }
  }

  /**
   * Pin a release to exactly these chunks. A release re-published under the same name (higher seq) has
   * other chunks than the pin an older record left, so the old pin is replaced. Callers hold the fetch
   * lease, so GC cannot run between the two steps.
   */
  async #repin (dataset: string, version: string, digests: Uint8Array): Promise<void> {
    await this.store.unpin(dataset, version)
    await this.store.pin(dataset, version, digests)
  }

  // ---- publish -------------------------------------------------------------------------------------

  /** Start a publish job and return at once (validation errors of the request are thrown here). */
  async startPublish (req: PublishRequest): Promise<PublishProgress> {
    if (this.#publisherKey == null) throw new HeraldError('NOT_PUBLISHER', this.config.seed ? 'this daemon holds no publisher key: create one with `heraldd init --seed`' : 'this daemon was not started as a seed: start it with `heraldd start --seed` (the publisher key is loaded only then)')
    if (this.#stopping) throw new HeraldError('SHUTTING_DOWN', 'daemon stopping')
    const { dataset, version } = parseReleaseName(req.name)
    if (req.chunkSize != null) parseChunkSize(req.chunkSize)
    const running = [...this.#publishJobs.values()].find(j => !j.finished && j.request.name === formatReleaseName(dataset, version))
    if (running != null) throw new HeraldError('CONFLICT', `${req.name} is being published (job ${running.id})`)
    const job = new PublishJob({ ...req, name: formatReleaseName(dataset, version) })
    // finished jobs stay answerable for a while: the oldest beyond MAX_FINISHED_PUBLISHES are forgotten
    const finished = [...this.#publishJobs.values()].filter(j => j.finished)
    for (const old of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_PUBLISHES))) this.#publishJobs.delete(old.id)
    this.#publishJobs.set(job.id, job)
    await this.#rememberPublishes()
    // a job ended by a stop stays listed, so the restarted daemon reports it as interrupted
    const first = job.snapshot()
    job.done = this.#runPublish(job, dataset, version).finally(async () => {
      if (!this.#stopping) await this.#rememberPublishes().catch(() => {})
    })
    return first
  }

  getPublish (id: string): PublishProgress | undefined {
    return this.#publishJobs.get(id)?.snapshot()
  }

  onPublishProgress (id: string, listener: (p: PublishProgress) => void): () => void {
    const job = this.#publishJobs.get(id)
    if (job == null) throw new HeraldError('PUBLISH_NOT_FOUND', `no publish with id ${id}`)
    return job.onProgress(listener)
  }

  /** Start a publish and wait for its end (tests, the demo). */
  async publish (req: PublishRequest): Promise<PublishResult> {
    const started = await this.startPublish(req)
    const job = this.#publishJobs.get(started.id) as PublishJob
    await job.done
    if (job.error != null) throw new HeraldError(job.error.code, job.error.message)
    return job.result as PublishResult
  }

  /** Running publishes are kept in the store, so that a restarted daemon reports them as interrupted. */
  async #rememberPublishes (): Promise<void> {
    const running = [...this.#publishJobs.values()].filter(j => !j.finished).map(j => ({ id: j.id, name: j.request.name, dir: j.request.dir }))
    await this.store.putProgress(PUBLISHES_KEY, JSON.stringify(running))
  }

  /** Publishes a stopped daemon left: they end as failed jobs (nothing of them was signed). */
  async #endInterruptedPublishes (): Promise<void> {
    const raw = await this.store.getProgress(PUBLISHES_KEY)
    if (raw == null) return
    let list: Array<{ id: string, name: string, dir: string }> = []
    try { list = JSON.parse(new TextDecoder().decode(raw)) } catch {}
    for (const p of Array.isArray(list) ? list : []) {
      const job = new PublishJob({ name: String(p.name), dir: String(p.dir) }, String(p.id))
      job.fail('INTERRUPTED', `the daemon stopped while publishing ${String(p.name)}; nothing was signed: publish again (chunks already stored are reused)`)
      this.#publishJobs.set(job.id, job)
    }
    await this.store.deleteProgress(PUBLISHES_KEY)
  }

  async #runPublish (job: PublishJob, dataset: string, version: string): Promise<void> {
    const req = job.request
    const started = performance.now()
    try {
      const built = await this.store.withFetch(async () => {
        const result = await this.#publisher.build({
          dataset,
          version,
          dir: req.dir,
          base: req.base,
          delta: req.delta,
          allowEmpty: req.allowEmpty,
          keepCompressed: req.keepCompressed,
          chunkSize: req.chunkSize,
          signal: job.controller.signal,
          progress: job.counters,
          onScanned: () => { job.setState('reading') },
          onNewChunk: (n) => { job.newChunks++; job.newBytes += n },
          onEncoding: () => { job.setState('encoding') }
        })
        job.controller.signal.throwIfAborted()
        job.setState('signing')
        // versions are immutable: the same content is no new record; other content only with force
        const previous = await this.store.getRelease(dataset, version)
        if (previous != null) {
          const prev = decodeSignedRelease(previous).record
          const prevBytes = await this.store.getManifest(prev.manifestCid)
          const same = prev.manifestCid.equals(result.cid) || (prevBytes != null && sameContent(decodeManifest(prevBytes), result.manifest))
          if (same) return { result, unchanged: prev }
          if (req.force !== true) {
            throw new HeraldError('VERSION_EXISTS', `${req.name} is already published (seq ${prev.seq}, manifest ${prev.manifestCid.toString()}) with other content; a version name means fixed content: publish a new version, or replace it with --force (labs then switch to the new content)`)
          }
        }
        await this.#repin(dataset, version, result.pinDigests)
        return { result }
      })
      const b = built.result
      const chunker = { minSize: b.manifest.chunker.minSize, avgSize: b.manifest.chunker.avgSize, maxSize: b.manifest.chunker.maxSize }
      const base = { name: formatReleaseName(dataset, version), files: b.stats.files, chunks: b.stats.chunks, newChunks: b.newChunks, bytes: b.stats.bytes, chunker }
      if (built.unchanged != null) {
        const seconds = (performance.now() - started) / 1000
        this.#log.info({ release: req.name, manifest: built.unchanged.manifestCid.toString(), seq: built.unchanged.seq }, 'publish: content unchanged, nothing signed')
        job.succeed({ ...base, manifestCid: built.unchanged.manifestCid.toString(), seq: built.unchanged.seq, seconds, unchanged: true })
        return
      }
      const previous = await this.store.getRelease(dataset, version)
      const seq = previous != null ? decodeSignedRelease(previous).record.seq + 1 : 1
      const record = { dataset, version, manifestCid: b.cid, seq, publishedAt: Date.now() }
      const bytes = await signRelease(record, this.#publisherKey as PrivateKey)
      await this.store.putRelease(record, bytes)
      // tell the swarm at once (best effort: a lab that misses it sees the record at its next fetch)
      void this.notifications.offer(bytes, { publish: true })
      const swarm = this.#swarms.get(b.cid.toString())
      if (swarm != null) this.#swarms.delete(b.cid.toString())
      const opened = await this.#openSwarm(b.cid, b.manifest)
      this.announcer.provideManifest(b.cid)
      this.announcer.provideChunks(Array.from({ length: opened.entries }, (_, e) => cidFromDigest(opened.digestAt(e))))
      const seconds = (performance.now() - started) / 1000
      this.#log.info({ release: req.name, manifest: b.cid.toString(), seq, chunks: b.stats.chunks, newChunks: b.newChunks, deltas: b.deltas, seconds }, 'published')
      job.succeed({
        ...base,
        manifestCid: b.cid.toString(),
        seq,
        seconds,
        delta: b.deltas[0],
        olderDeltas: b.deltas.length > 1 ? b.deltas.slice(1) : undefined
      })
    } catch (err: any) {
      const aborted = job.controller.signal.aborted
      const code = aborted ? 'INTERRUPTED' : (typeof err?.code === 'string' && HTTP_STATUS_BY_CODE[err.code] != null ? err.code : 'PUBLISH_FAILED')
      const message = aborted ? `the daemon stopped while publishing ${req.name}; nothing was signed: publish again (chunks already stored are reused)` : code === 'PUBLISH_FAILED' ? `publish failed: ${String(err?.message ?? err)}` : String(err.message)
      if (code === 'PUBLISH_FAILED') this.#log.error({ err, release: req.name }, 'publish failed')
      else this.#log.warn({ release: req.name, code, err: message }, 'publish refused')
      job.fail(code, message)
    }
  }

  // ---- import ----------------------------------------------------------------------------------------

  /**
   * Chunk a directory already on disk (a release downloaded by FTP or rsync) into the store. When a peer
   * has the named release's record, its manifest gives the chunker, and the release is pinned so that gc
   * keeps what was imported; the next fetch of it, or of a later release, moves only what is missing.
   */
  async importRelease (req: ImportRequest): Promise<ImportResult> {
    const { dataset, version } = parseReleaseName(req.name)
    const name = formatReleaseName(dataset, version)
    if (typeof req.dir !== 'string' || !isAbsolute(req.dir)) throw new HeraldError('INVALID_PATH', 'import needs an absolute directory path')
    const info = await stat(req.dir).catch((err: any) => { throw new HeraldError('INVALID_PATH', `cannot read ${req.dir}: ${err.code ?? err.message}`) })
    if (!info.isDirectory()) throw new HeraldError('INVALID_PATH', `${req.dir} is not a directory`)
    const started = performance.now()
    let known: { cid: CID, manifest: Manifest } | undefined
    try {
      const signal = AbortSignal.timeout(30_000)
      const { signed, from } = await this.#resolveRelease(dataset, version, signal)
      const manifest = await this.#fetchManifest(signed.record.manifestCid, from, signal)
      checkManifestName(manifest, dataset, version)
      known = { cid: signed.record.manifestCid, manifest }
    } catch (err: any) {
      if (!['RELEASE_NOT_FOUND', 'NO_SOURCE'].includes(codeOf(err) ?? '')) throw err
      this.#log.warn({ release: name, err: err.message }, 'import: no record of the release found; chunks are imported unpinned (a gc before the next fetch deletes them)')
    }
    return await this.#gcLease.read(async () => {
      const r = await importDirectory(this.store, req.dir, known?.manifest.chunker)
      const out: ImportResult = { name, ...r, pinned: false, seconds: 0 }
      if (known != null) {
        // the ledger of this release must now say what the store holds
        this.#swarms.delete(known.cid.toString())
        const swarm = await this.#openSwarm(known.cid, known.manifest)
        await this.#repin(dataset, version, entryDigests(swarm.index.digests, swarm.deltas.digests))
        out.pinned = true
        out.releaseChunks = swarm.index.count
        out.releaseChunksHeld = swarm.held
        this.announcer.provideManifest(known.cid)
      }
      out.seconds = (performance.now() - started) / 1000
      this.#log.info({ release: name, files: r.files, chunks: r.chunks, newChunks: r.newChunks, pinned: out.pinned }, 'imported')
      return out
    })
  }

  // ---- queries and maintenance ---------------------------------------------------------------------

  async #releaseInfo (dataset: string, version: string): Promise<ReleaseInfo> {
    const bytes = await this.store.getRelease(dataset, version)
    if (bytes == null) throw new HeraldError('RELEASE_NOT_FOUND', `release ${dataset}@${version} is not in the local store`)
    const signed = decodeSignedRelease(bytes)
    const cid = signed.record.manifestCid
    const manifest = await this.#localManifest(cid)
    let complete = false
    let files: number | undefined
    let total: number | undefined
    if (manifest != null) {
      const swarm = await this.#openSwarm(cid, manifest)
      complete = swarm.complete
      files = manifest.files.length
      total = manifest.files.reduce((n, f) => n + f.size, 0)
    }
    const current = await this.store.getCurrent(dataset)
    return {
      name: formatReleaseName(dataset, version),
      dataset,
      version,
      manifestCid: cid.toString(),
      seq: signed.record.seq,
      publishedAt: signed.record.publishedAt,
      publisher: publisherKeyText(signed.publicKey),
      pinned: await this.store.isPinned(dataset, version),
      current: current === version,
      complete,
      files,
      bytes: total,
      path: current === version ? join(releasesDir(this.config), dataset, version) : undefined
    }
  }

  async listReleases (): Promise<ReleaseInfo[]> {
    const out: ReleaseInfo[] = []
    for (const r of await this.store.listReleases()) out.push(await this.#releaseInfo(r.dataset, r.version))
    return out
  }

  async plan (name: string): Promise<PlanResult> {
    const { dataset, version } = parseReleaseName(name)
    const signal = AbortSignal.timeout(60_000)
    const { signed, from } = await this.#resolveRelease(dataset, version, signal)
    const manifestBytesBefore = await this.store.getManifest(signed.record.manifestCid)
    const manifest = await this.#fetchManifest(signed.record.manifestCid, from, signal)
    checkManifestName(manifest, dataset, version)
    const index = manifestChunkIndex(manifest)
    const deltas = manifestDeltaIndex(manifest, index, [DELTA_KIND])
    const have = await this.store.hasChunks(entryDigests(index.digests, deltas.digests))
    const swarm = new ReleaseSwarm(signed.record.manifestCid, index, have, deltas)
    let reusedBytes = 0
    let reusedChunks = 0
    for (let i = 0; i < index.count; i++) {
      if (swarm.hasLocal(i)) { reusedChunks++; reusedBytes += index.sizes[i] }
    }
    // chunks with a usable delta move as their delta object; the rest as chunks, compressed when the
    // manifest's wire sizes say that helps (and this daemon asks for compressed chunks)
    let delta = 0
    let deltaChunks = 0
    let compressed = 0
    let raw = 0
    const usable = await this.#usableDeltas(swarm)
    const objects = new Set<number>()
    for (let i = 0; i < index.count; i++) {
      if (swarm.hasLocal(i)) continue
      const e = usable.get(i)
      const wire = this.config.limits.compress ? index.wireSizes?.[i] : undefined
      if (e != null) {
        deltaChunks++
        if (!objects.has(e)) { objects.add(e); delta += swarm.sizeAt(e) }
      } else if (wire != null && wire < index.sizes[i]) compressed += wire
      else raw += index.sizes[i]
    }
    const manifestBytes = manifestBytesBefore == null ? (await this.store.getManifest(signed.record.manifestCid))?.byteLength ?? 0 : 0
    return {
      name: formatReleaseName(dataset, version),
      releaseBytes: index.totalBytes,
      releaseChunks: index.count,
      reusedBytes,
      reusedChunks,
      deltaChunks,
      toMove: { raw, compressed, delta, manifest: manifestBytes, total: raw + compressed + delta + manifestBytes }
    }
  }

  async status (): Promise<StatusInfo> {
    return {
      peerId: this.peerId,
      seed: this.isSeed,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
      listenAddrs: this.listenAddrs(),
      peers: this.libp2p.getPeers().length,
      dhtRoutingTableSize: routingTableSize(this.libp2p.services.dht),
      provideBacklog: this.announcer.backlog,
      store: await this.store.stats(),
      received: { ...this.#received },
      served: this.#served,
      fetches: [...this.#jobs.values()].map(j => j.snapshot())
    }
  }

  async peers (): Promise<PeerInfo[]> {
    return this.libp2p.getPeers().map(peer => {
      const id = peer.toString()
      const s = this.stats.get(id)
      return {
        peerId: id,
        addrs: this.libp2p.getConnections(peer).map(c => c.remoteAddr.toString()),
        seed: this.#peerIsSeed(id),
        rttMs: s.rttMs,
        throughput: s.throughput,
        bytesReceived: s.bytesReceived,
        bytesSent: s.bytesSent,
        penalties: s.penalties
      }
    })
  }

  async pin (name: string): Promise<ReleaseInfo> {
    const { dataset, version } = parseReleaseName(name)
    const info = await this.#releaseInfo(dataset, version)
    const manifest = await this.#localManifest(parseCid(info.manifestCid))
    if (manifest == null) throw new HeraldError('RELEASE_NOT_FOUND', `the manifest of ${name} is not in the local store: fetch it first`)
    const index = manifestChunkIndex(manifest)
    await this.store.pin(dataset, version, entryDigests(index.digests, manifestDeltaIndex(manifest, index, [DELTA_KIND]).digests))
    return await this.#releaseInfo(dataset, version)
  }

  async unpin (name: string, opts: { force?: boolean } = {}): Promise<ReleaseInfo> {
    const { dataset, version } = parseReleaseName(name)
    await this.#releaseInfo(dataset, version)
    if (opts.force !== true && await this.store.getCurrent(dataset) === version) {
      throw new HeraldError('CONFLICT', `${name} is the current release of ${dataset}: a gc would delete the chunks its files are checked and served from. Roll back or fetch another release first, or unpin with --force`)
    }
    await this.store.unpin(dataset, version)
    return await this.#releaseInfo(dataset, version)
  }

  async gc (): Promise<GcResult> {
    return await this.#gcLease.write(async () => {
      const result = await this.store.gc()
      this.#metrics?.gcRunsTotal.inc()
      this.#metrics?.gcFreedBytesTotal.inc(result.bytesFreed)
      // what the store holds changed: the have-ledgers must say so before any fetch reads them again
      for (const [key, swarm] of this.#swarms) {
        const have = await this.store.hasChunks(entryDigests(swarm.index.digests, swarm.deltas.digests))
        this.#swarms.set(key, new ReleaseSwarm(swarm.manifestCid, swarm.index, have, swarm.deltas))
      }
      const removed = await this.#removeUnpinnedDirectories()
      return { ...result, releasesRemoved: removed }
    })
  }

  /**
   * Remove the materialized directories of releases that are neither pinned nor current. Staging and
   * hidden entries (names starting with '.') and directories of releases this node does not know are left
   * alone. Returns the names removed.
   */
  async #removeUnpinnedDirectories (): Promise<string[]> {
    const root = releasesDir(this.config)
    const removed: string[] = []
    const busy = new Set([...this.#jobs.values()].filter(j => !j.finished).map(j => j.name))
    for (const r of await this.store.listReleases()) {
      const name = formatReleaseName(r.dataset, r.version)
      if (busy.has(name) || await this.store.isPinned(r.dataset, r.version)) continue
      if (await this.store.getCurrent(r.dataset) === r.version) continue
      const datasetDir = join(root, r.dataset)
      let entries: string[]
      try { entries = await readdir(datasetDir) } catch { continue }
      if (!entries.includes(r.version)) continue
      await rm(join(datasetDir, r.version), { recursive: true, force: true })
      await rm(join(datasetDir, `.${r.version}.manifest`), { force: true })
      removed.push(name)
      this.#log.info({ release: name }, 'removed the directory of an unpinned release')
    }
    return removed
  }

  async verify (name: string): Promise<VerifyResult> {
    const { dataset, version } = parseReleaseName(name)
    const info = await this.#releaseInfo(dataset, version)
    const manifest = await this.#localManifest(parseCid(info.manifestCid))
    if (manifest == null) throw new HeraldError('RELEASE_NOT_FOUND', `the manifest of ${name} is not in the local store`)
    const index = manifestChunkIndex(manifest)
    const bad: string[] = []
    let missing = 0
    for (let i = 0; i < index.count; i++) {
      const digest = index.digestAt(i)
      let bytes: Uint8Array | undefined
      try {
        bytes = await this.store.getChunk(digest)
      } catch (err: any) {
        // an entry the store cannot read back (a damaged pack) is as bad as one that reads back wrong
        if (err instanceof TypeError || err instanceof RangeError || codeOf(err) === 'STORE_CLOSED') throw err
        bad.push(cidFromDigest(digest).toString())
        await this.#quarantine(digest, err)
        continue
      }
      if (bytes == null) missing++
      else if (!verifyDigest(digest, bytes)) {
        bad.push(cidFromDigest(digest).toString())
        await this.#quarantine(digest)
      }
    }
    let filesChecked = 0
    let badFiles: string[] = []
    if (info.current) {
      const r = await verifyMaterialized(this.store, manifest, releasesDir(this.config))
      filesChecked = r.filesChecked
      badFiles = r.badFiles
    }
    return { name: info.name, ok: bad.length === 0 && missing === 0 && badFiles.length === 0, chunksChecked: index.count, bad, missing, filesChecked, badFiles }
  }

  /**
   * A stored chunk that fails its check is dropped from the index (never served or advertised again) and
   * from every have-ledger; the next fetch of a release that needs it fetches it again (repair).
   */
  async #quarantine (digest: Uint8Array, cause?: unknown): Promise<void> {
    await this.store.dropChunk(digest)
    const hex = digestHex(digest)
    for (const swarm of this.#swarms.values()) {
      for (let e = 0; e < swarm.entries; e++) {
        if (swarm.hasLocal(e) && digestHex(swarm.digestAt(e)) === hex) swarm.unmarkHave(e)
      }
    }
    this.#metrics?.storeCorruptChunksTotal.inc()
    this.#log.error({ chunk: cidFromDigest(digest).toString(), err: (cause as any)?.message }, 'stored chunk failed verification: quarantined, will be fetched again')
  }

  /**
   * Switch `current` back one step: to the newest complete, pinned release published before the current
   * one (or to `to`). Run again, it steps further back. Never chooses a release that is still being fetched.
   */
  async rollback (dataset: string, to?: string): Promise<RollbackResult> {
    const from = await this.store.getCurrent(dataset)
    const releases = (await this.store.listReleases()).filter(r => r.dataset === dataset)
    const fromAt = releases.find(r => r.version === from)?.publishedAt ?? Infinity
    const busy = new Set([...this.#jobs.values()].filter(j => !j.finished).map(j => j.name))
    let target = to
    if (target == null) {
      const candidates = releases
        .filter(r => r.version !== from && r.publishedAt < fromAt && !busy.has(formatReleaseName(r.dataset, r.version)))
        .sort((a, b) => b.publishedAt - a.publishedAt)
      for (const c of candidates) {
        if (!await this.store.isPinned(c.dataset, c.version)) continue
        if (!(await this.#releaseInfo(c.dataset, c.version)).complete) continue
        target = c.version
        break
      }
      if (target == null) throw new HeraldError('RELEASE_NOT_FOUND', `no complete, pinned release of ${dataset} older than ${from ?? 'the current one'} to roll back to`)
    }
    if (busy.has(formatReleaseName(dataset, target))) throw new HeraldError('CONFLICT', `${dataset}@${target} is being fetched: wait for it, then switch`)
    const info = await this.#releaseInfo(dataset, target)
    const manifest = await this.#localManifest(parseCid(info.manifestCid))
    if (manifest == null || !info.complete) throw new HeraldError('RELEASE_NOT_FOUND', `${info.name} is not complete in the local store`)
    const root = releasesDir(this.config)
    await materialize(this.store, manifest, { root })
    await switchCurrent(root, dataset, target)
    await this.store.setCurrent(dataset, target)
    return { dataset, from, to: target }
  }

  async exportRelease (name: string, dir: string): Promise<ExportResult> { return await exportRelease(this.store, name, dir) }

  ready (): { ready: boolean, reasons: string[] } {
    const reasons: string[] = []
    if (this.#stopping) reasons.push('stopping')
    if (this.libp2p.status !== 'started') reasons.push('libp2p not started')
    if (!this.isSeed && this.libp2p.getPeers().length === 0) reasons.push('no peer reachable')
    return { ready: reasons.length === 0, reasons }
  }

  latestRelease (dataset: string): ReleaseAvailable | undefined {
    return this.notifications.latest(dataset)
  }

  /** for tests and the demo: the text form of the publisher key, when this node has one */
  publisherKeyText (): string | undefined {
    return this.#publisherKey != null ? publisherKeyText(this.#publisherKey.publicKey.raw) : undefined
  }

  digestKey (digest: Uint8Array): string { return digestHex(digest) }
}

interface ServiceHooks {
  getStored: (d: Uint8Array) => Promise<StoredChunk | undefined>
  onServed: (peer: PeerId, bytes: number) => void
  onMisbehaved: (peer: PeerId, reason: string) => void
  getHave: (cid: CID) => { bitmap: Uint8Array, count: number } | undefined
  subscribe: (cid: CID, l: (indices: number[], complete: boolean) => void) => () => void
  getRelease: (dataset: string, version: string) => Promise<Uint8Array | undefined>
  getManifest: (cid: CID) => Promise<Uint8Array | undefined>
}

async function createNodeLibp2p (config: HeraldConfig, key: PrivateKey, hooks: ServiceHooks) {
  const superSeed = config.seed && config.superSeed ? new SuperSeedPolicy() : undefined
  return await createHeraldLibp2p(config, key, {
    chunks: chunkExchange({
      getStored: hooks.getStored,
      policy: superSeed != null ? (peer, digest) => superSeed.decide(peer.toString(), digestHex(digest)) : undefined,
      uploadBytesPerSecond: config.limits.uploadBytesPerSecond,
      maxInflightPerPeer: config.limits.serveInflightPerPeer,
      compress: config.limits.compress,
      acceptCompressed: config.limits.compress,
      onServed: (peer, _digest, bytes) => { hooks.onServed(peer, bytes) },
      onPeerMisbehaved: hooks.onMisbehaved
    }),
    have: haveExchange({
      getHave: hooks.getHave,
      subscribe: hooks.subscribe,
      onPeerMisbehaved: hooks.onMisbehaved
    }),
    releases: releaseExchange({
      getRelease: hooks.getRelease,
      getManifest: hooks.getManifest,
      maxManifestBytes: config.limits.maxManifestBytes,
      onPeerMisbehaved: hooks.onMisbehaved
    })
  })
}

/** The digests of a release's have-entries: its chunks, then its delta objects. */
function entryDigests (chunks: Uint8Array, objects: Uint8Array): Uint8Array {
  if (objects.byteLength === 0) return chunks
  const out = new Uint8Array(chunks.byteLength + objects.byteLength)
  out.set(chunks)
  out.set(objects, chunks.byteLength)
  return out
}

/**
 * A record names the release it signs; the manifest it points at must name the same one, or a record for
 * one name could make a lab write another release's directory.
 */
function checkManifestName (manifest: Manifest, dataset: string, version: string): void {
  if (manifest.dataset !== dataset || manifest.version !== version) {
    throw new HeraldError('INVALID_MANIFEST', `the record for ${dataset}@${version} points at a manifest of ${manifest.dataset}@${manifest.version}`)
  }
}

/** The size an entry's bytes must have, by digest (from the manifest): a reply of another size is the peer's error. */
function entrySizeLookup (swarm: ReleaseSwarm): (digest: Uint8Array) => number | undefined {
  const objects = new Map<string, number>()
  for (let k = 0; k < swarm.deltas.count; k++) objects.set(digestHex(swarm.deltas.digestAt(k)), swarm.deltas.sizes[k])
  return (digest) => {
    const i = swarm.index.indexOf(digest)
    return i !== -1 ? swarm.index.sizes[i] : objects.get(digestHex(digest))
  }
}
