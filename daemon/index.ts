// heraldd's composition: configuration → keys → store + libp2p node → local API → metrics listener.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { publisherKeyText } from '../protocol/release.js'
import { startApiServer } from './api/server.js'
import { ensureDataDir, loadOrCreateApiToken, loadOrCreatePeerKey, loadOrCreatePublisherKey, loadPublisherKey, PUBLISHER_PUB_FILE } from './keys.js'
import { createLogger } from './log.js'
import { createMetrics, startMetricsServer } from './metrics.js'
import { startChunkListener } from './http/listener.js'
import { HeraldNode } from './node/herald-node.js'
import { releasesDir, type HeraldConfig } from './config.js'
import { isPublicBind } from './api/host-check.js'
import { HeraldError } from './errors.js'
import { HEAP_FLAGS, missingHeapFlags } from './runtime.js'
import { startFleet } from './fleet.js'

export interface InitResult {
  dataDir: string
  peerId: string
  publisherKey?: string
  created: string[]
}

/** Create the data directory and its keys; never overwrites an existing key. */
export async function initDataDir (config: HeraldConfig): Promise<InitResult> {
  const created: string[] = []
  await ensureDataDir(config.dataDir)
  const peer = await loadOrCreatePeerKey(config.dataDir)
  if (peer.created) created.push('peer.key')
  await loadOrCreateApiToken(config.dataDir)
  let publisherKey: string | undefined
  if (config.seed) {
    const pub = await loadOrCreatePublisherKey(config.dataDir)
    if (pub.created) created.push('publisher.key')
    publisherKey = publisherKeyText(pub.key.publicKey.raw)
    await writeFile(join(config.dataDir, PUBLISHER_PUB_FILE), publisherKey + '\n', { mode: 0o644 })
  }
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  return { dataDir: config.dataDir, peerId: peerIdFromPrivateKey(peer.key).toString(), publisherKey, created }
}

export interface RunningDaemon {
  node: HeraldNode
  apiUrl: string
  metricsUrl?: string
  /** the chunk HTTP listener, when http.enabled */
  httpUrl?: string
  stop: () => Promise<void>
}

export async function startDaemon (config: HeraldConfig): Promise<RunningDaemon> {
  const log = createLogger({ level: config.log.level, name: 'heraldd' })
  const missing = missingHeapFlags()
  if (missing.length > 0) log.warn({ missing }, `started without the recommended V8 heap flags: busy transfers may cost ~1.4× the CPU in garbage collection (run the heraldd executable, or node ${HEAP_FLAGS.join(' ')} …/heraldd.js)`)
  await initDataDir(config)
  const peer = await loadOrCreatePeerKey(config.dataDir)
  const token = await loadOrCreateApiToken(config.dataDir)
  const publisherKey = config.seed ? await loadPublisherKey(config.dataDir) : undefined
  if (config.seed && publisherKey == null) throw new HeraldError('INVALID_CONFIG', 'seed mode needs a publisher key: run heraldd init --seed')
  const registry = new Registry()
  const metrics = createMetrics(registry)
  const node = await HeraldNode.create({ config, peerKey: peer.key, publisherKey, metrics, log })
  const stops: Array<() => Promise<void>> = []
  try {
    await node.start()
    stops.push(async () => { await node.stop() })
    metrics.bind({
      storeStats: async () => await node.store.stats(),
      dataDir: config.dataDir,
      peersConnected: () => node.libp2p.getPeers().length,
      routingTableSize: () => (node as any).libp2p.services.dht.routingTable?.size ?? 0,
      provideBacklog: () => node.announcer.backlog,
      activeReleases: async () => (await node.listReleases()).filter(r => r.current).map(r => ({ dataset: r.dataset, version: r.version })),
      seed: config.seed
    } as any)
    // release events, webhooks, the post-switch hook and the desired-state reconciler (daemon/fleet.ts)
    const fleet = await startFleet({ config, node, peerId: node.peerId, registry, log })
    stops.unshift(async () => { await fleet.stop() })
    const api = await startApiServer({
      service: fleet.service,
      events: fleet.events,
      sync: fleet.sync,
      token,
      host: config.api.host,
      port: config.api.port,
      allowedHosts: config.api.allowedHosts,
      outRoots: [config.dataDir, releasesDir(config), ...config.fetch.outRoots],
      logger: log,
      onResponse: (route, method, status, seconds) => {
        metrics.apiRequestsTotal.inc({ route, method, status: String(status) })
        metrics.apiRequestDurationSeconds.observe({ route }, seconds)
      }
    })
    stops.unshift(async () => { await api.stop() })
    let metricsUrl: string | undefined
    if (config.metrics.enabled) {
      const server = await startMetricsServer({ host: config.metrics.host, port: config.metrics.port, registry, ready: () => node.ready() })
      metricsUrl = server.url
      stops.unshift(async () => { await server.stop() })
    }
    for (const [what, host] of [['api', config.api.host], ['metrics', config.metrics.enabled ? config.metrics.host : '127.0.0.1']]) {
      if (isPublicBind(host)) log.warn({ [what]: host }, `the ${what} listener is bound to ${host}, reachable from other hosts: ${what === 'api' ? 'GET routes answer without the token' : 'metrics and readiness are public'}; bind it to 127.0.0.1 unless a firewall or proxy guards it`)
    }
    let httpUrl: string | undefined
    if (config.http.enabled) {
      const chunks = await startChunkListener(config, node, registry)
      httpUrl = chunks.url
      stops.unshift(async () => { await chunks.stop() })
    }
    log.info({ api: api.url, metrics: metricsUrl, http: httpUrl, peerId: node.peerId, listen: node.listenAddrs() }, 'ready')
    let stopping: Promise<void> | undefined
    return {
      node,
      apiUrl: api.url,
      metricsUrl,
      httpUrl,
      stop: async () => {
        stopping ??= (async () => { for (const s of stops) await s() })()
        await stopping
      }
    }
  } catch (err) {
    for (const s of stops) await s().catch(() => {})
    if (stops.length === 0) await node.stop().catch(() => {})
    throw err
  }
}
