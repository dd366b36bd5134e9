// What GET /v1/sync and `herald sync status` report: the desired state and how far the node is from it.

/**
 * pending also covers a `version: latest` entry with no release announced yet;
 * held: complete, pinned, (validated); fetching: a fetch runs; pending: to fetch, waiting for a fetch slot;
 * waiting: outside the schedule window; failed: the last attempt failed (retried at retryAt); refused:
 * the release is signed for another manifest than the entry pins; unsupported: `version: latest` in a
 * build that cannot resolve it.
 */
export type SyncEntryState = 'held' | 'fetching' | 'pending' | 'waiting' | 'failed' | 'refused' | 'unsupported'

export interface SyncEntryStatus {
  release: string
  dataset: string
  version: string
  /** the document it comes from: `file#metadata.name` */
  source: string
  /** `latest`: the entry follows the newest announced release, resolved to `version` */
  tracks?: 'latest'
  /** the manifest CID the entry pins, if any */
  manifestCid?: string
  /** the manifest CID of the release as this node knows it */
  heldManifestCid?: string
  /** this entry should be the dataset's current release, and is it */
  wantCurrent: boolean
  current: boolean
  pinned: boolean
  state: SyncEntryState
  fetchId?: string
  error?: { code: string, message: string }
  /** ms since the epoch: when a failed entry is tried again */
  retryAt?: number
}

export interface SyncStatus {
  enabled: boolean
  path?: string
  files: string[]
  /** the documents do not parse or validate: nothing is changed until they do */
  error?: { code: string, message: string }
  /** ms since the epoch */
  lastReconcileAt?: number
  lastReconcileSeconds?: number
  reconciles: number
  window?: { open: boolean, opensAt?: number, closesAt?: number }
  entries: SyncEntryStatus[]
  /** releases unpinned (and collected) by the reconciler since start */
  removed: string[]
}
