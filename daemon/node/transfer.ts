// One release's transfer: holder discovery over the have protocol, and the scheduler asking peers and the
// seed for what the store lacks; every received entry goes through the receive pipeline.
import { peerIdFromString } from '@libp2p/peer-id'
import { HolderDiscovery, type HolderDiscoveryInit } from '../fetch/holder-discovery.js'
import { FetchScheduler } from '../fetch/scheduler.js'
import { FetchSources } from '../fetch/source-directory.js'
import type { ChunkExchange, HaveExchange, PexExchange } from '../../protocol/exchange/index.js'
import type { HeraldConfig } from '../config.js'
import type { PeerStats } from '../fetch/peer-stats.js'
import type { ReleaseSwarm } from '../fetch/swarm.js'
import type { Log } from '../log.js'
import type { HeraldMetrics } from '../metrics.js'
import type { FetchJob } from './fetch-job.js'
import type { PeerManager, PeerPenalties } from './peer-manager.js'
import type { Planner } from './planner.js'
import type { ReceivePipeline } from './receive-pipeline.js'

export interface TransferInit {
  libp2p: HolderDiscoveryInit['libp2p']
  have: HaveExchange
  pex?: PexExchange
  chunks: ChunkExchange
  config: HeraldConfig
  stats: PeerStats
  peers: Pick<PeerManager, 'isSeed'>
  penalties: PeerPenalties
  planner: Pick<Planner, 'usableDeltas'>
  pipeline: ReceivePipeline
  metrics?: HeraldMetrics
  log: Log
  /** bytes received by this node since start, by source (status) */
  received: { peer: number, seed: number }
}

export async function transfer (init: TransferInit, job: FetchJob, swarm: ReleaseSwarm, signal: AbortSignal): Promise<void> {
  const { config: cfg, metrics, log } = init
  job.mark('transfer')
  const discovery = new HolderDiscovery({
    libp2p: init.libp2p,
    have: init.have,
    pex: init.pex,
    swarm,
    isSeed: async (peer) => init.peers.isSeed(peer),
    onMisbehaviour: (peer, reason) => { init.penalties.penalize(peer, reason) }
  })
  // progress.peers counts the sources (peers and seed) that have sent this fetch bytes
  const senders = new Set<string>()
  discovery.start(signal)
  const sources = new FetchSources({
    chunks: init.chunks,
    window: cfg.limits.maxInflightPerPeer,
    httpPeers: cfg.fetch.httpPeers,
    addressesOf: async (id) => (await init.libp2p.peerStore.get(peerIdFromString(id))).addresses.map(a => a.multiaddr),
    origins: cfg.origins,
    httpWindow: cfg.fetch.httpWindow
  })
  const scheduler = new FetchScheduler({
    swarm,
    stats: init.stats,
    signal,
    maxInflight: cfg.limits.maxInflight,
    batchSize: cfg.limits.batchSize,
    deltaFor: await init.planner.usableDeltas(swarm),
    seedDeadlineMs: cfg.fetch.seedDeadlineMs,
    hedgeAfterMs: cfg.fetch.hedgeAfterMs,
    requestTimeoutMs: cfg.fetch.requestTimeoutMs,
    stallTimeoutMs: cfg.fetch.stallTimeoutMs,
    // the sources of this fetch: libp2p or a peer's announced HTTP listener, and the static origins
    sources,
    store: async (e, digest, bytes, reply) => {
      for (const i of await init.pipeline.receive(swarm, e, digest, bytes, reply.frame)) {
        // a hedged duplicate may land twice: count the chunk once
        if (swarm.hasLocal(i)) continue
        if (job.progress.doneChunks === 0) job.mark('firstChunk')
        swarm.markHave(i)
        job.progress.doneChunks++
        job.progress.doneBytes += swarm.index.sizes[i]
      }
      job.emit()
    },
    onReceived: ({ id: peerId, kind }, wireBytes, rawBytes, encoding) => {
      const source = kind === 'peer' ? 'peer' : 'seed' // origins count with the seed: the publisher's copy
      job.progress.wireBytes[source] += wireBytes
      init.received[source] += wireBytes
      metrics?.fetchReceivedBytesTotal.inc({ source, encoding }, wireBytes)
      metrics?.fetchVerifiedBytesTotal.inc({ source }, rawBytes)
      metrics?.releaseReceivedBytesTotal.inc({ release: job.name, source }, wireBytes)
      job.progress.peers = senders.add(peerId).size
    },
    onRequest: ({ kind }, result, seconds) => {
      const source = kind === 'peer' ? 'peer' : 'seed'
      metrics?.fetchChunksTotal.inc({ source, result })
      metrics?.fetchRequestDurationSeconds.observe({ source }, seconds)
    },
    onMisbehaviour: (peerId, reason) => {
      metrics?.peerErrorsTotal.inc({ kind: reason })
      metrics?.peerPenaltiesTotal.inc()
      log.warn({ peer: peerId, reason }, 'peer penalised')
    }
  })
  try {
    await scheduler.run()
  } finally {
    discovery.stop()
    sources.close()
  }
}
