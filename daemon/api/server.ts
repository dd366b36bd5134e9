// The local HTTP API (fastify): REST over HeraldService, Server-Sent Events for fetch progress, a bearer
// token on every mutating call. One error wrapper maps coded errors to HTTP statuses with a JSON
// { code, message } body; unexpected errors become 500 INTERNAL and are logged with their stack.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { HTTP_STATUS_BY_CODE, HeraldError, codeOf } from '../errors.js'
import { tokensEqual } from '../keys.js'
import { checkFetchOut } from './fetch-out.js'
import { parseCid } from '../../protocol/cid.js'
import { hostAllowed } from './host-check.js'
import { checkPublishInput } from './publish-input.js'
import type { HeraldService, ImportRequest, PublishProgress } from '../types.js'

import type { Log } from '../log.js'
import type { EventBus } from '../events/bus.js'
import { EVENT_TYPES, type ReleaseEvent } from '../events/types.js'
import type { SyncStatus } from '../sync/types.js'

export interface ApiServerOptions {
  service: HeraldService
  token: string
  host: string
  port: number
  logger?: Log
  /** directories `out` of a fetch may be under (the data dir, releasesDir, fetch.outRoots) */
  outRoots?: string[]
  /** Host header names accepted besides loopback names and `host` (api.allowedHosts) */
  allowedHosts?: string[]
  onResponse?: (route: string, method: string, status: number, seconds: number) => void
  /** release events for GET /v1/events */
  events?: EventBus
  /** the desired-state reconciler for GET/POST /v1/sync */
  sync?: { status: () => SyncStatus, runNow: () => Promise<SyncStatus> }
}

export interface ApiServer {
  url: string
  stop: () => Promise<void>
  routes: () => Array<{ method: string, url: string }>
}

/** SSE heartbeat, so proxies and clients notice a dead connection */
const HEARTBEAT_MS = 15_000

const nameParam = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 3, maxLength: 200 } } } as const

/** Server-Sent Events of one job: its state now, then every progress event until it is done or failed. */
function streamEvents<P extends { state: string }> (req: FastifyRequest, reply: FastifyReply, first: P, subscribe: (l: (p: P) => void) => () => void, now: () => P, open: Set<() => void>): void {
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  const send = (p: P): void => { res.write(`event: progress\ndata: ${JSON.stringify(p)}\n\n`) }
  const over = (p: P): boolean => p.state === 'done' || p.state === 'failed'
  let unsubscribe = (): void => {}
  const heartbeat = setInterval(() => { res.write(': heartbeat\n\n') }, HEARTBEAT_MS)
  const end = (): void => { open.delete(end); clearInterval(heartbeat); unsubscribe(); res.end() }
  // a closing server ends the stream (the job goes on until the daemon stops it): close waits for open responses
  open.add(end)
  res.on('close', () => { open.delete(end); clearInterval(heartbeat); unsubscribe() })
  unsubscribe = subscribe((p) => {
    send(p)
    if (over(p)) end()
  })
  const current = now() ?? first
  send(current)
  if (over(current)) end()
}

export async function startApiServer (opts: ApiServerOptions): Promise<ApiServer> {
  const { service, logger } = opts
  // forceCloseConnections: event streams (and their sockets) must not hold a stopping daemon open
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024, forceCloseConnections: true })
  const routes: Array<{ method: string, url: string }> = []
  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method]
    for (const m of methods) if (m !== 'HEAD') routes.push({ method: m, url: r.url })
  })
  app.addHook('onResponse', async (req, reply) => {
    opts.onResponse?.(req.routeOptions.url ?? 'unknown', req.method, reply.statusCode, reply.elapsedTime / 1000)
  })
  // against DNS rebinding: a browser page of another origin reaches the API only under a name it controls
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]
    if (path === '/healthz' || path === '/readyz') return
    if (!hostAllowed(req.headers.host, [opts.host, ...opts.allowedHosts ?? []])) {
      await reply.code(421).send({ code: 'MISDIRECTED_HOST', message: `Host ${JSON.stringify(req.headers.host ?? '')} is not a name of this API (loopback names, api.host and api.allowedHosts are accepted)` })
    }
  })
  const auth = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = req.headers.authorization ?? ''
    const token = header.startsWith('Bearer ') ? header.slice(7) : ''
    if (!tokensEqual(token, opts.token)) {
      await reply.code(401).send({ code: 'UNAUTHORIZED', message: 'missing or wrong API token (Authorization: Bearer <token from the data dir\'s api.token>)' })
    }
  }
  app.setErrorHandler(async (err: any, _req, reply) => {
    if (err.validation != null) return await reply.code(400).send({ code: 'BAD_REQUEST', message: err.message })
    const code = codeOf(err)
    const status = code != null ? HTTP_STATUS_BY_CODE[code] : undefined
    if (code != null && status != null) return await reply.code(status).send({ code, message: err.message })
    if (typeof err.statusCode === 'number' && err.statusCode < 500) return await reply.code(err.statusCode).send({ code: 'BAD_REQUEST', message: err.message })
    logger?.error({ err }, 'API request failed')
    return await reply.code(500).send({ code: 'INTERNAL', message: 'internal error' })
  })
  app.setNotFoundHandler(async (req, reply) => await reply.code(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` }))

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const r = service.ready()
    return await reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', reasons: r.reasons })
  })

  const publishStreams = new Set<() => void>()
  app.addHook('preClose', async () => { for (const end of [...publishStreams]) end() })
  app.post('/v1/publish', {
    preHandler: auth,
    schema: {
      body: {
        type: 'object',
        required: ['name', 'dir'],
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          dir: { type: 'string', minLength: 1 },
          base: { type: 'string' },
          delta: { type: 'boolean' },
          force: { type: 'boolean' },
          allowEmpty: { type: 'boolean' },
          keepCompressed: { anyOf: [{ type: 'boolean' }, { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 1000 } }] },
          chunkSize: { type: 'string', maxLength: 100 }
        }
      }
    }
  }, async (req, reply) => {
    await checkPublishInput((req.body as any).dir)
    return await reply.code(202).send(await service.startPublish(req.body as any))
  })
  const publishJob = (id: string): PublishProgress => {
    const p = service.getPublish(id)
    if (p == null) throw Object.assign(new Error(`no publish with id ${id}`), { code: 'PUBLISH_NOT_FOUND' })
    return p
  }
  app.get('/v1/publish/:id', async (req) => publishJob((req.params as any).id))
  app.get('/v1/publish/:id/events', async (req, reply) => {
    const id = (req.params as any).id as string
    const first = publishJob(id)
    streamEvents(req, reply, first, l => service.onPublishProgress(id, l), () => service.getPublish(id) ?? first, publishStreams)
  })
  app.post('/v1/fetch', {
    preHandler: auth,
    schema: { body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, out: { type: 'string', minLength: 1 }, force: { type: 'boolean' }, manifestCid: { type: 'string', minLength: 1, maxLength: 200 } } } }
  }, async (req, reply) => {
    const { name, out, force, manifestCid } = req.body as { name: string, out?: string, force?: boolean, manifestCid?: string }
    const checked = out != null ? await checkFetchOut(out, name, { roots: opts.outRoots ?? [], force }) : undefined
    // a pinned manifest CID in its canonical text form, as the node compares it (INVALID_CID otherwise)
    const pinned = manifestCid != null ? parseCid(manifestCid).toString() : undefined
    return await reply.code(202).send(await service.startFetch({ name, out: checked, manifestCid: pinned }))
  })
  app.get('/v1/fetch/:id', async (req) => {
    const p = service.getFetch((req.params as any).id)
    if (p == null) throw Object.assign(new Error(`no fetch with id ${String((req.params as any).id)}`), { code: 'FETCH_NOT_FOUND' })
    return p
  })
  app.get('/v1/fetch/:id/events', async (req, reply) => {
    const id = (req.params as any).id as string
    const first = service.getFetch(id)
    if (first == null) throw Object.assign(new Error(`no fetch with id ${id}`), { code: 'FETCH_NOT_FOUND' })
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
    const send = (p: unknown): void => { res.write(`event: progress\ndata: ${JSON.stringify(p)}\n\n`) }
    let unsubscribe = (): void => {}
    const heartbeat = setInterval(() => { res.write(': heartbeat\n\n') }, HEARTBEAT_MS)
    const end = (): void => { clearInterval(heartbeat); unsubscribe(); res.end() }
    req.raw.on('close', () => { clearInterval(heartbeat); unsubscribe() })
    unsubscribe = service.onFetchProgress(id, (p) => {
      send(p)
      if (p.state === 'done' || p.state === 'failed') end()
    })
    const now = service.getFetch(id) ?? first
    send(now)
    if (now.state === 'done' || now.state === 'failed') end()
  })
  app.get('/v1/plan/:name', { preHandler: auth, schema: { params: nameParam } }, async (req) => await service.plan((req.params as any).name))
  app.get('/v1/releases', async () => await service.listReleases())
  app.get('/v1/status', async () => await service.status())
  app.get('/v1/peers', async () => await service.peers())
  app.post('/v1/releases/:name/pin', { preHandler: auth, schema: { params: nameParam } }, async (req) => await service.pin((req.params as any).name))
  app.delete('/v1/releases/:name/pin', {
    preHandler: auth,
    schema: { params: nameParam, querystring: { type: 'object', additionalProperties: false, properties: { force: { type: 'boolean' } } } }
  }, async (req) => await service.unpin((req.params as any).name, { force: (req.query as any)?.force === true }))
  app.post('/v1/gc', { preHandler: auth }, async () => await service.gc())
  app.post('/v1/import', {
    preHandler: auth,
    schema: { body: { type: 'object', required: ['name', 'dir'], additionalProperties: false, properties: { name: { type: 'string' }, dir: { type: 'string' } } } }
  }, async (req) => await service.importRelease(req.body as ImportRequest))
  app.post('/v1/releases/:name/verify', { preHandler: auth, schema: { params: nameParam } }, async (req) => await service.verify((req.params as any).name))
  app.post('/v1/releases/:name/export', {
    preHandler: auth,
    schema: { params: nameParam, body: { type: 'object', required: ['dir'], additionalProperties: false, properties: { dir: { type: 'string', minLength: 1, maxLength: 4096 } } } }
  }, async (req) => await service.exportRelease((req.params as any).name, (req.body as any).dir))
  // the newest verified release of a dataset this node heard of (pubsub announcement or its own publish)
  app.get('/v1/datasets/:dataset/latest', async (req) => {
    const dataset = (req.params as any).dataset as string
    const latest = service.latestRelease?.(dataset)
    if (latest == null) throw new HeraldError('RELEASE_NOT_FOUND', `no release of ${dataset} announced to this node yet`)
    return latest
  })
  app.post('/v1/datasets/:dataset/rollback', {
    preHandler: auth,
    schema: { body: { anyOf: [{ type: 'null' }, { type: 'object', additionalProperties: false, properties: { to: { type: 'string' } } }] } }
  }, async (req) => await service.rollback((req.params as any).dataset, (req.body as any)?.to))

  // release events as Server-Sent Events: `id:` is the event id, so a client reconnecting with
  // Last-Event-ID gets the buffered events it missed; ?types=release.switched,release.failed filters
  const eventStreams = new Set<() => void>()
  app.addHook('preClose', async () => { for (const end of [...eventStreams]) end() })
  app.get('/v1/events', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { types: { type: 'string', maxLength: 500 } } } }
  }, async (req, reply) => {
    const bus = opts.events
    if (bus == null) throw Object.assign(new Error('release events are not available on this daemon'), { code: 'NOT_FOUND' })
    const typesParam = (req.query as any)?.types as string | undefined
    const types = typesParam != null ? typesParam.split(',').map(t => t.trim()).filter(t => t !== '') : undefined
    const unknown = types?.filter(t => !(EVENT_TYPES as readonly string[]).includes(t)) ?? []
    if (unknown.length > 0) throw Object.assign(new Error(`unknown event type ${unknown.join(', ')} (known: ${EVENT_TYPES.join(', ')})`), { code: 'BAD_REQUEST' })
    const lastHeader = req.headers['last-event-id']
    const lastId = typeof lastHeader === 'string' && /^\d{1,15}$/.test(lastHeader) ? Number(lastHeader) : undefined
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
    const send = (e: ReleaseEvent): void => {
      if (types != null && !types.includes(e.type)) return
      res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`)
    }
    const heartbeat = setInterval(() => { res.write(': heartbeat\n\n') }, HEARTBEAT_MS)
    const unsubscribe = bus.subscribe(send)
    const end = (): void => { eventStreams.delete(end); clearInterval(heartbeat); unsubscribe(); res.end() }
    eventStreams.add(end)
    res.on('close', () => { eventStreams.delete(end); clearInterval(heartbeat); unsubscribe() })
    // a comment first, so a client knows the stream is open before any event
    res.write(': events\n\n')
    if (lastId != null) for (const e of bus.since(lastId)) send(e)
  })
  app.get('/v1/sync', async () => opts.sync?.status() ?? { enabled: false, files: [], reconciles: 0, entries: [], removed: [] })
  app.post('/v1/sync', { preHandler: auth }, async () => await (opts.sync?.runNow() ?? { enabled: false, files: [], reconciles: 0, entries: [], removed: [] }))

  const address = await app.listen({ host: opts.host, port: opts.port })
  return {
    url: address.replace('localhost', '127.0.0.1'),
    stop: async () => { await app.close() },
    routes: () => [...routes]
  }
}
