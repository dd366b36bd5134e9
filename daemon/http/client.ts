// A client of the HTTP chunk path: fetches a batch of chunks by CID from one base URL (a heraldd's chunk
// listener, or a static origin serving an exported release) over keep-alive connections (node:http with a
// keep-alive Agent: 0.5–0.9× the receiving CPU of Node's fetch in docs/BENCHMARKS.md), a window of requests in flight,
// replies yielded in order.
// Every body is bounded before it is read in full: a raw block must be exactly the size the manifest
// gives; a zstd body must be at most zstd's bound for that size, exactly one frame with no trailing bytes,
// declaring that size. Every chunk is checked against its digest before it is yielded (unless the caller
// checks it itself: `verify: false`).
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { createRequire } from 'node:module'
import { cidFromDigest, verifyDigest } from '../../protocol/cid.js'
import { decompressChunk, MAX_DECOMPRESSED } from '../../protocol/encoding/compression.js'
import { CLIENT_TIMEOUT_MS, CLIENT_WINDOW, RAW_BLOCK_TYPE } from './constants.js'
import { HttpSourceError } from './errors.js'

const require = createRequire(import.meta.url)
const binding = require('zstd-napi/binding.js') as { findFrameCompressedSize: (frame: Uint8Array) => number, compressBound: (n: number) => number }

export interface HttpChunkWant {
  digest: Uint8Array
  /** the chunk's size from the manifest: the bound on what is accepted */
  size: number
}

export interface HttpChunkReply {
  digest: Uint8Array
  status: 'ok' | 'not-found' | 'rate-limited'
  /** the verified chunk */
  bytes?: Uint8Array
  /** the zstd frame as received, when the source sent one: what the store keeps */
  frame?: Uint8Array
  encoding?: 'raw' | 'zstd'
  /** body bytes received */
  wireBytes: number
  /** from Retry-After on a 429, ms */
  retryAfterMs?: number
}

export interface HttpChunkClientInit {
  /** e.g. http://10.0.0.5:4481 or https://cdn.example.org/herald — chunk URLs are <baseUrl>/ipfs/<cid> */
  baseUrl: string
  /** ask for stored zstd frames (Accept-Encoding: zstd); default true */
  acceptZstd?: boolean
  timeoutMs?: number
  /** requests in flight at once (and keep-alive connections kept) */
  window?: number
  /** PEM certificate(s) to trust for an https base URL, besides the system's */
  ca?: string | Buffer
  /**
   * check every chunk against its CID before yielding it (default true); false when the caller's store
   * checks it anyway (the fetch scheduler's), so a chunk is hashed once
   */
  verify?: boolean
}

export class HttpChunkClient {
  readonly baseUrl: string
  readonly #acceptZstd: boolean
  readonly #timeoutMs: number
  readonly #window: number
  readonly #verify: boolean
  readonly #agent: HttpAgent | HttpsAgent
  readonly #request: typeof httpRequest

  constructor (init: HttpChunkClientInit) {
    this.baseUrl = init.baseUrl.replace(/\/+$/, '')
    this.#acceptZstd = init.acceptZstd ?? true
    this.#timeoutMs = init.timeoutMs ?? CLIENT_TIMEOUT_MS
    this.#window = Math.max(1, init.window ?? CLIENT_WINDOW)
    this.#verify = init.verify ?? true
    const https = this.baseUrl.startsWith('https:')
    // keep-alive connections, one per request in flight (node:http: less receiving CPU than fetch, docs/BENCHMARKS.md)
    const agentInit = { keepAlive: true, maxSockets: this.#window, scheduling: 'lifo' as const }
    this.#agent = https ? new HttpsAgent({ ...agentInit, ca: init.ca }) : new HttpAgent(agentInit)
    this.#request = https ? httpsRequest as typeof httpRequest : httpRequest
  }

  /** Close the kept-alive connections. */
  close (): void { this.#agent.destroy() }

  async #get (url: string, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
    signal.throwIfAborted()
    return await new Promise((resolve, reject) => {
      const req = this.#request(url, { agent: this.#agent, headers, signal }, resolve)
      req.once('error', reject)
      req.end()
    })
  }

  /**
   * Fetch the chunks, yielding one reply per want in order. Throws HttpSourceError (with `reason`) when
   * the source breaks a bound or sends bytes that do not match the CID; the rest of the batch is abandoned.
   */
  async * fetch (wants: HttpChunkWant[], options: { signal?: AbortSignal } = {}): AsyncGenerator<HttpChunkReply> {
    const controller = new AbortController()
    const signal = options.signal != null ? AbortSignal.any([options.signal, controller.signal]) : controller.signal
    const pending: Array<Promise<HttpChunkReply>> = []
    let next = 0
    const launch = (): void => {
      while (pending.length < this.#window && next < wants.length) {
        const p = this.fetchOne(wants[next++], signal)
        p.catch(() => {}) // observed when its turn comes
        pending.push(p)
      }
    }
    try {
      launch()
      while (pending.length > 0) {
        const reply = await pending.shift()!
        launch()
        yield reply
      }
    } finally {
      controller.abort(new Error('batch finished or abandoned'))
    }
  }

  /** One chunk. */
  async fetchOne (want: HttpChunkWant, parent?: AbortSignal): Promise<HttpChunkReply> {
    const { digest, size } = want
    if (!Number.isInteger(size) || size < 0 || size > MAX_DECOMPRESSED) throw new RangeError(`chunk size ${size} out of range`)
    const cid = cidFromDigest(digest).toString()
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    const signal = parent != null ? AbortSignal.any([parent, timeout]) : timeout
    const headers: Record<string, string> = { accept: RAW_BLOCK_TYPE }
    if (this.#acceptZstd) headers['accept-encoding'] = 'zstd'
    const res = await this.#get(`${this.baseUrl}/ipfs/${cid}?format=raw`, headers, signal)
    const status = res.statusCode ?? 0
    if (status === 404 || status === 410) {
      discard(res)
      return { digest, status: 'not-found', wireBytes: 0 }
    }
    if (status === 429 || status === 503) {
      discard(res)
      const after = Number(res.headers['retry-after'])
      return { digest, status: 'rate-limited', wireBytes: 0, retryAfterMs: Number.isFinite(after) && after >= 0 ? after * 1000 : undefined }
    }
    if (status !== 200) {
      res.destroy()
      throw new HttpSourceError('bad_response', `${cid}: HTTP ${status}`)
    }
    const coding = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    if (coding !== 'identity' && !(coding === 'zstd' && this.#acceptZstd)) {
      res.destroy()
      throw new HttpSourceError('bad_response', `${cid}: unasked-for content-encoding ${coding}`)
    }
    const zstd = coding === 'zstd'
    const limit = zstd ? binding.compressBound(size) : size
    const body = await readBounded(res, limit, cid, signal)
    let bytes = body
    if (zstd) {
      let frameSize: number
      try {
        frameSize = binding.findFrameCompressedSize(body)
      } catch (err) {
        throw new HttpSourceError('bad_compression', `${cid}: not a zstd frame`, { cause: err })
      }
      if (frameSize !== body.byteLength) throw new HttpSourceError('bad_compression', `${cid}: ${body.byteLength - frameSize} bytes after the zstd frame`)
      try {
        bytes = decompressChunk(body, size)
      } catch (err: any) {
        throw new HttpSourceError('bad_compression', `${cid}: ${String(err.message)}`, { cause: err })
      }
    } else if (body.byteLength !== size) {
      throw new HttpSourceError('short_body', `${cid}: ${body.byteLength} bytes, the manifest says ${size}`)
    }
    if (this.#verify && !verifyDigest(digest, bytes)) throw new HttpSourceError('bad_digest', `${cid}: the bytes do not match the CID`)
    return { digest, status: 'ok', bytes, frame: zstd ? body : undefined, encoding: zstd ? 'zstd' : 'raw', wireBytes: body.byteLength }
  }
}

/** Drop a small error body so its keep-alive connection can carry the next request; a large one closes it. */
function discard (res: IncomingMessage): void {
  if (Number(res.headers['content-length'] ?? Infinity) <= 65_536) res.resume()
  else res.destroy()
}

/** The body, refused as soon as it (or its announced length) exceeds `limit` bytes. */
async function readBounded (res: IncomingMessage, limit: number, cid: string, signal: AbortSignal): Promise<Uint8Array> {
  const announced = res.headers['content-length']
  if (announced != null && Number(announced) > limit) {
    res.destroy()
    throw new HttpSourceError('too_large', `${cid}: ${announced} bytes announced, at most ${limit} expected`)
  }
  const out = Buffer.allocUnsafe(announced != null ? Number(announced) : limit)
  let n = 0
  try {
    for await (const part of res as AsyncIterable<Buffer>) {
      if (n + part.byteLength > out.byteLength) {
        throw new HttpSourceError('too_large', `${cid}: more than ${announced ?? limit} bytes`)
      }
      part.copy(out, n)
      n += part.byteLength
    }
  } catch (err) {
    res.destroy()
    if (err instanceof HttpSourceError) throw err
    if (signal.aborted) throw signal.reason
    throw new HttpSourceError('short_body', `${cid}: the response broke off after ${n} bytes`, { cause: err })
  }
  return n === out.byteLength ? out : out.subarray(0, n)
}
