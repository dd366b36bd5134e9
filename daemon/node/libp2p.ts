// The libp2p node: TCP, Noise, Yamux, identify, ping, kad-dht (server mode, private protocol, private
// addresses kept), gossipsub for release announcements, and Herald's own services; by configuration also
// mDNS, a private swarm (pnet key, peer allow-list), AutoNAT, circuit relay v2 and DCUtR. The only place
// that names the transport stack.
import { autoNAT } from '@libp2p/autonat'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { mdns } from '@libp2p/mdns'
import { MAX_ANNOUNCE_BYTES, RELEASE_TOPIC } from '../../protocol/announce.js'
import { allowListGater, loadSwarmKey, swarmProtector } from '../net/private-swarm.js'
import { dialDiscoveredPeers } from '../net/discovery.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'
import type { Identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import type { HeraldConfig } from '../config.js'
import { VERSION } from '../version.js'

export { VERSION }
import { HostConnectionLimit } from './host-limit.js'
import { httpAnnounceAddrs } from '../http/announce.js'

export const DHT_PROTOCOL = '/herald/kad/1.0.0'

/**
 * Gossipsub peer scoring for the release topic. Two changes from the defaults:
 * - no IP-colocation penalty: many lab servers share one address (a campus NAT, one host in tests), and
 *   the default (-5 × (peers on one IP − 10)²) puts the 15th of them below the publish threshold, so the
 *   seed would stop sending them announcements. Sybils gain nothing here: every record is signed.
 * - invalid announcements (forged, malformed: rejected by the validator) weigh heavily: two put a peer at
 *   the graylist threshold (-80), three below it, where its pubsub traffic is ignored for minutes. Mesh
 *   delivery-rate penalties are off: releases are rare, so an honest peer delivers few messages.
 */
const ANNOUNCE_SCORE_PARAMS = {
  IPColocationFactorWeight: 0,
  topics: {
    [RELEASE_TOPIC]: createTopicScoreParams({
      topicWeight: 1,
      timeInMeshWeight: 0,
      firstMessageDeliveriesWeight: 0,
      meshMessageDeliveriesWeight: 0,
      meshFailurePenaltyWeight: 0,
      invalidMessageDeliveriesWeight: -20,
      // per decay interval (1 s): 0.997 halves the count in about 4 minutes
      invalidMessageDeliveriesDecay: 0.997
    })
  }
}

export interface HeraldServices {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  [name: string]: unknown
}

export type HeraldLibp2p<S extends Record<string, unknown>> = Libp2p<HeraldServices & S>

export async function createHeraldLibp2p<S extends Record<string, (components: any) => unknown>> (
  config: HeraldConfig,
  privateKey: PrivateKey,
  extra: S
): Promise<Libp2p<HeraldServices & { [K in keyof S]: ReturnType<S[K]> }>> {
  const net = await networkOptions(config)
  const node = await createLibp2p({
    privateKey,
    start: false,
    // informational only: no peer is trusted or treated as a seed for what its agent string says
    nodeInfo: { name: 'heraldd', version: VERSION, userAgent: `heraldd/${VERSION}${config.seed ? ' (seed)' : ''}` },
    addresses: {
      listen: [...config.listen, ...net.listen],
      // the HTTP chunk listener too, so peers can fetch bulk over it (daemon/http/announce.ts)
      announce: config.announce.length > 0 ? [...config.announce, ...httpAnnounceAddrs(config)] : [],
      appendAnnounce: config.announce.length > 0 ? [] : httpAnnounceAddrs(config)
    },
    transports: [tcp(), ...net.transports],
    connectionProtector: net.protector,
    peerDiscovery: net.discovery,
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 4 * 1024 * 1024 } } as any)],
    connectionManager: {
      maxConnections: config.limits.maxConnections,
      inboundConnectionThreshold: config.limits.inboundConnectionThreshold,
      maxIncomingPendingConnections: config.limits.maxIncomingPendingConnections
    },
    // one host may not hold more than its share of maxConnections
    connectionGater: net.allow.length > 0
      ? allowListGater(new HostConnectionLimit(config.limits.maxConnectionsPerHost), { allow: net.allow })
      : new HostConnectionLimit(config.limits.maxConnectionsPerHost),
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
      pubsub: gossipsub({
        // the payload is a publisher-signed record: a second (peer) signature on it would prove nothing,
        // and without it a message's id is its content hash, so the same record is passed on once
        globalSignaturePolicy: 'StrictNoSign',
        allowPublishToZeroTopicPeers: true,
        allowedTopics: [RELEASE_TOPIC],
        // RPC frames hold a few announcements and control messages; far below gossipsub's 1 MiB default
        maxInboundDataLength: 64 * MAX_ANNOUNCE_BYTES,
        // labs connected through a relay still hear of releases
        runOnLimitedConnection: true,
        scoreParams: ANNOUNCE_SCORE_PARAMS
      }),
      ...net.services,
      ...extra
    }
  })
  if (config.discovery.mdns) dialDiscoveredPeers(node)
  return node as any
}

/**
 * The optional parts of the stack, from configuration: private swarm (pnet key, allow-list), mDNS, and
 * NAT traversal (relay transport and reservations, relay server, AutoNAT, DCUtR).
 */
async function networkOptions (config: HeraldConfig): Promise<{
  protector?: ReturnType<typeof swarmProtector>
  allow: string[]
  discovery: Array<ReturnType<typeof mdns>>
  transports: Array<ReturnType<typeof circuitRelayTransport>>
  listen: string[]
  services: Record<string, (components: any) => unknown>
}> {
  const protector = config.swarm.keyFile != null ? swarmProtector(await loadSwarmKey(config.swarm.keyFile)) : undefined
  // the seeds and the bootstrap peers named by ID are always allowed: naming them is choosing them
  const named = [...config.bootstrap, ...config.nat.relays].flatMap(a => {
    const id = multiaddr(a).getComponents().find(c => c.name === 'p2p')?.value
    return id != null ? [id] : []
  })
  const allow = config.swarm.allowPeers.length > 0 ? [...new Set([...config.swarm.allowPeers, ...config.seeds, ...named])] : []
  const discovery = config.discovery.mdns ? [mdns({ interval: config.discovery.mdnsIntervalMs, serviceTag: `${config.discovery.mdnsServiceTag}.local` })] : []
  const nat = config.nat
  const relayed = nat.relays.length > 0 || nat.holePunch || nat.relayServer
  const services: Record<string, (components: any) => unknown> = {}
  if (nat.autonat) services.autonat = autoNAT()
  if (nat.relayServer) {
    // relayed connections carry chunk transfers: no per-connection byte or time limit (a limited
    // connection would stop Herald's protocols), only a cap on reservations
    services.relay = circuitRelayServer({ reservations: { maxReservations: nat.relayMaxReservations, applyDefaultLimit: false } })
  }
  if (nat.holePunch) services.dcutr = dcutr()
  return {
    protector,
    allow,
    discovery,
    transports: relayed ? [circuitRelayTransport()] : [],
    listen: nat.relays.map(r => `${r}/p2p-circuit`),
    services
  }
}

/** Size of the DHT routing table (not on kad-dht's public type). */
export function routingTableSize (dht: KadDHT): number {
  const table = (dht as unknown as { routingTable?: { size?: number } }).routingTable
  return typeof table?.size === 'number' ? table.size : 0
}
