// The composition root of a running heraldd. It builds the parts, in this order, and starts and stops them:
//   store → peer stats, release registry, serving, penalties (what the protocol services report to)
//   → libp2p with Herald's protocol services (chunks, have, releases) built on those parts
//   → peer manager, announcer, resolver, receive pipeline, planner, fetch manager, publish service,
//     local releases.
// It implements HeraldService for the local API by handing each call to the part that owns it.
// docs/ARCHITECTURE.md maps the parts and the data flow.
import { join } from 'node:path'
import { chunkExchange, haveExchange, pexExchange, releaseExchange } from '../../protocol/exchange/index.js'
import { publisherKeyText, type TrustedKey } from '../../protocol/release.js'
import { Store } from '../../store/store.js'
import { RwLock } from '../../store/rwlock.js'
import { Announcer } from '../announce/announcer.js'
import { HeraldError } from '../errors.js'
import { PeerStats } from '../fetch/peer-stats.js'
import { SwarmPeers } from '../fetch/swarm-peers.js'
import { VERSION } from '../version.js'
import { FetchManager } from './fetch-manager.js'
import { importRelease } from './import-release.js'
import { createHeraldLibp2p, routingTableSize } from './libp2p.js'
import { LocalReleases } from './local-releases.js'
import { PeerManager, PeerPenalties } from './peer-manager.js'
import { Planner } from './planner.js'
import { PublishService } from './publish-service.js'
import { ReceivePipeline } from './receive-pipeline.js'
import { ReleaseRegistry } from './release-registry.js'
import { Resolver } from './resolver.js'
import { Serving, TransferActivity } from './serving.js'
import { loadTrustedKeys, unscopedWarning } from './trust.js'
import { PubsubRepair } from '../net/pubsub-repair.js'
import { ReleaseNotifier } from '../net/release-notifier.js'
import type { HeraldConfig } from '../config.js'
import type { Log } from '../log.js'
import type { HeraldMetrics } from '../metrics.js'
import type {
  ExportResult, FetchProgress, FetchRequest, GcResult, HeraldService, ImportRequest, ImportResult, PeerInfo, PlanResult,
  PublishProgress, PublishRequest, PublishResult, ReleaseAvailable, ReleaseInfo, RollbackResult, StatusInfo, VerifyResult
} from '../types.js'
import type { PeerId, PrivateKey } from '@libp2p/interface'

export { VERSION }

/** how long stop() waits for jobs to checkpoint before closing the store anyway */
const STOP_JOBS_TIMEOUT_MS = 10_000
/** the announcer holds back chunk provides this long after the node last served */
const SERVED_RECENTLY_MS = 5_000

export interface HeraldNodeInit {
  config: HeraldConfig
  peerKey: PrivateKey
  publisherKey?: PrivateKey
  metrics?: HeraldMetrics
  log: Log
}

/** The parts built before libp2p: the protocol services are built on them. */
interface Foundation {
  init: HeraldNodeInit
  store: Store
  trusted: TrustedKey[]
  stats: PeerStats
  registry: ReleaseRegistry
  serving: Serving
  penalties: PeerPenalties
  swarmPeers: SwarmPeers
}

export class HeraldNode implements HeraldService {
  readonly config: HeraldConfig
  readonly store: Store
  readonly libp2p: Awaited<ReturnType<typeof createNodeLibp2p>>
  readonly stats: PeerStats
  readonly registry: ReleaseRegistry
  readonly serving: Serving
  readonly peerManager: PeerManager
  readonly announcer: Announcer
  readonly resolver: Resolver
  readonly planner: Planner
  readonly fetches: FetchManager
  readonly publishes: PublishService
  readonly releases: LocalReleases
  /** new-release notifications (pubsub): latest(dataset), onReleaseAvailable (daemon/net/release-notifier.ts) */
  readonly notifications: ReleaseNotifier
  /** reopens gossipsub outbound streams lost after a burst of connections (daemon/net/pubsub-repair.ts) */
  readonly #pubsubRepair: PubsubRepair
  readonly #init: HeraldNodeInit
  readonly #log: Log
  readonly #startedAt = Date.now()
  /**
   * The GC lease at node level: a fetch holds it (shared) from the moment it reads what the store holds
   * until its release is pinned; gc holds it alone while it deletes chunks and refreshes the have-ledgers,
   * so no fetch ever works from a ledger that a gc has made stale.
   */
  readonly #gcLease = new RwLock()
  #stopping = false

  static async create (init: HeraldNodeInit): Promise<HeraldNode> {
    const trusted = await loadTrustedKeys(init.config.trustedPublishers)
    const warning = unscopedWarning(trusted)
    if (warning != null) init.log.warn({}, warning)
    // a seed trusts its own key for what it publishes
    if (init.publisherKey != null) trusted.push({ key: init.publisherKey.publicKey.raw })
    const store = await Store.open(join(init.config.dataDir, 'store'))
    if (store.recovery.packs.length > 0) init.log.warn(store.recovery, 'packs shorter than the index (power loss?): chunks past their end are dropped and will be fetched again')
    try {
      const stats = new PeerStats()
      const registry = new ReleaseRegistry({ store, log: init.log })
      const base: Foundation = {
        init,
        store,
        trusted,
        stats,
        registry,
        serving: new Serving({ stats, metrics: init.metrics, superSeed: init.config.seed && init.config.superSeed }),
        penalties: new PeerPenalties({ stats, metrics: init.metrics, log: init.log }),
        // peer exchange answers from who asked this node for a release, and the holders it watches
        swarmPeers: new SwarmPeers({ holders: (cid) => registry.get(cid)?.remotes.keys() ?? [] })
      }
      return new HeraldNode(base, await createNodeLibp2p(base))
    } catch (err) {
      await store.close()
      throw err
    }
  }

  private constructor (base: Foundation, libp2p: HeraldNode['libp2p']) {
    const { init, store, stats, registry, serving, penalties } = base
    const { config, metrics, log } = init
    this.#init = init
    this.#log = log
    this.config = config
    this.store = store
    this.libp2p = libp2p
    this.stats = stats
    this.registry = registry
    this.serving = serving
    // release announcements: verified with the same trusted keys as fetched records
    this.notifications = new ReleaseNotifier({
      pubsub: libp2p.services.pubsub,
      trusted: base.trusted,
      log,
      stateFile: join(config.dataDir, 'latest-releases.json'),
      onMisbehaved: (peer, reason) => { penalties.penalize(peer, reason) },
      maxFutureMs: config.notify.maxFutureMs,
      reannounceMs: config.notify.reannounceMs,
      publisher: init.publisherKey != null
    })
    this.#pubsubRepair = new PubsubRepair({ pubsub: libp2p.services.pubsub, libp2p })
    this.peerManager = new PeerManager({ libp2p, config, stats, log, onDisconnect: (peer) => { registry.removeRemote(peer) } })
    const activity = new TransferActivity()
    this.announcer = new Announcer({
      provide: async (cid, signal) => { await libp2p.contentRouting.provide(cid, { signal }) },
      provideChunks: config.dht.provideChunks,
      queueMax: config.dht.provideQueueMax,
      // chunk provides wait while this node fetches, writes a release out or serves: on release day the CPU
      // goes to transfers (each provide costs CPU on every DHT peer)
      paused: () => activity.busy || serving.servedWithin(SERVED_RECENTLY_MS),
      onProvide: (kind, result, seconds) => {
        metrics?.dhtProvidesTotal.inc({ kind, result })
        metrics?.dhtProvideDurationSeconds.observe({ kind }, seconds)
      }
    })
    this.resolver = new Resolver({
      store,
      releases: libp2p.services.releases,
      getPeers: () => libp2p.getPeers(),
      peers: this.peerManager,
      penalties,
      stats,
      trusted: base.trusted,
      limits: config.limits,
      origins: config.origins,
      // a record resolved here may be news too (a lab that missed the announcement): latest(dataset) learns it
      onRecord: (bytes) => { void this.notifications.offer(bytes) },
      log
    })
    this.planner = new Planner({ store, registry, resolver: this.resolver, compress: config.limits.compress })
    this.fetches = new FetchManager({
      config,
      store,
      registry,
      resolver: this.resolver,
      announcer: this.announcer,
      gcLease: this.#gcLease,
      activity,
      transfer: {
        libp2p,
        have: libp2p.services.have,
        pex: libp2p.services.pex,
        chunks: libp2p.services.chunks,
        config,
        stats,
        peers: this.peerManager,
        penalties,
        planner: this.planner,
        pipeline: new ReceivePipeline({ store }),
        metrics,
        log
      },
      metrics,
      log
    })
    this.publishes = new PublishService({
      config,
      store,
      registry,
      announcer: this.announcer,
      publisherKey: init.publisherKey,
      // tell the swarm at once (best effort: a lab that misses it sees the record at its next fetch)
      onSigned: (bytes) => { void this.notifications.offer(bytes, { publish: true }) },
      log
    })
    this.releases = new LocalReleases({ config, store, registry, gcLease: this.#gcLease, busy: () => this.fetches.busy(), metrics, log })
  }

  get peerId (): string { return this.libp2p.peerId.toString() }
  get isSeed (): boolean { return this.config.seed }

  async start (): Promise<void> {
    await this.libp2p.start()
    if (this.config.notify.enabled) {
      await this.notifications.start()
      this.#pubsubRepair.start()
    }
    this.announcer.start()
    for (const cid of await this.registry.loadHeld()) this.announcer.provideManifest(cid)
    this.peerManager.start()
    await this.fetches.start()
    await this.publishes.start()
    this.#log.info({ peerId: this.peerId, addrs: this.listenAddrs(), seed: this.isSeed }, 'heraldd started')
  }

  async stop (): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    this.peerManager.stop()
    // interrupted fetches stay pending (checkpointed), so the next start resumes them; jobs that do not
    // settle in time are left to the process exit, the store is closed regardless
    const settled = Promise.allSettled([this.fetches.stop(), this.publishes.stop()])
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = await Promise.race([
      settled.then(() => false),
      new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, STOP_JOBS_TIMEOUT_MS) })
    ])
    clearTimeout(timer)
    if (late) this.#log.warn({ timeoutMs: STOP_JOBS_TIMEOUT_MS }, 'fetches did not stop in time; closing anyway')
    this.announcer.stop()
    this.#pubsubRepair.stop()
    await this.notifications.stop()
    await this.publishes.close()
    await this.libp2p.stop()
    await this.store.close()
    this.#log.info({}, 'heraldd stopped')
  }

  listenAddrs (): string[] {
    return this.libp2p.getMultiaddrs().map(ma => ma.toString())
  }

  /** the HTTP chunk listener reports its uploads here: `http:<address>` */
  onServed (peer: PeerId | string, bytes: number): void { this.serving.onServed(peer, bytes) }

  // ---- HeraldService: each call goes to the part that owns it ---------------------------------------

  async startFetch (req: FetchRequest): Promise<FetchProgress> { return await this.fetches.startFetch(req) }
  getFetch (id: string): FetchProgress | undefined { return this.fetches.getFetch(id) }
  onFetchProgress (id: string, listener: (p: FetchProgress) => void): () => void { return this.fetches.onFetchProgress(id, listener) }
  /** every fetch that ends, done or failed (events, webhooks, the desired-state reconciler) */
  onFetchEnd (listener: (p: FetchProgress) => void): () => void { return this.fetches.onFetchEnd(listener) }
  async plan (name: string): Promise<PlanResult> { return await this.planner.plan(name) }

  async startPublish (req: PublishRequest): Promise<PublishProgress> { return await this.publishes.startPublish(req) }
  getPublish (id: string): PublishProgress | undefined { return this.publishes.getPublish(id) }
  onPublishProgress (id: string, listener: (p: PublishProgress) => void): () => void { return this.publishes.onPublishProgress(id, listener) }
  /** Start a publish and wait for its end (tests, the demo). */
  async publish (req: PublishRequest): Promise<PublishResult> { return await this.publishes.publish(req) }

  async importRelease (req: ImportRequest): Promise<ImportResult> {
    if (this.#stopping) throw new HeraldError('SHUTTING_DOWN', 'daemon stopping')
    return await importRelease({ store: this.store, registry: this.registry, resolver: this.resolver, gcLease: this.#gcLease, announcer: this.announcer, log: this.#log }, req)
  }

  async listReleases (): Promise<ReleaseInfo[]> { return await this.releases.list() }
  async pin (name: string): Promise<ReleaseInfo> { return await this.releases.pin(name) }
  async unpin (name: string, opts: { force?: boolean } = {}): Promise<ReleaseInfo> { return await this.releases.unpin(name, opts) }
  async gc (): Promise<GcResult> { return await this.releases.gc() }
  async verify (name: string): Promise<VerifyResult> { return await this.releases.verify(name) }
  async rollback (dataset: string, to?: string): Promise<RollbackResult> { return await this.releases.rollback(dataset, to) }
  async exportRelease (name: string, dir: string): Promise<ExportResult> { return await this.releases.export(name, dir) }
  async peers (): Promise<PeerInfo[]> { return this.peerManager.peers() }
  latestRelease (dataset: string): ReleaseAvailable | undefined { return this.notifications.latest(dataset) }

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
      store: { ...await this.store.stats(), indexReads: this.store.reads },
      received: { ...this.fetches.received },
      served: this.serving.served,
      fetches: this.fetches.snapshots()
    }
  }

  ready (): { ready: boolean, reasons: string[] } {
    const reasons: string[] = []
    if (this.#stopping) reasons.push('stopping')
    if (this.libp2p.status !== 'started') reasons.push('libp2p not started')
    if (!this.isSeed && this.libp2p.getPeers().length === 0) reasons.push('no peer reachable')
    return { ready: reasons.length === 0, reasons }
  }

  /** for tests and the demo: the text form of the publisher key, when this node has one */
  publisherKeyText (): string | undefined {
    const key = this.#init.publisherKey
    return key != null ? publisherKeyText(key.publicKey.raw) : undefined
  }
}

/** libp2p with Herald's protocol services, each built on the parts that answer it (no node needed). */
async function createNodeLibp2p ({ init, store, registry, serving, penalties, swarmPeers }: Foundation) {
  const { config, peerKey } = init
  const onPeerMisbehaved = (peer: PeerId, reason: string): void => { penalties.penalize(peer, reason) }
  return await createHeraldLibp2p(config, peerKey, {
    chunks: chunkExchange({
      getStored: async (d) => await store.getStored(d),
      policy: serving.policy,
      uploadBytesPerSecond: config.limits.uploadBytesPerSecond,
      maxInflightPerPeer: config.limits.serveInflightPerPeer,
      compress: config.limits.compress,
      acceptCompressed: config.limits.compress,
      onServed: (peer, _digest, bytes) => { serving.onServed(peer, bytes) },
      onPeerMisbehaved
    }),
    have: haveExchange({
      getHave: (cid) => registry.getHave(cid),
      subscribe: (cid, listener) => registry.subscribe(cid, listener),
      onWatch: (cid, peer) => { swarmPeers.record(cid, peer) },
      onPeerMisbehaved
    }),
    pex: pexExchange({
      getPeers: (cid, asker) => swarmPeers.peers(cid, asker),
      onPeerMisbehaved
    }),
    releases: releaseExchange({
      getRelease: async (dataset, version) => await store.getRelease(dataset, version),
      getManifest: async (cid) => await store.getManifest(cid),
      maxManifestBytes: config.limits.maxManifestBytes,
      onPeerMisbehaved
    })
  })
}
