// Peers found by mDNS are announced by libp2p but not dialled: connect to each one found (bounded), so
// that servers of one LAN trade with each other without the DHT or a bootstrap address.
import { logger } from '@libp2p/logger'
import { DISCOVERY_DIAL_CONCURRENCY, DISCOVERY_DIAL_TIMEOUT_MS } from './constants.js'
import type { Libp2p } from '@libp2p/interface'

const log = logger('herald:discovery')

export function dialDiscoveredPeers (node: Libp2p<any>): void {
  const dialing = new Set<string>()
  node.addEventListener('peer:discovery', (evt) => {
    const { id, multiaddrs } = evt.detail
    const key = id.toString()
    if (id.equals(node.peerId) || dialing.has(key) || dialing.size >= DISCOVERY_DIAL_CONCURRENCY) return
    if (node.getConnections(id).length > 0) return
    dialing.add(key)
    const target = multiaddrs.length > 0 ? multiaddrs : id
    node.dial(target as any, { signal: AbortSignal.timeout(DISCOVERY_DIAL_TIMEOUT_MS) })
      .then(() => { log('connected to %p found on the LAN', id) })
      .catch((err: Error) => { log('dial to %p found on the LAN failed: %s', id, err.message) })
      .finally(() => { dialing.delete(key) })
  })
}
