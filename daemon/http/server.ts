// The chunk-serving HTTP listener: chunks (and delta objects) in the IPFS trustless-gateway form.
//   GET|HEAD /ipfs/{cid}   (Accept: application/vnd.ipld.raw, or ?format=raw)
// A raw/sha2-256 CID answers the block from the store; a dag-cbor/sha2-256 CID answers a manifest block.
// A zstd-stored chunk goes out as its frame with `Content-Encoding: zstd` to a client that accepts zstd,
// decompressed otherwise. The channel carries no trust: the client checks the bytes against the CID.
// node:http directly: one handler, no routing or serialisation layer on the per-byte path.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { logger } from '@libp2p/logger'
import { DAG_CBOR_CODEC, RAW_CODEC, SHA2_256_CODE, DIGEST_LENGTH, parseCid, type CID } from '../../protocol/cid.js'
import { decompressChunk } from '../../protocol/encoding/compression.js'
import type { StoredChunk } from '../../protocol/exchange/chunk-exchange.js'
import {
  DEFAULT_CONNECTIONS_PER_CLIENT, DEFAULT_INFLIGHT_PER_CLIENT, DEFAULT_MAX_CAP_WAIT_MS, HEADERS_TIMEOUT_MS,
  IMMUTABLE_CACHE_CONTROL, KEEP_ALIVE_TIMEOUT_MS, RAW_BLOCK_TYPE, REQUEST_TIMEOUT_MS
} from './constants.js'
import { UploadBudget } from './upload-budget.js'

const log = logger('herald:http')

export interface ChunkHttpServerInit {
  host: string
  port: number
  getStored: (digest: Uint8Array) => Promise<StoredChunk | undefined>
  getManifest?: (cid: CID) => Promise<Uint8Array | undefined>
  /** bytes per second for all responses of this listener; 0 = unlimited */
  uploadBytesPerSecond?: number
  maxInflightPerClient?: number
  maxConnectionsPerClient?: number
  maxCapWaitMs?: number
  /** false: zstd-stored chunks always go out decompressed */
  compress?: boolean
  /** per client address and digest: the seed's super-seeding decision */
  policy?: (client: string, digest: Uint8Array) => 'serve' | 'not-found' | 'rate-limited'
  onServed?: (client: string, bytes: number) => void
  onResponse?: (status: number) => void
  /** PEM certificate and key: HTTPS instead of HTTP */
  tls?: { cert: string | Buffer, key: string | Buffer }
}

export interface ChunkHttpServer {
  url: string
  port: number
  stop: () => Promise<void>
}

export async function startChunkHttpServer (init: ChunkHttpServerInit): Promise<ChunkHttpServer> {
  const budget = new UploadBudget(init.uploadBytesPerSecond ?? 0)
  const maxInflight = init.maxInflightPerClient ?? DEFAULT_INFLIGHT_PER_CLIENT
  const maxConnections = init.maxConnectionsPerClient ?? DEFAULT_CONNECTIONS_PER_CLIENT
  const maxWaitMs = init.maxCapWaitMs ?? DEFAULT_MAX_CAP_WAIT_MS
  const inflight = new Map<string, number>()
  const connections = new Map<string, number>()

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const client = req.socket.remoteAddress ?? 'unknown'
    const n = (inflight.get(client) ?? 0) + 1
    inflight.set(client, n)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      const left = (inflight.get(client) ?? 1) - 1
      if (left <= 0) inflight.delete(client)
      else inflight.set(client, left)
    }
    res.once('close', release)
    if (n > maxInflight) {
      reply(res, init, 429, 'RATE_LIMITED', `more than ${maxInflight} requests at once from one client`, { 'retry-after': '1' })
      return
    }
    serve(req, res, client, budget, maxWaitMs, init).catch(err => {
      if (err instanceof TypeError || err instanceof RangeError) throw err
      log.error('serving %s failed: %s', req.url, err.message)
      if (!res.headersSent) reply(res, init, 500, 'ERROR', 'internal error')
      else res.destroy(err)
    })
  }

  const server: Server = init.tls != null
    ? createHttpsServer({ cert: init.tls.cert, key: init.tls.key }, handler)
    : createHttpServer(handler)
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
  server.headersTimeout = HEADERS_TIMEOUT_MS
  server.requestTimeout = REQUEST_TIMEOUT_MS
  server.maxHeadersCount = 64
  server.on(init.tls != null ? 'secureConnection' : 'connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? 'unknown'
    const n = (connections.get(client) ?? 0) + 1
    connections.set(client, n)
    socket.once('close', () => {
      const left = (connections.get(client) ?? 1) - 1
      if (left <= 0) connections.delete(client)
      else connections.set(client, left)
    })
    if (n > maxConnections) socket.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(init.port, init.host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  const port = typeof addr === 'object' && addr != null ? addr.port : init.port
  const host = init.host.includes(':') ? `[${init.host}]` : init.host
  return {
    url: `${init.tls != null ? 'https' : 'http'}://${host}:${port}`,
    port,
    stop: async () => {
      await new Promise<void>(resolve => { server.close(() => { resolve() }); server.closeAllConnections() })
    }
  }
}

async function serve (req: IncomingMessage, res: ServerResponse, client: string, budget: UploadBudget, maxWaitMs: number, init: ChunkHttpServerInit): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    reply(res, init, 405, 'METHOD_NOT_ALLOWED', 'GET or HEAD only', { allow: 'GET, HEAD' })
    return
  }
  const url = new URL(req.url ?? '/', 'http://h')
  const m = /^\/ipfs\/([A-Za-z0-9]+)\/?$/.exec(url.pathname)
  if (m == null) {
    reply(res, init, 404, 'NOT_FOUND', 'only /ipfs/{cid} is served here')
    return
  }
  const format = url.searchParams.get('format')
  if (format != null && format !== 'raw') {
    reply(res, init, 400, 'BAD_REQUEST', 'only format=raw is served here')
    return
  }
  const accept = req.headers.accept
  if (format == null && accept != null && !acceptsRaw(accept)) {
    reply(res, init, 406, 'NOT_ACCEPTABLE', `only ${RAW_BLOCK_TYPE} is served here`)
    return
  }
  let cid: CID
  try {
    cid = parseCid(m[1])
  } catch {
    reply(res, init, 400, 'INVALID_CID', 'not a CID')
    return
  }
  if (cid.multihash.code !== SHA2_256_CODE || cid.multihash.digest.byteLength !== DIGEST_LENGTH || (cid.code !== RAW_CODEC && cid.code !== DAG_CBOR_CODEC)) {
    reply(res, init, 400, 'INVALID_CID', 'only raw and dag-cbor CIDs with sha2-256 are served here')
    return
  }
  const digest = cid.multihash.digest
  const cidText = cid.toString()
  let body: Uint8Array | undefined
  let length = 0
  let zstd = false
  if (cid.code === DAG_CBOR_CODEC) {
    body = await init.getManifest?.(cid)
    length = body?.byteLength ?? 0
  } else {
    const decision = init.policy?.(client, digest) ?? 'serve'
    if (decision === 'rate-limited') {
      reply(res, init, 429, 'RATE_LIMITED', 'this chunk was just handed to another client: ask it', { 'retry-after': '4' })
      return
    }
    const stored = decision === 'serve' ? await init.getStored(digest) : undefined
    if (stored != null) {
      zstd = stored.encoding === 'zstd' && init.compress !== false && acceptsZstd(req.headers['accept-encoding'])
      const inflate = stored.encoding === 'zstd' && !zstd
      // a HEAD needs only the length: a kept frame is not inflated for it
      length = inflate ? stored.rawSize : stored.data.byteLength
      body = inflate && req.method !== 'HEAD' ? decompressChunk(stored.data, stored.rawSize) : stored.data
    }
  }
  if (body == null) {
    reply(res, init, 404, 'NOT_FOUND', 'no such block here')
    return
  }
  const etag = zstd ? `"${cidText}.raw.zstd"` : `"${cidText}.raw"`
  const headers: Record<string, string> = {
    'content-type': RAW_BLOCK_TYPE,
    'cache-control': IMMUTABLE_CACHE_CONTROL,
    etag,
    vary: 'Accept, Accept-Encoding',
    'x-content-type-options': 'nosniff',
    'x-ipfs-roots': cidText
  }
  if (zstd) headers['content-encoding'] = 'zstd'
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers).end()
    init.onResponse?.(304)
    return
  }
  headers['content-length'] = String(length)
  if (req.method === 'HEAD') {
    res.writeHead(200, headers).end()
    init.onResponse?.(200)
    return
  }
  const wait = budget.reserve(body.byteLength, maxWaitMs)
  if (wait < 0) {
    reply(res, init, 429, 'RATE_LIMITED', 'upload cap reached', { 'retry-after': String(Math.max(1, Math.ceil(-wait / 1000))) })
    return
  }
  if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
  res.writeHead(200, headers)
  res.end(body)
  init.onResponse?.(200)
  init.onServed?.(client, body.byteLength)
}

function reply (res: ServerResponse, init: ChunkHttpServerInit, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  const text = JSON.stringify({ code, message })
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store', ...extra })
  res.end(text)
  init.onResponse?.(status)
}

/** True when an Accept header admits the raw block type (or anything). */
export function acceptsRaw (accept: string): boolean {
  return accept.split(',').some(part => {
    const [type, ...params] = part.trim().split(';').map(s => s.trim().toLowerCase())
    if (params.some(p => /^q=0(\.0*)?$/.test(p))) return false
    return type === RAW_BLOCK_TYPE || type === '*/*' || type === 'application/*'
  })
}

/** True when an Accept-Encoding header admits zstd (named, not through `*`: a frame is only for who asks). */
export function acceptsZstd (header: string | undefined): boolean {
  if (header == null) return false
  return header.split(',').some(part => {
    const [coding, ...params] = part.trim().split(';').map(s => s.trim().toLowerCase())
    return coding === 'zstd' && !params.some(p => /^q=0(\.0*)?$/.test(p))
  })
}
