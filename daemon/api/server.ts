// The local HTTP API (fastify): REST over HeraldService, Server-Sent Events for fetch progress, a bearer
// token on every mutating call. One error wrapper maps coded errors to HTTP statuses with a JSON
// { code, message } body; unexpected errors become 500 INTERNAL and are logged with their stack.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { HTTP_STATUS_BY_CODE, codeOf } from '../errors.js'
import { tokensEqual } from '../keys.js'
import type { HeraldService } from '../types.js'

import type { Log } from '../log.js'

export interface ApiServerOptions {
  service: HeraldService
  token: string
  host: string
  port: number
  logger?: Log
  onResponse?: (route: string, method: string, status: number, seconds: number) => void
}

export interface ApiServer {
  url: string
  stop: () => Promise<void>
  routes: () => Array<{ method: string, url: string }>
}

/** SSE heartbeat, so proxies and clients notice a dead connection */
const HEARTBEAT_MS = 15_000

const nameParam = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 3, maxLength: 200 } } } as const

export async function startApiServer (opts: ApiServerOptions): Promise<ApiServer> {
  const { service, logger } = opts
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 })
  const routes: Array<{ method: string, url: string }> = []
  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method]
    for (const m of methods) if (m !== 'HEAD') routes.push({ method: m, url: r.url })
  })
  app.addHook('onResponse', async (req, reply) => {
    opts.onResponse?.(req.routeOptions.url ?? 'unknown', req.method, reply.statusCode, reply.elapsedTime / 1000)
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

  app.post('/v1/publish', {
    preHandler: auth,
    schema: { body: { type: 'object', required: ['name', 'dir'], additionalProperties: false, properties: { name: { type: 'string' }, dir: { type: 'string', minLength: 1 }, base: { type: 'string' }, delta: { type: 'boolean' } } } }
  }, async (req) => await service.publish(req.body as any))
  app.post('/v1/fetch', {
    preHandler: auth,
    schema: { body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, out: { type: 'string', minLength: 1 } } } }
  }, async (req, reply) => await reply.code(202).send(await service.startFetch(req.body as any)))
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
  app.get('/v1/plan/:name', { schema: { params: nameParam } }, async (req) => await service.plan((req.params as any).name))
  app.get('/v1/releases', async () => await service.listReleases())
  app.get('/v1/status', async () => await service.status())
  app.get('/v1/peers', async () => await service.peers())
  app.post('/v1/releases/:name/pin', { preHandler: auth, schema: { params: nameParam } }, async (req) => await service.pin((req.params as any).name))
  app.delete('/v1/releases/:name/pin', {
    preHandler: auth,
    schema: { params: nameParam, querystring: { type: 'object', additionalProperties: false, properties: { force: { type: 'boolean' } } } }
  }, async (req) => await service.unpin((req.params as any).name, { force: (req.query as any)?.force === true }))
  app.post('/v1/gc', { preHandler: auth }, async () => await service.gc())
  app.post('/v1/releases/:name/verify', { preHandler: auth, schema: { params: nameParam } }, async (req) => await service.verify((req.params as any).name))
  app.post('/v1/releases/:name/export', {
    preHandler: auth,
    schema: { params: nameParam, body: { type: 'object', required: ['dir'], additionalProperties: false, properties: { dir: { type: 'string', minLength: 1, maxLength: 4096 } } } }
  }, async (req) => await service.exportRelease((req.params as any).name, (req.body as any).dir))
  app.post('/v1/datasets/:dataset/rollback', {
    preHandler: auth,
    schema: { body: { anyOf: [{ type: 'null' }, { type: 'object', additionalProperties: false, properties: { to: { type: 'string' } } }] } }
  }, async (req) => await service.rollback((req.params as any).dataset, (req.body as any)?.to))

  const address = await app.listen({ host: opts.host, port: opts.port })
  return {
    url: address.replace('localhost', '127.0.0.1'),
    stop: async () => { await app.close() },
    routes: () => [...routes]
  }
}
