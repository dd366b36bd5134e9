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
  /** present when delta chunks were computed: against the newest earlier release */
  delta?: DeltaSummary
  /** against older releases too (config publish.deltaReleases > 1), newest first */
  olderDeltas?: DeltaSummary[]
}

export interface FetchRequest {
  name: ReleaseName
  /** Materialize under this root instead of the configured one (optional). */
  out?: string
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
  store: { chunks: number, bytes: number, diskBytes: number, manifests: number, releases: number, pins: number }
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

/** What the API and CLI drive. Errors thrown carry a stable string `code` (see daemon/errors.ts). */
export interface HeraldService {
  publish(req: PublishRequest): Promise<PublishResult>
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
