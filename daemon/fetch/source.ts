// What the fetch scheduler asks for chunks: a Source. A source is a peer reached over libp2p or HTTP, the
// seed, or a static origin (a web server, bucket or CDN serving an exported release). The scheduler knows
// sources only through this interface: their kind decides when they are asked (peers first; the seed and
// origins last, for what peers cannot serve in time), their window how many requests they carry at once;
// their measurements (RTT, throughput, reply gaps, failures, penalties) live in PeerStats under `id`.

/** the answer for one requested entry, in request order */
export interface Reply {
  digest: Uint8Array
  status: 'ok' | 'not-found' | 'rate-limited' | 'error'
  bytes?: Uint8Array
  wireBytes: number
  encoding?: 'raw' | 'zstd'
  /** the zstd frame as received, when the source sent one: what the store keeps */
  frame?: Uint8Array
}

/** peer: any holder that announced a have-bitmap; seed: a configured seed; origin: a static export of the release */
export type SourceKind = 'peer' | 'seed' | 'origin'

export interface Source {
  /** the key of its measurements in PeerStats: a peer ID (whatever path reaches it) or an origin's URL */
  readonly id: string
  readonly kind: SourceKind
  /** the path the bytes take, for logs and metrics: 'libp2p' or 'http' */
  readonly transport: 'libp2p' | 'http'
  /** requests this source may have in flight at once */
  readonly window: number
  /**
   * Ask for a batch of entries (digests, and their sizes from the manifest). Yields one reply per entry in
   * request order; may end early (the rest count as failed). Throws SourceMisbehavedError when the source
   * broke the protocol (bytes that do not match the CID, a body over its bound); any other error is a failure
   * of the request, not counted against the source's honesty.
   */
  request: (digests: Uint8Array[], sizes: number[], signal: AbortSignal) => AsyncIterable<Reply>
}

/** A holder of a release as the scheduler sees it: a source and what it holds (entries, MSB-first bitmap). */
export interface Holder {
  source: Source
  bitmap: Uint8Array
  /** entries it holds (0: nothing to ask it for) */
  held: number
}

/**
 * Where the scheduler gets its sources: one for each peer the have-ledger lists (the directory decides its
 * kind and path), and the static origins, which hold every entry and announce nothing.
 */
export interface SourceDirectory {
  forPeer: (peerId: string, seed: boolean) => Source
  origins: () => Source[]
}

/** The time the scheduler reads and waits on; tests inject a manual one. */
export interface Clock {
  now: () => number
  /** resolves after `ms`, or at once when `signal` aborts (never rejects) */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    if (signal.aborted) return
    await new Promise<void>(resolve => {
      const done = (): void => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
    })
  }
}
