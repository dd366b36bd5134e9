// Defaults of the network units (notifications, discovery, private swarms, NAT traversal).

/**
 * A record signed further ahead of the local clock than this is not taken as latest: a publisher whose
 * clock ran years ahead would otherwise freeze "latest" on that record (never-going-back). 10 min covers
 * ordinary clock skew between hosts without NTP discipline.
 */
export const DEFAULT_MAX_FUTURE_MS = 10 * 60_000
/** a publisher re-announces its latest records this often, for peers that missed the first announcement */
export const DEFAULT_REANNOUNCE_MS = 5 * 60_000
/** one re-announce for a burst of peers joining the topic (a lab restart, a bootstrap wave) */
export const REANNOUNCE_DEBOUNCE_MS = 1_000
/** mDNS query interval: a new server on the LAN is found within about this long */
export const DEFAULT_MDNS_INTERVAL_MS = 10_000
/** service name in mDNS answers: Herald daemons answer only each other, not every libp2p app on the LAN */
export const DEFAULT_MDNS_SERVICE_TAG = 'herald'
/** a dial to a peer found on the LAN; a slow one is tried again at its next mDNS answer */
export const DISCOVERY_DIAL_TIMEOUT_MS = 10_000
/** discovered peers dialled at once (a LAN with many servers answers in bursts) */
export const DISCOVERY_DIAL_CONCURRENCY = 4
/** the pnet handshake (nonce exchange) must complete within this long */
export const PNET_HANDSHAKE_TIMEOUT_MS = 5_000
