// The daemon's operations as the local API and the CLI see them. `daemon/node/` implements this
// interface; `daemon/api/` serves it over HTTP and `daemon/api/client.ts` speaks to that server.
// Every value here is plain JSON (strings, numbers, booleans, arrays, objects), so it crosses the HTTP
// boundary unchanged.

/** `dataset@version`, e.g. `uniprot@2024-03`. */
export type ReleaseName = string

export interface PublishRequest {
  /** dataset@version */
  name: ReleaseName
  /** Absolute path of the directory (or single file) on the daemon's host. */
  dir: string
  /** The release of the same dataset to encode delta chunks against (default: the newest one held). */
  base?: ReleaseName
  /** false: no delta chunks for this release (default: the daemon's publish.delta setting) */
  delta?: boolean
  /** replace an existing `name` whose content differs (refused with VERSION_EXISTS otherwise) */
  force?: boolean
  /** publish even when the input holds no file (refused with EMPTY_RELEASE otherwise) */
  allowEmpty?: boolean
  /** keep `.gz` inputs as they are: true for all, or glob patterns (default: the daemon's publish.keepCompressed) */
  keepCompressed?: boolean | string[]
  /** chunker sizes `MIN:AVG:MAX` in bytes (default: the daemon's publish.chunkSize, else the format's default) */
  chunkSize?: string
}

export type PublishState = 'scanning' | 'reading' | 'encoding' | 'signing' | 'done' | 'failed'

/** A publish job, as `POST /v1/publish` answers it and its event stream reports it. */
export interface PublishProgress {
  id: string
  name: ReleaseName
  dir: string
  state: PublishState
  /** input files (an archive counts once) and their bytes, known once scanned */
  filesTotal: number
  bytesTotal: number
  filesRead: number
  bytesRead: number
  chunks: number
  /** chunks and bytes the store did not hold before */
  newChunks: number
  newBytes: number
  /** input read rate so far, and the time left at that rate */
  bytesPerSecond: number
  etaSeconds?: number
  /** the input file being read */
  current?: string
  startedAt: number
  finishedAt?: number
  result?: PublishResult
  error?: { code: string, message: string }
}

export interface ImportRequest {
  /** the release the files are a copy of (dataset@version), e.g. one downloaded by FTP or rsync */
  name: ReleaseName
  /** absolute path of the directory on the daemon's host */
  dir: string
}

export interface ImportResult {
  name: ReleaseName
  files: number
  chunks: number
  /** chunks the store did not hold before */
  newChunks: number
  bytes: number
  /** chunks of the named release now held (when its record and manifest could be resolved) */
  releaseChunksHeld?: number
  releaseChunks?: number
  /** true: the named release was found and pinned, so gc keeps what was imported */
  pinned: boolean
  seconds: number
}

export interface DeltaSummary {
  /** the release the deltas are against */
  base: ReleaseName
  /** distinct new chunks the base lacks, and their bytes */
  candidates: number
  candidateBytes: number
  /** chunks given a delta encoding, and what their delta objects weigh */
  encoded: number
  deltaBytes: number
  /** what a peer holding the base moves for the new chunks (deltas, else compressed chunks) */
  movedBytes: number
  seconds: number
}

export interface PublishResult {
  name: ReleaseName
  manifestCid: string
  seq: number
  files: number
  chunks: number
  /** chunks not already in the store */
  newChunks: number
  bytes: number
  seconds: number
  /** true when `name` already held exactly this content: nothing was signed, `seq` is the existing one */
  unchanged?: boolean
  /** the chunker sizes the manifest records */
  chunker?: { minSize: number, avgSize: number, maxSize: number }
  /** present when delta chunks were computed: against the newest earlier release */
  delta?: DeltaSummary
  /** against older releases too (config publish.deltaReleases > 1), newest first */
  olderDeltas?: DeltaSummary[]
}

export interface FetchRequest {
  name: ReleaseName
  /** Materialize under this root instead of the configured one (optional; absolute, inside an allowed root). */
  out?: string
  /** allow replacing a non-empty `<out>/<dataset>/<version>` Herald did not make (checked by the API) */
  force?: boolean
  /** the manifest CID the release must be signed for: another is refused with MANIFEST_MISMATCH before any chunk moves */
  manifestCid?: string
}

export type FetchState = 'resolving' | 'planning' | 'fetching' | 'materializing' | 'done' | 'failed'

/** Bytes received, split by where they came from. */
export interface SourceSplit {
  peer: number
  seed: number
}

export interface FetchProgress {
  id: string
  name: ReleaseName
  state: FetchState
  manifestCid?: string
  totalChunks: number
  totalBytes: number
  /** chunks/bytes already in the local store before this fetch started (the reused part) */
  reusedChunks: number
  reusedBytes: number
  /** chunks/bytes received and verified during this fetch */
  doneChunks: number
  doneBytes: number
  /** bytes on the wire by source (may be smaller than doneBytes when compressed or delta-encoded) */
  wireBytes: SourceSplit
  peers: number
  startedAt: number
  finishedAt?: number
  /** where the files are, once materialized */
  path?: string
  error?: { code: string, message: string }
}

export interface ReleaseInfo {
  name: ReleaseName
  dataset: string
  version: string
  manifestCid: string
  seq: number
  publishedAt: number
  publisher: string
  pinned: boolean
  current: boolean
  /** true when every chunk of the manifest is in the local store */
  complete: boolean
  files?: number
  bytes?: number
  path?: string
}

export interface PeerInfo {
  peerId: string
  addrs: string[]
  seed: boolean
  rttMs?: number
  /** recent receive throughput from this peer, bytes/s */
  throughput?: number
  bytesReceived: number
  bytesSent: number
  penalties: number
}

export interface StatusInfo {
  peerId: string
  seed: boolean
  version: string
  uptimeSeconds: number
  listenAddrs: string[]
  peers: number
  dhtRoutingTableSize: number
  provideBacklog: number
  /** `indexReads`: keys of the store's index read since it opened (start-up reads one record per release, nothing per chunk) */
  store: { chunks: number, bytes: number, diskBytes: number, manifests: number, releases: number, pins: number, indexReads?: number }
  /** bytes received by source since start, all releases */
  received: SourceSplit
  /** bytes sent to peers since start */
  served: number
  fetches: FetchProgress[]
}

export interface GcResult {
  chunksFreed: number
  bytesFreed: number
  seconds: number
  /** releases whose directories were removed (neither pinned nor current) */
  releasesRemoved?: string[]
}

export interface VerifyResult {
  name: ReleaseName
  ok: boolean
  chunksChecked: number
  bad: string[]
  missing: number
  filesChecked: number
  badFiles: string[]
}

export interface PlanResult {
  name: ReleaseName
  releaseBytes: number
  releaseChunks: number
  reusedBytes: number
  reusedChunks: number
  /** chunks that will move as delta objects */
  deltaChunks: number
  /** bytes to move by encoding */
  toMove: { raw: number, compressed: number, delta: number, manifest: number, total: number }
}

export interface RollbackResult {
  dataset: string
  from?: string
  to: string
}

/** `herald export`: a release written in the HTTP chunk path's URL layout (docs/PROTOCOL.md) */
export interface ExportResult {
  name: ReleaseName
  dir: string
  manifestCid: string
  /** distinct chunks of the release, all exported */
  chunks: number
  /** delta objects exported; those this node does not hold are counted in deltaObjectsMissing */
  deltaObjects: number
  deltaObjectsMissing: number
  /** block files written now; `kept`: already there with the right size */
  written: number
  kept: number
  bytesWritten: number
  seconds: number
}

/**
 * A release that a trusted publisher has signed, as the node learned of it (pubsub announcement, a fetch,
 * or its own publish). Emitted once per record newer than the dataset's latest (daemon/net/release-notifier.ts).
 */
export interface ReleaseAvailable {
  dataset: string
  version: string
  manifestCid: string
  seq: number
  /** the publisher's signed time, ms since the epoch: the order of "latest" */
  publishedAt: number
  /** `ed25519:…` text form of the signing key */
  publisher: string
  /** the peer the announcement came through, or 'local' */
  from: string
  /** when this node accepted it, ms since the epoch */
  receivedAt: number
}

/** New-release notifications for the rest of the daemon (reconciler, webhooks, /v1/events). */
export interface ReleaseNotifications {
  /** the newest verified release of a dataset this node knows of */
  latest(dataset: string): ReleaseAvailable | undefined
  /** called for each newly accepted latest release; returns an unsubscribe function */
  onReleaseAvailable(listener: (release: ReleaseAvailable) => void): () => void
}

/** What the API and CLI drive. Errors thrown carry a stable string `code` (see daemon/errors.ts). */
export interface HeraldService {
  /** the newest verified release of a dataset announced to or fetched by this node (undefined: none) */
  latestRelease?(dataset: string): ReleaseAvailable | undefined
  /** Chunk files already on disk into the store, so that the next fetch moves only the delta. */
  importRelease(req: ImportRequest): Promise<ImportResult>
  /** Starts a publish job and returns at once; follow it with getPublish/onPublishProgress. */
  startPublish(req: PublishRequest): Promise<PublishProgress>
  getPublish(id: string): PublishProgress | undefined
  /** Subscribe to progress events of one publish; returns an unsubscribe function. */
  onPublishProgress(id: string, listener: (p: PublishProgress) => void): () => void
  /** Starts (or joins) a fetch and returns at once; follow it with getFetch/onFetchProgress. */
  startFetch(req: FetchRequest): Promise<FetchProgress>
  getFetch(id: string): FetchProgress | undefined
  /** Subscribe to progress events of one fetch; returns an unsubscribe function. */
  onFetchProgress(id: string, listener: (p: FetchProgress) => void): () => void
  plan(name: ReleaseName): Promise<PlanResult>
  listReleases(): Promise<ReleaseInfo[]>
  status(): Promise<StatusInfo>
  peers(): Promise<PeerInfo[]>
  pin(name: ReleaseName): Promise<ReleaseInfo>
  unpin(name: ReleaseName, opts?: { force?: boolean }): Promise<ReleaseInfo>
  gc(): Promise<GcResult>
  verify(name: ReleaseName): Promise<VerifyResult>
  rollback(dataset: string, to?: string): Promise<RollbackResult>
  /** write a held release's blocks and record into `dir` (absolute) in the HTTP URL layout */
  exportRelease(name: ReleaseName, dir: string): Promise<ExportResult>
  /** true once the store is open, libp2p started and (unless seed) a peer is reachable */
  ready(): { ready: boolean, reasons: string[] }
}
