// One typed configuration for heraldd, built from defaults < config file < environment < flags.
// Unknown keys are rejected at every level, so a typo never silently falls back to a default.
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { parsePublisherKey } from '../protocol/release.js'
import { HeraldError } from './errors.js'
import { parseTrustEntry } from './node/trust.js'
import { parseChunkSize } from '../protocol/chunker.js'
import { DEFAULT_MAX_FUTURE_MS, DEFAULT_MDNS_INTERVAL_MS, DEFAULT_MDNS_SERVICE_TAG, DEFAULT_REANNOUNCE_MS } from './net/constants.js'

export const DEFAULT_P2P_PORT = 4480
export const DEFAULT_API_PORT = 7480
export const DEFAULT_METRICS_PORT = 9480

const LimitsSchema = z.object({
  /** concurrent chunk-batch requests to one peer from our fetcher */
  maxInflightPerPeer: z.number().int().min(1).max(64).default(4),
  /** concurrent chunk-batch requests overall for one fetch */
  maxInflight: z.number().int().min(1).max(256).default(16),
  /** chunks per request batch (about 4 MiB at the default chunk size) */
  batchSize: z.number().int().min(1).max(64).default(8),
  /** upload cap for serving peers, bytes/s; 0 = unlimited */
  uploadBytesPerSecond: z.number().int().min(0).default(0),
  /** send chunks zstd-compressed to peers that accept it, and ask for them (fewer bytes, more CPU) */
  compress: z.boolean().default(true),
  /** concurrent serving streams per peer; more get RATE_LIMITED */
  serveInflightPerPeer: z.number().int().min(1).max(256).default(8),
  maxConnections: z.number().int().min(2).default(300),
  /** inbound connections per second per host; loopback tests put many peers on one host */
  inboundConnectionThreshold: z.number().int().min(1).default(100),
  maxIncomingPendingConnections: z.number().int().min(1).default(100),
  /** open inbound connections from one IP address (pending ones included); more are refused at accept */
  maxConnectionsPerHost: z.number().int().min(1).default(64),
  /** largest manifest fetched from a peer or decoded, bytes (protocol/manifest.ts MAX_MANIFEST_BYTES is the ceiling) */
  maxManifestBytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(256 * 1024 * 1024),
  /** most chunks one manifest may list (3.5 M: 200 GiB at the 64 KiB minimum chunk size, with room) */
  maxManifestChunks: z.number().int().min(1).max(4_000_000).default(3_500_000)
}).strict()

const FetchSchema = z.object({
  /** how long chunks wait for a peer before the seed is asked for them, ms */
  seedDeadlineMs: z.number().int().min(0).default(2_000),
  /** a request slower than this is hedged to another holder, ms */
  hedgeAfterMs: z.number().int().min(100).default(5_000),
  /** one request's hard timeout, ms */
  requestTimeoutMs: z.number().int().min(1_000).default(30_000),
  /** give up when no source made progress for this long, ms */
  stallTimeoutMs: z.number().int().min(1_000).default(120_000),
  /** absolute directories `herald fetch --out` may write under, besides the data dir and releasesDir */
  outRoots: z.array(z.string().refine(isAbsolute, 'must be an absolute path')).default([]),
  /** fetch chunks from peers' HTTP listeners when they announce one; false keeps bulk on encrypted libp2p */
  httpPeers: z.boolean().default(true),
  /** requests in flight to one HTTP source (a peer's listener or an origin), each on a keep-alive connection */
  httpWindow: z.number().int().min(1).max(64).default(8)
}).strict()

const PublishSchema = z.object({
  /** encode new chunks as deltas against the previous release of the dataset (publisher only) */
  delta: z.boolean().default(true),
  /** earlier releases to encode deltas against: 1 = the newest (N-1); 2 adds N-2 for labs that skipped one */
  deltaReleases: z.number().int().min(1).max(4).default(1),
  /** zstd level of delta objects (protocol/delta.ts DELTA_LEVEL) */
  deltaLevel: z.number().int().min(1).max(19).default(9),
  /** consecutive new chunks per delta object (protocol/delta-encoder.ts DELTA_GROUP, at most MAX_DELTA_TARGETS) */
  deltaGroup: z.number().int().min(1).max(32).default(32),
  /** worker threads for delta encoding; 0 = one per core */
  threads: z.number().int().min(0).max(256).default(0),
  /** chunker sizes `MIN:AVG:MAX` in bytes for new releases (default: the manifest format's 64K:256K:1M) */
  chunkSize: z.string().optional().superRefine((v, ctx) => {
    if (v == null) return
    try { parseChunkSize(v) } catch (err: any) { ctx.addIssue({ code: z.ZodIssueCode.custom, message: err.message }) }
  }),
  /** keep `.gz` inputs as they are: true for all, or glob patterns (see docs/FORMAT.md) */
  keepCompressed: z.union([z.boolean(), z.array(z.string().min(1))]).default(false),
  /** input read rate limit while publishing, bytes/s (0 = none): spares a disk or NFS mount others use */
  readBytesPerSecond: z.number().int().min(0).default(0)
}).strict()

/** desired state: DatabaseSync documents the reconciler applies (daemon/sync, docs/OPERATIONS.md) */
const SyncSchema = z.object({
  /** a DatabaseSync file, or a directory of *.yaml / *.yml / *.json documents (a ConfigMap mount); absent: no reconciler */
  path: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** a pass at least this often, seconds (besides one at each document change and fetch end) */
  intervalSeconds: z.number().int().min(1).max(86_400).default(60),
  /** quiet time after a change of the documents before they are read, ms */
  debounceMs: z.number().int().min(0).max(60_000).default(300),
  /** releases the reconciler fetches at once */
  maxConcurrentFetches: z.number().int().min(1).max(32).default(2)
}).strict()

const EVENT_TYPE_NAMES = ['release.available', 'release.fetched', 'release.switched', 'release.failed'] as const

/** a webhook: release events POSTed as JSON, signed with HMAC-SHA256 over the body */
const WebhookSchema = z.object({
  url: z.string().refine(u => { try { return ['http:', 'https:'].includes(new URL(u).protocol) } catch { return false } }, 'an http:// or https:// URL'),
  /** the HMAC key, at least 16 characters; or secretFile, a file holding it */
  secret: z.string().min(16, 'at least 16 characters').optional(),
  secretFile: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** the event types sent (default all) */
  events: z.array(z.enum(EVENT_TYPE_NAMES)).min(1).optional(),
  timeoutMs: z.number().int().min(100).max(300_000).default(10_000),
  maxAttempts: z.number().int().min(1).max(100).default(6),
  /** first retry delay, doubled per attempt (at most a minute) */
  backoffMs: z.number().int().min(10).max(600_000).default(1_000),
  /** events waiting for this webhook; more are dropped and counted */
  queueMax: z.number().int().min(1).max(100_000).default(1_000)
}).strict().refine(w => (w.secret == null) !== (w.secretFile == null), 'give exactly one of secret and secretFile')

const HooksSchema = z.object({
  /** run after `current` of a dataset changed: argv (no shell), with HERALD_RELEASE_PATH etc. in its environment */
  postSwitch: z.object({
    command: z.array(z.string().min(1)).min(1),
    timeoutMs: z.number().int().min(100).max(3_600_000).default(60_000)
  }).strict().optional()
}).strict()

/** `/ip4/1.2.3.4/tcp/4480` for `1.2.3.4:4480`, `/dns4/host/tcp/4480` for `host:4480`: a hint for a common mistake. */
function multiaddrHint (text: string): string {
  const m = /^\[?([\w.:-]+?)\]?:(\d{1,5})$/.exec(text.trim())
  if (m == null) return ''
  const proto = /^\d+\.\d+\.\d+\.\d+$/.test(m[1]) ? 'ip4' : m[1].includes(':') ? 'ip6' : 'dns4'
  return ` (write /${proto}/${m[1]}/tcp/${m[2]})`
}

/** A list of multiaddrs, each checked by the multiaddr parser, so a typo fails at start and not at dial time. */
const Multiaddrs = z.array(z.string()).superRefine((addrs, ctx) => {
  addrs.forEach((addr, i) => {
    try {
      multiaddr(addr)
    } catch (err: any) {
      ctx.addIssue({ code: 'custom', path: [i], message: `${JSON.stringify(addr)} is not a multiaddr: ${String(err.message)}${multiaddrHint(addr)}` })
    }
  })
})

/**
 * The problem with one trusted-publisher entry, or undefined: a key's text form, or the path of a file
 * holding one (entries starting with `/`, `./`, `../`, as daemon/node/trust.ts reads them).
 */
/** What is wrong with a `trustedPublishers` entry (`[NAMES=]KEY|FILE`, see daemon/node/trust.ts), if anything. */
export function trustEntryProblem (entry: string): string | undefined {
  let parsed: { names?: string, source: string }
  try {
    parsed = parseTrustEntry(entry)
  } catch (err: any) {
    return String(err.message).replace(/^trustedPublishers: /, '')
  }
  let text = parsed.source
  if (!text.startsWith('ed25519:')) {
    try {
      text = readFileSync(text, 'utf8')
    } catch (err: any) {
      return `cannot read key file ${parsed.source}: ${String(err.code ?? err.message)}`
    }
  }
  try {
    parsePublisherKey(text)
    return undefined
  } catch (err: any) {
    if (!parsed.source.startsWith('ed25519:')) return `key file ${parsed.source} does not hold a publisher key (${String(err.message)})`
    return `${JSON.stringify(parsed.source)} is not a publisher key (${String(err.message)})`
  }
}

const PeerIdText = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{46,60}$/, 'a peer ID (base58, as `heraldd start` prints it)')

/** New-release notifications over gossipsub (daemon/net/release-notifier.ts). */
const NotifySchema = z.object({
  enabled: z.boolean().default(true),
  /** a record signed further ahead of this node's clock is not taken as latest, ms */
  maxFutureMs: z.number().int().min(0).default(DEFAULT_MAX_FUTURE_MS),
  /** a publisher announces its latest records again this often (peers that joined late), ms; 0 = never */
  reannounceMs: z.number().int().min(0).default(DEFAULT_REANNOUNCE_MS)
}).strict()

/** Finding peers without the DHT. */
const DiscoverySchema = z.object({
  /** answer and ask mDNS on the local network, and connect to the Herald daemons found */
  mdns: z.boolean().default(false),
  mdnsIntervalMs: z.number().int().min(1_000).default(DEFAULT_MDNS_INTERVAL_MS),
  /** only daemons with the same tag find each other (one per swarm on a shared LAN) */
  mdnsServiceTag: z.string().regex(/^[a-z0-9-]{1,40}$/, 'lower-case letters, digits and -').default(DEFAULT_MDNS_SERVICE_TAG)
}).strict()

/** A private swarm: a pre-shared key and/or an allow-list of peer IDs (daemon/net/private-swarm.ts). */
const SwarmSchema = z.object({
  /** a swarm key file (`/key/swarm/psk/1.0.0/` format): only nodes holding the same key can connect */
  keyFile: z.string().min(1).optional(),
  /** if not empty, only these peers (and the seeds and bootstrap peers named by ID) may connect */
  allowPeers: z.array(PeerIdText).default([]),
  /** serve the chunk HTTP listener in a private swarm anyway (it has no peer identity to check) */
  allowHttp: z.boolean().default(false)
}).strict()

/** Labs behind NAT: AutoNAT, circuit relay v2, DCUtR hole punching. */
const NatSchema = z.object({
  /** ask peers whether our addresses are reachable from outside */
  autonat: z.boolean().default(false),
  /** act as a relay for peers behind NAT (a public node: the seed, or any lab with a public address) */
  relayServer: z.boolean().default(false),
  /** relayed connections a relay server keeps reserved at once */
  relayMaxReservations: z.number().int().min(1).max(1_024).default(64),
  /** relay addresses (with /p2p/<id>) to reserve a slot on and be reachable through */
  relays: Multiaddrs.default([]),
  /** try to replace a relayed connection by a direct one (DCUtR) */
  holePunch: z.boolean().default(false)
}).strict()

const TrustEntries = z.array(z.string()).superRefine((entries, ctx) => {
  entries.forEach((entry, i) => {
    const problem = trustEntryProblem(entry)
    if (problem != null) ctx.addIssue({ code: 'custom', path: [i], message: problem })
  })
})

export const ConfigSchema = z.object({
  dataDir: z.string().min(1),
  seed: z.boolean().default(false),
  /** hand each fresh chunk to one downloader before repeating it (seed only) */
  superSeed: z.boolean().default(true),
  listen: Multiaddrs.default([`/ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}`]),
  announce: Multiaddrs.default([]),
  bootstrap: Multiaddrs.default([]),
  trustedPublishers: TrustEntries.default([]),
  /**
   * peer IDs of the publisher's seeds (origins of last resort, never penalised). Empty: the peers reached
   * through the bootstrap addresses are the seeds (a bootstrap address with /p2p/<id> names its peer).
   */
  seeds: z.array(z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{46,60}$/, 'a seed is a peer ID (base58, as `heraldd start` prints it)')).default([]),
  notify: NotifySchema.default(NotifySchema.parse({})),
  discovery: DiscoverySchema.default(DiscoverySchema.parse({})),
  swarm: SwarmSchema.default(SwarmSchema.parse({})),
  nat: NatSchema.default(NatSchema.parse({})),
  /** where releases are materialized: <releasesDir>/<dataset>/<version>, <dataset>/current */
  releasesDir: z.string().optional(),
  api: z.object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).default(DEFAULT_API_PORT),
    /** Host header names accepted besides loopback names and `host` (DNS-rebinding check) */
    allowedHosts: z.array(z.string().min(1)).default([])
  }).strict().default({ host: '127.0.0.1', port: DEFAULT_API_PORT, allowedHosts: [] }),
  metrics: z.object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).default(DEFAULT_METRICS_PORT),
    enabled: z.boolean().default(true)
  }).strict().default({ host: '127.0.0.1', port: DEFAULT_METRICS_PORT, enabled: true }),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
  fetch: FetchSchema.default(FetchSchema.parse({})),
  publish: PublishSchema.default(PublishSchema.parse({})),
  dht: z.object({
    /** provide chunk CIDs too (background, bounded queue) */
    provideChunks: z.boolean().default(true),
    provideQueueMax: z.number().int().min(0).default(100_000)
  }).strict().default({ provideChunks: true, provideQueueMax: 100_000 }),
  /**
   * static origins: base URLs where `herald export` output is served (a web server, bucket or CDN); asked like
   * the seed (last, for what peers cannot serve in time), and for the record and manifest when no peer has them
   */
  origins: z.array(z.string().url().refine(u => /^https?:\/\//.test(u), 'an origin is an http:// or https:// URL')).default([]),
  /** the chunk-serving HTTP listener (IPFS trustless-gateway form, docs/PROTOCOL.md): off unless enabled */
  http: z.object({
    enabled: z.boolean().default(false),
    host: z.string().default('127.0.0.1'),
    /** next to the libp2p port (4480) */
    port: z.number().int().min(0).max(65_535).default(4481),
    /** PEM files: HTTPS instead of HTTP when both are given */
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    /**
     * multiaddrs announced to peers for this listener (/ip4/…/tcp/N/http, …/tls/http); by default the listener's
     * own address when host is not a wildcard and port is not 0
     */
    announce: z.array(z.string()).optional()
  }).strict().refine(h => (h.tlsCert == null) === (h.tlsKey == null), 'tlsCert and tlsKey go together')
    .default({ enabled: false, host: '127.0.0.1', port: 4481 }),
  sync: SyncSchema.default(SyncSchema.parse({})),
  webhooks: z.array(WebhookSchema).max(32).default([]),
  hooks: HooksSchema.default({}),
  log: z.object({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info')
  }).strict().default({ level: 'info' })
}).strict()

export type HeraldConfig = z.infer<typeof ConfigSchema>

export class ConfigError extends HeraldError {
  static name = 'ConfigError'
  constructor (message: string, options?: ErrorOptions) {
    super('INVALID_CONFIG', message, options)
    this.name = 'ConfigError'
  }
}

export function defaultDataDir (): string {
  if (process.env.HERALD_DATA_DIR != null && process.env.HERALD_DATA_DIR !== '') return process.env.HERALD_DATA_DIR
  return process.getuid?.() === 0 ? '/var/lib/herald' : join(homedir(), '.herald')
}

/** Flags as the heraldd CLI hands them over: only what was given. */
export interface ConfigFlags {
  config?: string
  dataDir?: string
  seed?: boolean
  listen?: string[]
  bootstrap?: string[]
  trustedPublishers?: string[]
  apiHost?: string
  apiPort?: number
  metricsHost?: string
  metricsPort?: number
  logLevel?: string
  uploadLimit?: number
  syncPath?: string
}

type Partial_ = Record<string, any>

function list (value: string | undefined): string[] | undefined {
  if (value == null || value.trim() === '') return undefined
  return value.split(',').map(s => s.trim()).filter(s => s !== '')
}

function int (name: string, value: string | undefined): number | undefined {
  if (value == null || value === '') return undefined
  const n = Number(value)
  if (!Number.isInteger(n)) throw new ConfigError(`${name} must be an integer, got ${JSON.stringify(value)}`)
  return n
}

function bool (name: string, value: string | undefined): boolean | undefined {
  if (value == null || value === '') return undefined
  if (['1', 'true', 'yes'].includes(value.toLowerCase())) return true
  if (['0', 'false', 'no'].includes(value.toLowerCase())) return false
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(value)}`)
}

const KNOWN_ENV = new Set(['HERALD_DATA_DIR', 'HERALD_CONFIG', 'HERALD_SEED', 'HERALD_LISTEN', 'HERALD_BOOTSTRAP',
  'HERALD_TRUSTED_PUBLISHERS', 'HERALD_API_HOST', 'HERALD_API_PORT', 'HERALD_METRICS_HOST', 'HERALD_METRICS_PORT',
  'HERALD_LOG_LEVEL', 'HERALD_UPLOAD_LIMIT', 'HERALD_API', 'HERALD_API_TOKEN', 'HERALD_RELEASES_DIR',
  'HERALD_API_TIMEOUT_MS', 'HERALD_SYNC_PATH',
  // set by heraldd for its post-switch hook (a hook may run herald)
  'HERALD_EVENT', 'HERALD_RELEASE', 'HERALD_DATASET', 'HERALD_VERSION', 'HERALD_RELEASE_PATH', 'HERALD_MANIFEST_CID', 'HERALD_PREVIOUS_VERSION'])

/** Every HERALD_* variable heraldd or herald does not know, so that all typos are reported at once. */
export function unknownEnv (env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env).filter(key => key.startsWith('HERALD_') && !KNOWN_ENV.has(key)).sort()
}

function fromEnv (env: NodeJS.ProcessEnv): Partial_ {
  const unknown = unknownEnv(env)
  if (unknown.length > 0) {
    throw new ConfigError(`unknown environment variable${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${[...KNOWN_ENV].join(', ')})`)
  }
  return {
    dataDir: env.HERALD_DATA_DIR || undefined,
    seed: bool('HERALD_SEED', env.HERALD_SEED),
    listen: list(env.HERALD_LISTEN),
    bootstrap: list(env.HERALD_BOOTSTRAP),
    trustedPublishers: list(env.HERALD_TRUSTED_PUBLISHERS),
    releasesDir: env.HERALD_RELEASES_DIR || undefined,
    api: { host: env.HERALD_API_HOST || undefined, port: int('HERALD_API_PORT', env.HERALD_API_PORT) },
    metrics: { host: env.HERALD_METRICS_HOST || undefined, port: int('HERALD_METRICS_PORT', env.HERALD_METRICS_PORT) },
    log: { level: env.HERALD_LOG_LEVEL || undefined },
    limits: { uploadBytesPerSecond: int('HERALD_UPLOAD_LIMIT', env.HERALD_UPLOAD_LIMIT) },
    sync: { path: env.HERALD_SYNC_PATH != null && env.HERALD_SYNC_PATH !== '' ? resolve(env.HERALD_SYNC_PATH) : undefined }
  }
}

function fromFlags (flags: ConfigFlags): Partial_ {
  return {
    dataDir: flags.dataDir,
    seed: flags.seed,
    listen: flags.listen,
    bootstrap: flags.bootstrap,
    trustedPublishers: flags.trustedPublishers,
    api: { host: flags.apiHost, port: flags.apiPort },
    metrics: { host: flags.metricsHost, port: flags.metricsPort },
    log: { level: flags.logLevel },
    limits: { uploadBytesPerSecond: flags.uploadLimit },
    sync: { path: flags.syncPath }
  }
}

/** Deep merge where `undefined` in `over` never replaces a value. */
function merge (base: Partial_, over: Partial_): Partial_ {
  const out: Partial_ = { ...base }
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' && out[k] !== null && !Array.isArray(out[k])) {
      out[k] = merge(out[k], v)
    } else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const inner = merge({}, v)
      if (Object.keys(inner).length > 0) out[k] = inner
    } else {
      out[k] = v
    }
  }
  return out
}

/** Read a config file; a missing file is an error when it was named explicitly (`--config`, HERALD_CONFIG). */
export function readConfigFile (path: string, namedBy?: string): Partial_ {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err: any) {
    if (err.code === 'ENOENT' && namedBy != null) throw new ConfigError(`config file ${path} (${namedBy}) does not exist`, { cause: err })
    if (err.code === 'ENOENT') return {}
    throw new ConfigError(`cannot read config file ${path}: ${err.message}`, { cause: err })
  }
  try {
    const parsed = JSON.parse(text)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object')
    return parsed
  } catch (err: any) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${err.message}`, { cause: err })
  }
}

export function configFilePath (flags: ConfigFlags, env: NodeJS.ProcessEnv = process.env): string {
  if (flags.config != null) return resolve(flags.config)
  if (env.HERALD_CONFIG != null && env.HERALD_CONFIG !== '') return resolve(env.HERALD_CONFIG)
  return join(resolve(flags.dataDir ?? defaultDataDir()), 'config.json')
}

/** Validate a merged raw object into a HeraldConfig, with one message listing every problem. */
export function parseConfig (raw: unknown): HeraldConfig {
  const result = ConfigSchema.safeParse(raw)
  if (!result.success) {
    const problems = result.error.issues.map(i => {
      const where = i.path.length > 0 ? i.path.join('.') : '(top level)'
      return `${where}: ${i.message}`
    })
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`)
  }
  const config = result.data
  config.dataDir = resolve(config.dataDir)
  if (isPrivateSwarm(config) && config.http.enabled && !config.swarm.allowHttp) {
    throw new ConfigError('invalid configuration: http.enabled: the chunk HTTP listener serves whoever reaches it, which a private swarm (swarm.keyFile, swarm.allowPeers) does not allow; set swarm.allowHttp to serve it anyway')
  }
  if (config.swarm.keyFile != null) config.swarm.keyFile = resolve(config.dataDir, config.swarm.keyFile)
  return config
}

export function loadConfig (flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): HeraldConfig {
  const namedBy = flags.config != null ? '--config' : env.HERALD_CONFIG != null && env.HERALD_CONFIG !== '' ? 'HERALD_CONFIG' : undefined
  const file = readConfigFile(configFilePath(flags, env), namedBy)
  let raw = merge({ dataDir: defaultDataDir() }, file)
  raw = merge(raw, fromEnv(env))
  raw = merge(raw, fromFlags(flags))
  return parseConfig(raw)
}

/** A swarm key or an allow-list is set. */
export function isPrivateSwarm (config: HeraldConfig): boolean {
  return config.swarm.keyFile != null || config.swarm.allowPeers.length > 0
}

export function releasesDir (config: HeraldConfig): string {
  return config.releasesDir != null ? resolve(config.releasesDir) : join(config.dataDir, 'releases')
}
