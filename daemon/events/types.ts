// Release events: what the node did with a release, as GET /v1/events streams them and webhooks POST them.
import type { FetchProgress } from '../types.js'

export const EVENT_TYPES = ['release.available', 'release.fetched', 'release.switched', 'release.failed'] as const
export type ReleaseEventType = typeof EVENT_TYPES[number]

export interface ReleaseEvent {
  /** increasing per daemon run; the SSE `id:` */
  id: number
  type: ReleaseEventType
  /** ms since the epoch */
  time: number
  /** the daemon that saw it */
  peerId: string
  release: string
  dataset: string
  version: string
  manifestCid?: string
  /** fetched, switched: the release's directory */
  path?: string
  /** switched: the version `current` pointed to before, when known */
  previous?: string
  /** what caused it: a fetch ending, a rollback (by hand or by the reconciler), the desired-state reconciler */
  origin: 'fetch' | 'rollback' | 'sync' | 'announce'
  /** failed: the error's stable code and message */
  error?: { code: string, message: string }
}

export type ReleaseEventInput = Omit<ReleaseEvent, 'id' | 'time' | 'peerId'>

/** A newly announced release, as release announcements (pubsub) report it. */
export interface AnnouncedRelease {
  dataset: string
  version: string
  manifestCid: string
}

/** Where announced releases come from, when the node has announcements (ReleaseNotifications.onReleaseAvailable). */
export interface AvailableSource {
  onReleaseAvailable: (listener: (r: AnnouncedRelease) => void) => () => void
}

/** The node's narrow hook: told of every fetch that ends (HeraldNode.onFetchEnd). */
export interface FetchEndSource {
  onFetchEnd: (listener: (p: FetchProgress) => void) => () => void
}
