// The libp2p node: TCP, Noise, Yamux, identify, ping, kad-dht (server mode, private protocol, private
// addresses kept) and Herald's own services. The only place that names the transport stack.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { Identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import type { HeraldConfig } from '../config.js'
import { VERSION } from '../version.js'

export { VERSION }
import { HostConnectionLimit } from './host-limit.js'
import { httpAnnounceAddrs } from '../http/announce.js'

export const DHT_PROTOCOL = '/herald/kad/1.0.0'

export interface HeraldServices {
  identify: Identify
  ping: Ping
  dht: KadDHT
  [name: string]: unknown
}

export type HeraldLibp2p<S extends Record<string, unknown>> = Libp2p<HeraldServices & S>

export async function createHeraldLibp2p<S extends Record<string, (components: any) => unknown>> (
  config: HeraldConfig,
  privateKey: PrivateKey,
  extra: S
): Promise<Libp2p<HeraldServices & { [K in keyof S]: ReturnType<S[K]> }>> {
  const node = await createLibp2p({
    privateKey,
    start: false,
    // informational only: no peer is trusted or treated as a seed for what its agent string says
    nodeInfo: { name: 'heraldd', version: VERSION, userAgent: `heraldd/${VERSION}${config.seed ? ' (seed)' : ''}` },
    addresses: {
      listen: config.listen,
      // the HTTP chunk listener too, so peers can fetch bulk over it (daemon/http/announce.ts)
      announce: config.announce.length > 0 ? [...config.announce, ...httpAnnounceAddrs(config)] : [],
      appendAnnounce: config.announce.length > 0 ? [] : httpAnnounceAddrs(config)
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 4 * 1024 * 1024 } } as any)],
    connectionManager: {
      maxConnections: config.limits.maxConnections,
      inboundConnectionThreshold: config.limits.inboundConnectionThreshold,
      maxIncomingPendingConnections: config.limits.maxIncomingPendingConnections
    },
    // one host may not hold more than its share of maxConnections
    connectionGater: new HostConnectionLimit(config.limits.maxConnectionsPerHost),
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        // lab networks are private: keep server mode and private/loopback addresses, or the table stays empty
        clientMode: false,
        peerInfoMapper: passthroughMapper,
        allowQueryWithZeroPeers: true
      }),
      ...extra
    }
  })
  return node as any
}

/** Size of the DHT routing table (not on kad-dht's public type). */
export function routingTableSize (dht: KadDHT): number {
  const table = (dht as unknown as { routingTable?: { size?: number } }).routingTable
  return typeof table?.size === 'number' ? table.size : 0
}
