// Client of the local API, used by the `herald` CLI, the demo and the tests.
import type {
  FetchProgress, FetchRequest, GcResult, ImportRequest, ImportResult, PeerInfo, PlanResult, PublishProgress, PublishRequest, PublishResult, ReleaseInfo,
  RollbackResult, StatusInfo, VerifyResult, ExportResult, ReleaseAvailable
} from '../types.js'
import type { ReleaseEvent } from '../events/types.js'
import type { SyncStatus } from '../sync/types.js'

export class ApiError extends Error {
  static name = 'ApiError'
  readonly code: string
  readonly status: number
  constructor (code: string, status: number, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ApiError'
    this.code = code
    this.status = status
  }
}

export interface ApiClientOptions {
  url: string
  token?: string
  /** per request, ms (not for event streams) */
  timeout?: number
}

export class ApiClient {
  readonly url: string
  readonly #token?: string
  readonly #timeout: number

  constructor (opts: ApiClientOptions) {
    this.url = opts.url.replace(/\/+$/, '')
    this.#token = opts.token
    // HERALD_API_TIMEOUT_MS: the per-request limit (jobs such as publish and fetch are followed without one)
    const env = Number(process.env.HERALD_API_TIMEOUT_MS)
    this.#timeout = opts.timeout ?? (Number.isSafeInteger(env) && env > 0 ? env : 10 * 60_000)
  }

  async #request<T> (method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = {}
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (this.#token != null) headers.authorization = `Bearer ${this.#token}`
    let res: Response
    try {
      res = await fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ?? AbortSignal.timeout(this.#timeout)
      })
    } catch (err: any) {
      throw new ApiError('UNREACHABLE', 0, `cannot reach heraldd at ${this.url} (${String(err.cause?.code ?? err.message)}): is it running? (heraldd start)`, { cause: err })
    }
    const text = await res.text()
    let json: any
    try {
      json = text === '' ? undefined : JSON.parse(text)
    } catch {
      throw new ApiError('BAD_RESPONSE', res.status, `heraldd answered ${res.status} with a body that is not JSON`)
    }
    if (!res.ok) throw new ApiError(json?.code ?? 'HTTP_' + String(res.status), res.status, json?.message ?? `HTTP ${res.status}`)
    return json as T
  }

  async health (): Promise<{ status: string }> { return await this.#request('GET', '/healthz') }
  async ready (): Promise<{ status: string, reasons: string[] }> {
    try {
      return await this.#request('GET', '/readyz')
    } catch (err: any) {
      if (err.status === 503) return { status: 'not ready', reasons: [] }
      throw err
    }
  }

  /** Start a publish job; the answer comes at once (follow it with followPublish). */
  async startPublish (req: PublishRequest): Promise<PublishProgress> { return await this.#request('POST', '/v1/publish', req) }
  async getPublish (id: string): Promise<PublishProgress> { return await this.#request('GET', `/v1/publish/${encodeURIComponent(id)}`) }

  /** Publish and wait for the job's end, however long it takes; a failed job throws its code and message. */
  async publish (req: PublishRequest): Promise<PublishResult> {
    const started = await this.startPublish(req)
    const final = await this.followPublish(started.id, () => {})
    if (final.state !== 'done' || final.result == null) throw new ApiError(final.error?.code ?? 'PUBLISH_FAILED', 0, final.error?.message ?? `publish ${final.state}`)
    return final.result
  }

  /** Follow a publish's progress events until it is done or failed; resolves with the last progress. */
  async followPublish (id: string, onProgress: (p: PublishProgress) => void, signal?: AbortSignal): Promise<PublishProgress> {
    return await this.#follow(`/v1/publish/${encodeURIComponent(id)}/events`, onProgress, signal)
  }

  async #follow<P> (path: string, onProgress: (p: P) => void, signal?: AbortSignal): Promise<P> {
    let res: Response
    try {
      res = await fetch(this.url + path, { signal })
    } catch (err: any) {
      throw new ApiError('UNREACHABLE', 0, `cannot reach heraldd at ${this.url}`, { cause: err })
    }
    if (!res.ok || res.body == null) {
      const json = await res.json().catch(() => undefined) as any
      throw new ApiError(json?.code ?? 'HTTP_' + String(res.status), res.status, json?.message ?? `HTTP ${res.status}`)
    }
    let last: P | undefined
    let buffer = ''
    const decoder = new TextDecoder()
    try {
      for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(part, { stream: true })
        let sep: number
        while ((sep = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, sep)
          buffer = buffer.slice(sep + 2)
          const data = event.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n')
          if (data === '') continue
          last = JSON.parse(data) as P
          onProgress(last)
        }
      }
    } catch (err: any) {
      if (signal?.aborted === true) throw err
      throw new ApiError('UNREACHABLE', 0, `lost heraldd at ${this.url} while following ${path} (${String(err.cause?.code ?? err.message)})`, { cause: err })
    }
    if (last == null) throw new ApiError('BAD_RESPONSE', 200, 'progress stream ended without an event')
    const state = (last as { state?: string }).state
    if (state !== 'done' && state !== 'failed') throw new ApiError('UNREACHABLE', 0, `heraldd at ${this.url} closed the progress stream of ${path} before the end (did it stop?)`)
    return last
  }
  async startFetch (req: FetchRequest): Promise<FetchProgress> { return await this.#request('POST', '/v1/fetch', req) }
  async getFetch (id: string): Promise<FetchProgress> { return await this.#request('GET', `/v1/fetch/${encodeURIComponent(id)}`) }
  async plan (name: string): Promise<PlanResult> { return await this.#request('GET', `/v1/plan/${encodeURIComponent(name)}`) }
  async listReleases (): Promise<ReleaseInfo[]> { return await this.#request('GET', '/v1/releases') }
  async status (): Promise<StatusInfo> { return await this.#request('GET', '/v1/status') }
  /** the newest release of a dataset announced to the daemon (RELEASE_NOT_FOUND when none yet) */
  async latest (dataset: string): Promise<ReleaseAvailable> { return await this.#request('GET', `/v1/datasets/${encodeURIComponent(dataset)}/latest`) }
  async peers (): Promise<PeerInfo[]> { return await this.#request('GET', '/v1/peers') }
  async pin (name: string): Promise<ReleaseInfo> { return await this.#request('POST', `/v1/releases/${encodeURIComponent(name)}/pin`) }
  async unpin (name: string, opts: { force?: boolean } = {}): Promise<ReleaseInfo> {
    return await this.#request('DELETE', `/v1/releases/${encodeURIComponent(name)}/pin${opts.force === true ? '?force=true' : ''}`)
  }
  async gc (): Promise<GcResult> { return await this.#request('POST', '/v1/gc') }
  async importRelease (req: ImportRequest): Promise<ImportResult> { return await this.#request('POST', '/v1/import', req) }
  async verify (name: string): Promise<VerifyResult> { return await this.#request('POST', `/v1/releases/${encodeURIComponent(name)}/verify`) }
  async rollback (dataset: string, to?: string): Promise<RollbackResult> {
    return await this.#request('POST', `/v1/datasets/${encodeURIComponent(dataset)}/rollback`, to != null ? { to } : {})
  }

  async exportRelease (name: string, dir: string): Promise<ExportResult> {
    return await this.#request('POST', `/v1/releases/${encodeURIComponent(name)}/export`, { dir }, AbortSignal.timeout(3_600_000))
  }

  /** The desired-state reconciler's status (GET /v1/sync). */
  async syncStatus (): Promise<SyncStatus> { return await this.#request('GET', '/v1/sync') }
  /** Run a reconcile pass now and wait for it (POST /v1/sync). */
  async syncNow (): Promise<SyncStatus> { return await this.#request('POST', '/v1/sync') }

  /**
   * Follow release events (GET /v1/events) until `signal` aborts or `onEvent` returns true; `types` filters,
   * `lastEventId` replays the buffered events after it.
   */
  async followEvents (onEvent: (e: ReleaseEvent) => boolean | undefined | void, opts: { types?: string[], lastEventId?: number, signal?: AbortSignal, onOpen?: () => void } = {}): Promise<void> {
    const query = opts.types != null ? `?types=${encodeURIComponent(opts.types.join(','))}` : ''
    const headers: Record<string, string> = opts.lastEventId != null ? { 'last-event-id': String(opts.lastEventId) } : {}
    const controller = new AbortController()
    const signal = opts.signal != null ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal
    let res: Response
    try {
      res = await fetch(this.url + '/v1/events' + query, { headers, signal })
    } catch (err: any) {
      throw new ApiError('UNREACHABLE', 0, `cannot reach heraldd at ${this.url}`, { cause: err })
    }
    if (!res.ok || res.body == null) {
      const json = await res.json().catch(() => undefined) as any
      throw new ApiError(json?.code ?? 'HTTP_' + String(res.status), res.status, json?.message ?? `HTTP ${res.status}`)
    }
    opts.onOpen?.()
    let buffer = ''
    const decoder = new TextDecoder()
    try {
      for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(part, { stream: true })
        let sep: number
        while ((sep = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, sep)
          buffer = buffer.slice(sep + 2)
          const data = block.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n')
          if (data === '') continue
          if (onEvent(JSON.parse(data) as ReleaseEvent) === true) { controller.abort(); return }
        }
      }
    } catch (err: any) {
      if (signal.aborted) return
      throw new ApiError('UNREACHABLE', 0, `lost heraldd at ${this.url} while following events (${String(err.cause?.code ?? err.message)})`, { cause: err })
    }
  }

  /** Follow a fetch's progress events until it is done or failed; resolves with the last progress. */
  async followFetch (id: string, onProgress: (p: FetchProgress) => void, signal?: AbortSignal): Promise<FetchProgress> {
    return await this.#follow(`/v1/fetch/${encodeURIComponent(id)}/events`, onProgress, signal)
  }
}
