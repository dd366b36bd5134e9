// Defaults of the desired-state reconciler (daemon/sync), each with why.

/** a pass every minute catches a schedule window opening and retries due, without load (a pass reads the release list) */
export const DEFAULT_INTERVAL_SECONDS = 60
/** a ConfigMap update swaps a symlink and touches several names: one reload after the burst settles */
export const DEFAULT_DEBOUNCE_MS = 300
/** two releases at once keep a lab's link busy without starving the peers it serves */
export const DEFAULT_MAX_CONCURRENT_FETCHES = 2
/** how long a schedule window stays open after its cron time, minutes: a nightly 2 am window closes at 3 am */
export const DEFAULT_WINDOW_MINUTES = 60
/** first retry of a failed entry after 30 s, doubling up to an hour: a release not yet on the network is asked again, not hammered */
export const RETRY_BASE_MS = 30_000
export const RETRY_MAX_MS = 3_600_000
/** documents larger than this are refused (a DatabaseSync lists tens of entries, not megabytes) */
export const MAX_DOCUMENT_BYTES = 1024 * 1024
/** files read from a watched directory */
export const MAX_DOCUMENT_FILES = 256
