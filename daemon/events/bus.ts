// The release event bus: one ordered stream of release events per daemon, with a bounded buffer of recent
// ones for clients that reconnect (SSE Last-Event-ID). Listeners run synchronously and must not block:
// webhooks and hooks queue their work.
import { EventEmitter } from 'node:events'
import type { Log } from '../log.js'
import { EVENT_BUFFER } from './constants.js'
import type { AvailableSource, FetchEndSource, ReleaseEvent, ReleaseEventInput } from './types.js'
import type { HeraldService } from '../types.js'
import { parseReleaseName } from '../../protocol/names.js'

export interface EventBusInit {
  peerId: string
  log?: Log
  bufferSize?: number
  onEvent?: (e: ReleaseEvent) => void
}

export class EventBus {
  readonly #peerId: string
  readonly #log?: Log
  readonly #buffer: ReleaseEvent[] = []
  readonly #size: number
  readonly #emitter = new EventEmitter()
  readonly #onEvent?: (e: ReleaseEvent) => void
  #seq = 0

  constructor (init: EventBusInit) {
    this.#peerId = init.peerId
    this.#log = init.log
    this.#size = init.bufferSize ?? EVENT_BUFFER
    this.#onEvent = init.onEvent
    this.#emitter.setMaxListeners(0)
  }

  publish (input: ReleaseEventInput): ReleaseEvent {
    const event: ReleaseEvent = { id: ++this.#seq, time: Date.now(), peerId: this.#peerId, ...input }
    this.#buffer.push(event)
    if (this.#buffer.length > this.#size) this.#buffer.shift()
    this.#onEvent?.(event)
    for (const l of this.#emitter.listeners('event') as Array<(e: ReleaseEvent) => void>) {
      try {
        l(event)
      } catch (err: any) {
        this.#log?.error({ err, event: event.type }, 'a release event listener failed')
      }
    }
    return event
  }

  subscribe (listener: (e: ReleaseEvent) => void): () => void {
    this.#emitter.on('event', listener)
    return () => { this.#emitter.off('event', listener) }
  }

  /** buffered events after `id` (all buffered ones for undefined) */
  since (id?: number): ReleaseEvent[] {
    return id == null ? [...this.#buffer] : this.#buffer.filter(e => e.id > id)
  }

  /** `release.available` for each release the node's announcements report */
  attachAvailable (source: AvailableSource): () => void {
    return source.onReleaseAvailable((r) => {
      this.publish({ type: 'release.available', release: `${r.dataset}@${r.version}`, dataset: r.dataset, version: r.version, manifestCid: r.manifestCid, origin: 'announce' })
    })
  }

  /** fetched + switched for a fetch that ended done (a fetch switches `current` when its files are in place), failed otherwise */
  attach (node: FetchEndSource): () => void {
    return node.onFetchEnd((p) => {
      const { dataset, version } = parseReleaseName(p.name)
      const base = { release: p.name, dataset, version, manifestCid: p.manifestCid, origin: 'fetch' as const }
      if (p.state === 'done') {
        this.publish({ ...base, type: 'release.fetched', path: p.path })
        this.publish({ ...base, type: 'release.switched', path: p.path })
      } else {
        this.publish({ ...base, type: 'release.failed', error: p.error ?? { code: 'FETCH_FAILED', message: 'fetch failed' } })
      }
    })
  }
}

/** The service with its rollbacks reported as `release.switched` events (by hand through the API, or by the reconciler). */
export function withSwitchEvents (service: HeraldService, bus: EventBus, releasesRoot: string): HeraldService {
  const rollback: HeraldService['rollback'] = async (dataset, to) => {
    const r = await service.rollback(dataset, to)
    if (r.from !== r.to) {
      const name = `${r.dataset}@${r.to}`
      const info = (await service.listReleases()).find(x => x.name === name)
      bus.publish({ type: 'release.switched', release: name, dataset: r.dataset, version: r.to, previous: r.from, manifestCid: info?.manifestCid, path: `${releasesRoot}/${r.dataset}/${r.to}`, origin: 'rollback' })
    }
    return r
  }
  return new Proxy(service, {
    get (target, prop) {
      if (prop === 'rollback') return rollback
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
}
