// Prometheus metrics of one heraldd, on a registry passed in (never the global one), and the listener
// that serves them with /healthz and /readyz. Names: herald_<area>_<thing>_<unit>; counters end in _total.
// Every metric is listed in docs/METRICS.md.
import { statfs } from 'node:fs/promises'
import { createServer } from 'node:http'
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client'
import { VERSION } from './version.js'

const SIZE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const FETCH_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 7200]

export interface MetricsBinding {
  storeStats?: () => Promise<{ chunks: number, bytes: number, diskBytes: number, pins: number }>
  dataDir?: string
  peersConnected?: () => number
  routingTableSize?: () => number
  provideBacklog?: () => number
  activeReleases?: () => Promise<Array<{ dataset: string, version: string }>>
  seed?: boolean
}

export function createMetrics (registry: Registry) {
  collectDefaultMetrics({ register: registry })
  let binding: MetricsBinding = {}
  const r = [registry]
  const m = {
    fetchReceivedBytesTotal: new Counter({ name: 'herald_fetch_received_bytes_total', help: 'Bytes received on the wire for fetches, by source and encoding', labelNames: ['source', 'encoding'] as const, registers: r }),
    fetchVerifiedBytesTotal: new Counter({ name: 'herald_fetch_verified_bytes_total', help: 'Chunk bytes verified against their CID and stored, by source', labelNames: ['source'] as const, registers: r }),
    manifestReceivedBytesTotal: new Counter({ name: 'herald_manifest_received_bytes_total', help: 'Manifest bytes received, as the raw manifest or as a delta against a held one', labelNames: ['encoding'] as const, registers: r }),
    fetchChunksTotal: new Counter({ name: 'herald_fetch_chunks_total', help: 'Chunk batch requests by source and result', labelNames: ['source', 'result'] as const, registers: r }),
    fetchDurationSeconds: new Histogram({ name: 'herald_fetch_duration_seconds', help: 'Duration of whole release fetches', labelNames: ['result'] as const, buckets: FETCH_BUCKETS, registers: r }),
    fetchRequestDurationSeconds: new Histogram({ name: 'herald_fetch_request_duration_seconds', help: 'Duration of one chunk batch request', labelNames: ['source'] as const, buckets: SIZE_BUCKETS, registers: r }),
    fetchActive: new Gauge({ name: 'herald_fetch_active', help: 'Release fetches running', registers: r }),
    releaseReceivedBytesTotal: new Counter({ name: 'herald_release_received_bytes_total', help: 'Bytes received per release and source', labelNames: ['release', 'source'] as const, registers: r }),
    serveSentBytesTotal: new Counter({ name: 'herald_serve_sent_bytes_total', help: 'Chunk bytes sent to peers', registers: r }),
    serveChunksTotal: new Counter({ name: 'herald_serve_chunks_total', help: 'Chunks served to peers by result', labelNames: ['result'] as const, registers: r }),
    peerErrorsTotal: new Counter({ name: 'herald_peer_errors_total', help: 'Peer protocol errors by kind', labelNames: ['kind'] as const, registers: r }),
    peerPenaltiesTotal: new Counter({ name: 'herald_peer_penalties_total', help: 'Penalties given to peers (bad bytes, malformed frames)', registers: r }),
    dhtProvidesTotal: new Counter({ name: 'herald_dht_provides_total', help: 'DHT provide operations by kind and result', labelNames: ['kind', 'result'] as const, registers: r }),
    dhtProvideDurationSeconds: new Histogram({ name: 'herald_dht_provide_duration_seconds', help: 'Duration of DHT provides', labelNames: ['kind'] as const, buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: r }),
    gcRunsTotal: new Counter({ name: 'herald_gc_runs_total', help: 'Garbage collections run', registers: r }),
    gcFreedBytesTotal: new Counter({ name: 'herald_gc_freed_bytes_total', help: 'Chunk bytes freed by garbage collection', registers: r }),
    storeCorruptChunksTotal: new Counter({ name: 'herald_store_corrupt_chunks_total', help: 'Stored chunks that failed verification and were quarantined', registers: r }),
    apiRequestsTotal: new Counter({ name: 'herald_api_requests_total', help: 'Local API requests by route, method and status', labelNames: ['route', 'method', 'status'] as const, registers: r }),
    apiRequestDurationSeconds: new Histogram({ name: 'herald_api_request_duration_seconds', help: 'Local API request duration', labelNames: ['route'] as const, buckets: SIZE_BUCKETS, registers: r }),
    bind (b: MetricsBinding): void { binding = b }
  }
  new Gauge({ name: 'herald_p2p_peers_connected', help: 'Connected libp2p peers', registers: r, collect () { this.set(binding.peersConnected?.() ?? 0) } })
  new Gauge({ name: 'herald_dht_routing_table_size', help: 'Peers in the DHT routing table', registers: r, collect () { this.set(binding.routingTableSize?.() ?? 0) } })
  new Gauge({ name: 'herald_dht_provide_queue_backlog', help: 'CIDs waiting to be provided on the DHT', registers: r, collect () { this.set(binding.provideBacklog?.() ?? 0) } })
  const storeGauge = (name: string, help: string, pick: (s: { chunks: number, bytes: number, diskBytes: number, pins: number }) => number): Gauge =>
    new Gauge({ name, help, registers: r, async collect () { const s = await binding.storeStats?.(); this.set(s != null ? pick(s) : 0) } })
  storeGauge('herald_store_chunks', 'Chunks in the store', s => s.chunks)
  storeGauge('herald_store_bytes', 'Chunk bytes in the store', s => s.bytes)
  storeGauge('herald_store_disk_bytes', 'Bytes of pack files on disk', s => s.diskBytes)
  storeGauge('herald_store_pinned_releases', 'Pinned releases', s => s.pins)
  new Gauge({
    name: 'herald_store_disk_free_bytes',
    help: 'Free bytes on the data directory\'s filesystem',
    registers: r,
    async collect () {
      if (binding.dataDir == null) return
      try { const s = await statfs(binding.dataDir); this.set(Number(s.bavail) * Number(s.bsize)) } catch {}
    }
  })
  new Gauge({
    name: 'herald_release_active_info',
    help: 'The current release of each dataset (value 1)',
    labelNames: ['dataset', 'version'] as const,
    registers: r,
    async collect () {
      this.reset()
      for (const a of await binding.activeReleases?.() ?? []) this.set({ dataset: a.dataset, version: a.version }, 1)
    }
  })
  new Gauge({ name: 'herald_build_info', help: 'Build information (value 1)', labelNames: ['version', 'node'] as const, registers: r }).set({ version: VERSION, node: process.version }, 1)
  new Gauge({ name: 'herald_seed_mode', help: '1 when this daemon runs as the publisher\'s seed', registers: r, collect () { this.set(binding.seed === true ? 1 : 0) } })
  return m
}

export type HeraldMetrics = ReturnType<typeof createMetrics>

export interface MetricsServerOptions {
  host: string
  port: number
  registry: Registry
  ready: () => { ready: boolean, reasons: string[] }
}

/** GET /metrics, /healthz, /readyz on their own listener. */
export async function startMetricsServer (opts: MetricsServerOptions): Promise<{ url: string, stop: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') { json(405, { code: 'METHOD_NOT_ALLOWED', message: 'GET only' }); return }
    if (path === '/metrics') {
      opts.registry.metrics().then(text => {
        res.writeHead(200, { 'content-type': opts.registry.contentType })
        res.end(text)
      }, err => { json(500, { code: 'INTERNAL', message: String(err.message) }) })
    } else if (path === '/healthz') {
      json(200, { status: 'ok' })
    } else if (path === '/readyz') {
      const r = opts.ready()
      json(r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', reasons: r.reasons })
    } else {
      json(404, { code: 'NOT_FOUND', message: `no route ${path}` })
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  const port = typeof addr === 'object' && addr != null ? addr.port : opts.port
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  return {
    url: `http://${host}:${port}`,
    stop: async () => { await new Promise<void>(resolve => { server.close(() => { resolve() }); server.closeAllConnections() }) }
  }
}
