// An HTTP base URL as a Source: a peer's chunk listener (announced as /ip4/…/tcp/N/http or …/tls/http) or a
// static origin serving `herald export` output. Replies come from the bounded HttpChunkClient (keep-alive
// connections, its own window of requests in flight); the bytes are checked against their CID by the
// store, as those of the libp2p path are, so a corrupt HTTP source is penalised the same way.
import { HttpChunkClient } from '../http/client.js'
import { HttpSourceError } from '../http/errors.js'
import { SourceMisbehavedError } from './errors.js'
import type { Reply, Source, SourceKind } from './source.js'

export interface HttpSourceInit {
  /** the PeerStats key: the peer's ID, or the origin's URL */
  id: string
  kind: SourceKind
  baseUrl: string
  /** requests in flight at once (each on its own keep-alive connection) */
  window: number
  /** PEM certificate(s) to trust for an https URL, besides the system's */
  ca?: string | Buffer
}

export class HttpChunkSource implements Source {
  readonly id: string
  readonly kind: SourceKind
  readonly transport = 'http' as const
  readonly window: number
  readonly client: HttpChunkClient

  constructor (init: HttpSourceInit) {
    this.id = init.id
    this.kind = init.kind
    this.window = init.window
    // one batch pipelines its chunks over the window's connections; the store verifies every chunk once
    this.client = new HttpChunkClient({ baseUrl: init.baseUrl, window: init.window, ca: init.ca, verify: false })
  }

  get baseUrl (): string { return this.client.baseUrl }

  async * request (digests: Uint8Array[], sizes: number[], signal: AbortSignal): AsyncIterable<Reply> {
    try {
      for await (const r of this.client.fetch(digests.map((digest, k) => ({ digest, size: sizes[k] })), { signal })) {
        yield { digest: r.digest, status: r.status, bytes: r.bytes, frame: r.frame, encoding: r.encoding, wireBytes: r.wireBytes }
      }
    } catch (err) {
      // a body over its bound, a frame that does not decode: the source's doing; an HTTP 5xx is a failure
      if (err instanceof HttpSourceError && err.reason !== 'bad_response') {
        throw new SourceMisbehavedError(err.reason === 'bad_digest' ? 'bad_hash' : err.reason, err.message, { cause: err })
      }
      throw err
    }
  }

  close (): void { this.client.close() }
}
