// Defaults of release events, webhooks and the post-switch hook, each with why.

/** recent events kept for an SSE client that reconnects with Last-Event-ID: a day of busy releases */
export const EVENT_BUFFER = 256
/** events waiting per webhook before new ones are dropped (and counted): a receiver down for hours costs bounded memory */
export const WEBHOOK_QUEUE_MAX = 1_000
/** one POST's limit, ms: a receiver that hangs must not hold the queue */
export const WEBHOOK_TIMEOUT_MS = 10_000
/** attempts per event: with the backoff below, about a minute of retries at the defaults */
export const WEBHOOK_MAX_ATTEMPTS = 6
/** first retry delay, doubling per attempt, capped at WEBHOOK_BACKOFF_MAX_MS */
export const WEBHOOK_BACKOFF_MS = 1_000
export const WEBHOOK_BACKOFF_MAX_MS = 60_000
/** a post-switch hook killed after this long, ms: restarting a service takes seconds, not minutes */
export const HOOK_TIMEOUT_MS = 60_000
/** hook runs waiting; more switches are dropped and counted (each run sees the newest state anyway) */
export const HOOK_QUEUE_MAX = 100
/** output of a hook kept for the log, bytes */
export const HOOK_OUTPUT_MAX = 64 * 1024
/** the signature header: HMAC-SHA256 of the body with the webhook's secret, hex, as `sha256=<hex>` */
export const SIGNATURE_HEADER = 'x-herald-signature-256'
