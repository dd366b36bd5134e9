// Wires the chunk HTTP listener to a running node: its store, its limits, super-seeding on a seed, and the
// same served-bytes accounting as the libp2p path (plus the listener's own counters).
import { readFile } from 'node:fs/promises'
import { Counter, type Registry } from 'prom-client'
import { digestHex } from '../../protocol/cid.js'
import { SuperSeedPolicy } from '../node/super-seed.js'
import { startChunkHttpServer, type ChunkHttpServer } from './server.js'
import type { HeraldConfig } from '../config.js'
import type { HeraldNode } from '../node/herald-node.js'

export async function startChunkListener (config: HeraldConfig, node: HeraldNode, registry: Registry): Promise<ChunkHttpServer> {
  const sent = new Counter({ name: 'herald_serve_http_sent_bytes_total', help: 'Chunk bytes sent on the HTTP chunk listener', registers: [registry] })
  const responses = new Counter({ name: 'herald_serve_http_responses_total', help: 'Responses of the HTTP chunk listener by status', labelNames: ['status'] as const, registers: [registry] })
  const superSeed = config.seed && config.superSeed ? new SuperSeedPolicy() : undefined
  const { tlsCert, tlsKey } = config.http
  return await startChunkHttpServer({
    host: config.http.host,
    port: config.http.port,
    tls: tlsCert != null && tlsKey != null ? { cert: await readFile(tlsCert), key: await readFile(tlsKey) } : undefined,
    getStored: async (d) => await node.store.getStored(d),
    getManifest: async (cid) => await node.store.getManifest(cid),
    uploadBytesPerSecond: config.limits.uploadBytesPerSecond,
    maxInflightPerClient: config.limits.serveInflightPerPeer,
    compress: config.limits.compress,
    policy: superSeed != null ? (client, digest) => superSeed.decide(`http:${client}`, digestHex(digest)) : undefined,
    onServed: (client, bytes) => {
      sent.inc(bytes)
      node.onServed(`http:${client}`, bytes)
    },
    onResponse: (status) => { responses.inc({ status: String(status) }) }
  })
}
