// The fleet features' composition: the release event bus fed by the node's fetch ends, webhooks and the
// post-switch hook listening to it, and the desired-state reconciler driving the node. Built beside the
// node, never inside it: the node only tells listeners when a fetch ends (HeraldNode.onFetchEnd).
import { readFile } from 'node:fs/promises'
import type { Registry } from 'prom-client'
import { releasesDir, type HeraldConfig } from './config.js'
import { HeraldError } from './errors.js'
import { EventBus, withSwitchEvents } from './events/bus.js'
import { PostSwitchHook } from './events/hook.js'
import { createEventsMetrics } from './events/metrics.js'
import type { AvailableSource, FetchEndSource } from './events/types.js'
import { Webhooks, type WebhookTarget } from './events/webhooks.js'
import type { Log } from './log.js'
import { createSyncMetrics } from './sync/metrics.js'
import { Reconciler } from './sync/reconciler.js'
import type { SyncStatus } from './sync/types.js'
import type { HeraldService } from './types.js'

export interface Fleet {
  events: EventBus
  /** the service with rollbacks reported as events: what the API and the reconciler drive */
  service: HeraldService
  sync: { status: () => SyncStatus, runNow: () => Promise<SyncStatus> }
  stop: () => Promise<void>
}

async function webhookTargets (config: HeraldConfig): Promise<WebhookTarget[]> {
  return await Promise.all(config.webhooks.map(async (w, i) => {
    let secret = w.secret
    if (w.secretFile != null) {
      try {
        secret = (await readFile(w.secretFile, 'utf8')).trim()
      } catch (err: any) {
        throw new HeraldError('INVALID_CONFIG', `webhooks[${i}].secretFile: cannot read ${w.secretFile} (${String(err.code ?? err.message)})`, { cause: err })
      }
      if (secret.length < 16) throw new HeraldError('INVALID_CONFIG', `webhooks[${i}].secretFile: ${w.secretFile} holds fewer than 16 characters`)
    }
    return { url: w.url, secret: secret ?? '', events: w.events, timeoutMs: w.timeoutMs, maxAttempts: w.maxAttempts, backoffMs: w.backoffMs, queueMax: w.queueMax }
  }))
}

export async function startFleet (opts: { config: HeraldConfig, node: HeraldService & FetchEndSource, peerId: string, registry: Registry, log?: Log }): Promise<Fleet> {
  const { config, node, log } = opts
  const metrics = createEventsMetrics(opts.registry)
  const events = new EventBus({ peerId: opts.peerId, log, onEvent: e => { metrics.eventsTotal.inc({ type: e.type }) } })
  const webhooks = new Webhooks({ targets: await webhookTargets(config), log, metrics })
  const hook = config.hooks.postSwitch != null ? new PostSwitchHook({ ...config.hooks.postSwitch, log, metrics }) : undefined
  const unsubscribe = [
    events.subscribe(e => { webhooks.enqueue(e) }),
    events.subscribe(e => { hook?.enqueue(e) }),
    events.attach(node)
  ]
  // release announcements, on a node that has them (node.notifications, daemon/net): release.available events
  const notifications = (node as { notifications?: Partial<AvailableSource> }).notifications
  if (typeof notifications?.onReleaseAvailable === 'function') unsubscribe.push(events.attachAvailable(notifications as AvailableSource))
  const service = withSwitchEvents(node, events, releasesDir(config))
  let reconciler: Reconciler | undefined
  if (config.sync.path != null) {
    reconciler = new Reconciler({
      path: config.sync.path,
      service,
      fetchEnd: node,
      events,
      log,
      metrics: createSyncMetrics(opts.registry),
      intervalSeconds: config.sync.intervalSeconds,
      debounceMs: config.sync.debounceMs,
      maxConcurrentFetches: config.sync.maxConcurrentFetches
    })
    await reconciler.start()
    const r = reconciler
    // a new release announced: `version: latest` entries may now resolve to it
    unsubscribe.push(events.subscribe(e => { if (e.type === 'release.available') r.trigger() }))
  }
  const disabled = (): SyncStatus => ({ enabled: false, files: [], reconciles: 0, entries: [], removed: [] })
  return {
    events,
    service,
    sync: {
      status: () => reconciler?.status() ?? disabled(),
      runNow: async () => {
        if (reconciler == null) return disabled()
        await reconciler.settled()
        reconciler.trigger()
        await reconciler.settled()
        return reconciler.status()
      }
    },
    stop: async () => {
      await reconciler?.stop()
      for (const u of unsubscribe) u()
      await Promise.all([webhooks.stop(), hook?.stop()])
    }
  }
}
