// Numbers of the HTTP chunk path, each with why.

/** the raw-block media type of the IPFS trustless-gateway form */
export const RAW_BLOCK_TYPE = 'application/vnd.ipld.raw'
/** content-addressed URLs never change: a year, the longest value caches honour (the gateways' own choice) */
export const IMMUTABLE_CACHE_CONTROL = 'public, max-age=29030400, immutable'
/** concurrent requests served per client address; more get 429 (same default as limits.serveInflightPerPeer) */
export const DEFAULT_INFLIGHT_PER_CLIENT = 8
/** open connections per client address; more are closed at once (keep-alive clients need a few) */
export const DEFAULT_CONNECTIONS_PER_CLIENT = 32
/**
 * Under the upload cap a request waits for its share of the budget when that takes at most this long, ms;
 * longer, it gets 429 with Retry-After so the client asks another source instead of holding a connection.
 */
export const DEFAULT_MAX_CAP_WAIT_MS = 2_000
/** idle keep-alive connections are closed after this long (clients keep theirs ~4 s), ms */
export const KEEP_ALIVE_TIMEOUT_MS = 10_000
/** a request's headers must arrive within this long: slow-loris bound, ms */
export const HEADERS_TIMEOUT_MS = 10_000
/** one response, end to end: generous, a capped node may be slow, ms */
export const REQUEST_TIMEOUT_MS = 60_000
/** client: one chunk request's hard timeout, ms */
export const CLIENT_TIMEOUT_MS = 30_000
/** client: requests in flight at once to one base URL (each on its own keep-alive connection) */
export const CLIENT_WINDOW = 4
