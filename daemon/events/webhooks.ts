// Webhooks: each release event POSTed as JSON to the configured URLs, signed with HMAC-SHA256 over the
// body (header x-herald-signature-256: sha256=<hex>), retried with exponential backoff. Each webhook has
// its own ordered, bounded queue: a slow or dead receiver delays only its own deliveries, never a fetch
// (enqueue returns at once), and past the bound new events are dropped and counted.
import { createHmac } from 'node:crypto'
import PQueue from 'p-queue'
import type { Log } from '../log.js'
import { VERSION } from '../version.js'
import {
  SIGNATURE_HEADER, WEBHOOK_BACKOFF_MAX_MS, WEBHOOK_BACKOFF_MS, WEBHOOK_MAX_ATTEMPTS, WEBHOOK_QUEUE_MAX, WEBHOOK_TIMEOUT_MS
} from './constants.js'
import type { EventsMetrics } from './metrics.js'
import type { ReleaseEvent, ReleaseEventType } from './types.js'

export interface WebhookTarget {
  url: string
  /** the HMAC key */
  secret: string
  /** event types sent (default all) */
  events?: ReleaseEventType[]
  timeoutMs?: number
  maxAttempts?: number
  backoffMs?: number
  queueMax?: number
}

export interface WebhooksInit {
  targets: WebhookTarget[]
  log?: Log
  metrics?: EventsMetrics
}

/** `sha256=<hex>`: what a receiver recomputes over the raw body with the shared secret to check a delivery. */
export function signBody (secret: string, body: string | Uint8Array): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex')
}

class PermanentFailure extends Error {}

function delay (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(signal.reason); return }
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** A URL as logs and metrics show it: no userinfo, no query (either may carry a token). */
function redact (url: string): string {
  try { const u = new URL(url); return `${u.protocol}//${u.host}${u.pathname}` } catch { return '(invalid url)' }
}

export class Webhooks {
  readonly #targets: Array<{ target: WebhookTarget, queue: PQueue, label: string }>
  readonly #log?: Log
  readonly #metrics?: EventsMetrics
  readonly #controller = new AbortController()

  constructor (init: WebhooksInit) {
    this.#log = init.log
    this.#metrics = init.metrics
    this.#targets = init.targets.map(target => ({ target, queue: new PQueue({ concurrency: 1 }), label: redact(target.url) }))
  }

  /** Queue the event for every webhook that wants it; never waits. */
  enqueue (event: ReleaseEvent): void {
    if (this.#controller.signal.aborted) return
    for (const t of this.#targets) {
      if (t.target.events != null && !t.target.events.includes(event.type)) continue
      if (t.queue.size + t.queue.pending >= (t.target.queueMax ?? WEBHOOK_QUEUE_MAX)) {
        this.#metrics?.webhookDeliveriesTotal.inc({ result: 'dropped' })
        this.#log?.warn({ webhook: t.label, event: event.type, id: event.id }, 'webhook queue full: event dropped')
        continue
      }
      t.queue.add(async () => { await this.#deliver(t.target, t.label, event) }).catch(() => {})
    }
  }

  /** Deliveries waiting or running, all webhooks. */
  get backlog (): number {
    return this.#targets.reduce((n, t) => n + t.queue.size + t.queue.pending, 0)
  }

  async #deliver (target: WebhookTarget, label: string, event: ReleaseEvent): Promise<void> {
    const signal = this.#controller.signal
    const body = JSON.stringify(event)
    const attempts = target.maxAttempts ?? WEBHOOK_MAX_ATTEMPTS
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const res = await fetch(target.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': `herald/${VERSION}`,
            'x-herald-event': event.type,
            'x-herald-delivery': `${event.peerId}-${event.id}`,
            [SIGNATURE_HEADER]: signBody(target.secret, body)
          },
          body,
          redirect: 'error',
          signal: AbortSignal.any([signal, AbortSignal.timeout(target.timeoutMs ?? WEBHOOK_TIMEOUT_MS)])
        })
        await res.arrayBuffer().catch(() => {})
        if (res.ok) {
          this.#metrics?.webhookDeliveriesTotal.inc({ result: 'ok' })
          return
        }
        // a 4xx other than timeout / rate limit will not change by asking again
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw new PermanentFailure(`HTTP ${res.status}`)
        throw new Error(`HTTP ${res.status}`)
      } catch (err: any) {
        if (signal.aborted) return
        const permanent = err instanceof PermanentFailure
        if (permanent || attempt === attempts) {
          this.#metrics?.webhookDeliveriesTotal.inc({ result: 'failed' })
          this.#log?.warn({ webhook: label, event: event.type, id: event.id, attempts: attempt, err: String(err.cause?.code ?? err.message) }, 'webhook delivery failed: given up')
          return
        }
        this.#metrics?.webhookDeliveriesTotal.inc({ result: 'retry' })
        const wait = Math.min((target.backoffMs ?? WEBHOOK_BACKOFF_MS) * 2 ** (attempt - 1), WEBHOOK_BACKOFF_MAX_MS)
        this.#log?.debug({ webhook: label, event: event.type, attempt, wait, err: String(err.cause?.code ?? err.message) }, 'webhook delivery failed: will retry')
        try { await delay(wait, signal) } catch { return }
      }
    }
  }

  /** Resolves when every queued delivery has ended (delivered or given up). */
  async idle (): Promise<void> {
    await Promise.all(this.#targets.map(async t => { await t.queue.onIdle() }))
  }

  /** Drop what is queued and end retries; a delivery in flight is aborted. */
  async stop (): Promise<void> {
    this.#controller.abort(new Error('stopping'))
    for (const t of this.#targets) t.queue.clear()
    await Promise.all(this.#targets.map(async t => { await t.queue.onIdle() }))
  }
}
