// The fetch scheduler: moves the chunks of one release that the local store lacks.
// - Rarest first: among the missing chunks, the ones fewest known peers hold go first (sampled window,
//   random tie-break per node so that simultaneous downloaders ask for different chunks).
// - Nearest first: holders ranked by measured throughput and RTT, with per-peer in-flight limits.
// - The seed is the origin of last resort: asked only for chunks no other peer holds, or that peers
//   failed to deliver within the seed deadline; a super-seeding seed answers RATE_LIMITED for chunks it
//   already handed to someone else, and we wait for that someone's HAVE.
// - A request that waits for its next reply longer than its peer's stall deadline (a few times the peer's
//   measured reply gap, 1–5 s) gives its chunks and its slot back to other holders, and the peer gets no
//   new request until it answers: a frozen peer costs about its deadline. A peer that has delivered nothing
//   yet is rated low and gets one small request at a time. Bad bytes penalise the peer; every chunk is
//   verified (by the caller's `store`) before it counts; a local store error (disk full) ends the fetch and
//   blames nobody.
// - When every chunk is in, requests still open (hedged duplicates) are ended and run() returns.
// - Delta objects: chunks the caller can rebuild from bases it holds are fetched as their (much smaller) delta
//   object instead, one object per run of chunks; when no source holds the object, or it does not rebuild
//   its chunks, the chunks themselves are fetched.
import { logger } from '@libp2p/logger'
import { digestHex } from '../../protocol/cid.js'
import { bitGet } from './swarm.js'
import type { PeerStats } from './peer-stats.js'
import type { ReleaseSwarm } from './swarm.js'

const log = logger('herald:fetch')

/** how many candidate chunks are scanned for the rarest per batch */
const RAREST_WINDOW = 512
/** a chunk the seed deferred (super-seeding) is not asked from the seed again for this long, ms */
const SEED_DEFER_MS = 1_500
/** scheduling tick when nothing else wakes the loop, ms (also how often stalled requests are looked for) */
const TICK_MS = 100
/** chunks in one request to a peer that has not delivered anything yet */
const PROBE_BATCH = 2
/** requests to unproven peers at once, at least (else a quarter of maxInflight) */
const MIN_PROBES = 2

export interface Reply {
  digest: Uint8Array
  status: 'ok' | 'not-found' | 'rate-limited' | 'error'
  bytes?: Uint8Array
  wireBytes: number
  encoding?: 'raw' | 'zstd'
  frame?: Uint8Array
}

/** thrown by `store` when a delta object arrived intact but does not rebuild its chunk */
export class DeltaFailedError extends Error {
  static name = 'DeltaFailedError'
  readonly code = 'DELTA_FAILED'
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DeltaFailedError'
  }
}

export interface SchedulerInit {
  swarm: ReleaseSwarm
  stats: PeerStats
  /** ask one peer for a batch of chunks; yields replies in request order */
  request: (peerId: string, digests: Uint8Array[], signal: AbortSignal) => AsyncIterable<Reply>
  /**
   * verify and store an entry (a chunk, or a delta object and the chunk it rebuilds); throws HASH_MISMATCH on
   * bad bytes (the peer's fault), DELTA_FAILED when a delta object does not rebuild its chunks; anything else
   * it throws (DISK_FULL, STORE_CLOSED, STORE_CORRUPT, ...) is a local failure that ends the fetch with it
   */
  store: (index: number, digest: Uint8Array, bytes: Uint8Array, reply: Reply) => Promise<void>
  /** for missing chunks: the delta-object entry to fetch instead (its bases are held locally; one object may stand for several chunks) */
  deltaFor?: Map<number, number>
  onReceived: (peerId: string, seed: boolean, wireBytes: number, rawBytes: number, encoding: 'raw' | 'zstd' | 'delta') => void
  onRequest?: (peerId: string, seed: boolean, result: string, seconds: number) => void
  onMisbehaviour?: (peerId: string, reason: string) => void
  maxInflightPerPeer: number
  maxInflight: number
  batchSize: number
  seedDeadlineMs: number
  /** the longest a request may wait for its next reply before its chunks go to another holder, ms (the stall deadline is adaptive below it) */
  hedgeAfterMs: number
  requestTimeoutMs: number
  stallTimeoutMs: number
  signal: AbortSignal
  /** the clock every decision reads (tests inject one) */
  now?: () => number
}

interface ChunkState {
  /** requests currently carrying this chunk */
  inflight: number
  /** of which requests to unproven peers (the seed does not wait for those) */
  probes: number
  /** failed deliveries from peers (not the seed) */
  peerFailures: number
  /** not asked from the seed before this time */
  seedNotBefore: number
  /** first time we asked a peer, for the seed deadline */
  firstPeerAsk: number
}

/** one request in flight */
interface Active {
  peerId: string
  seed: boolean
  /** chunks of the batch not delivered yet that this request still claims */
  pending: Set<number>
  started: number
  /** when the request began waiting for its next reply */
  waitingSince: number
  /** storing a reply: the wait is ours, not the peer's */
  storing: boolean
  /** holds one of the maxInflight slots (a stalled request gives its slot back) */
  counted: boolean
  /** a request to a peer that has not delivered anything yet */
  probe: boolean
  timedOut: boolean
  controller: AbortController
}

export class NoSourceError extends Error {
  static name = 'NoSourceError'
  readonly code = 'NO_SOURCE'
  constructor (message: string) {
    super(message)
    this.name = 'NoSourceError'
  }
}

export class FetchScheduler {
  readonly #init: SchedulerInit
  readonly #swarm: ReleaseSwarm
  readonly #now: () => number
  readonly #missing: number[]
  readonly #state = new Map<number, ChunkState>()
  readonly #inflightByPeer = new Map<string, number>()
  /** delta-object entry → the missing chunks it stands for */
  readonly #standsFor = new Map<number, number[]>()
  readonly #active = new Set<Active>()
  /** peers with a request that waited past its stall deadline: no new requests until they answer */
  readonly #stalled = new Set<string>()
  /** when each peer last answered, on any request: a peer is alive while it answers some request */
  readonly #lastReplyFrom = new Map<string, number>()
  /** ends every request of this fetch: on completion, failure or abort */
  readonly #stop = new AbortController()
  readonly #total: number
  #fatal: Error | undefined
  /** an unproven peer stalled or failed in this fetch: from now on a claim alone keeps no chunk from the seed */
  #doubtClaims = false
  #inflight = 0
  #probes = 0
  #cursor = 0
  #stored = 0
  #lastProgress: number
  readonly #startedAt: number
  #wake: (() => void) | undefined
  readonly #salt = Math.floor(Math.random() * 0x7fffffff)

  constructor (init: SchedulerInit) {
    this.#init = init
    this.#swarm = init.swarm
    this.#now = init.now ?? Date.now
    this.#startedAt = this.#lastProgress = this.#now()
    this.#missing = []
    for (let i = 0; i < init.swarm.index.count; i++) {
      if (init.swarm.hasLocal(i)) continue
      const e = init.deltaFor?.get(i)
      if (e != null && !init.swarm.hasLocal(e)) {
        const run = this.#standsFor.get(e)
        if (run != null) run.push(i)
        else {
          this.#standsFor.set(e, [i])
          this.#missing.push(e)
        }
      } else {
        this.#missing.push(i)
      }
    }
    this.#total = this.#missing.length
    // a different order on every node: simultaneous downloaders start on different chunks
    this.#missing.sort((a, b) => this.#hash(a) - this.#hash(b))
  }

  #hash (i: number): number {
    let x = (i ^ this.#salt) >>> 0
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0
    return (x ^ (x >>> 16)) >>> 0
  }

  get remaining (): number { return this.#missing.length }

  /** requests still open (tests: none may outlive run()) */
  get openRequests (): number { return this.#active.size }

  /** Fetch the chunks delta-object entry e stands for themselves. */
  #fallBack (e: number): void {
    const run = this.#standsFor.get(e)
    if (run == null) return
    this.#standsFor.delete(e)
    const at = this.#missing.indexOf(e)
    if (at !== -1) this.#missing.splice(at, 1)
    for (const i of run) if (!this.#swarm.hasLocal(i)) this.#missing.push(i)
    log('delta object %d: fetching its %d chunks themselves', e, run.length)
    this.#poke()
  }

  #allHeld (run: number[]): boolean {
    for (const i of run) if (!this.#swarm.hasLocal(i)) return false
    return true
  }

  /** Delta objects nobody can serve (after the seed deadline) fall back to their chunks. */
  #checkObjects (now: number): void {
    if (this.#standsFor.size === 0 || now - this.#startedAt < this.#init.seedDeadlineMs) return
    for (const [e, run] of [...this.#standsFor]) {
      if (this.#allHeld(run)) continue
      const s = this.#state.get(e)
      if (s != null && s.inflight > 0) continue
      let served = false
      for (const r of this.#swarm.remotes.values()) {
        if (bitGet(r.bitmap, e) && this.#init.stats.usable(r.peerId, now) && !this.#stalled.has(r.peerId)) { served = true; break }
      }
      if (!served || (s != null && s.peerFailures >= 3)) this.#fallBack(e)
    }
  }

  /**
   * Run until every missing chunk is stored. Rejects with the abort reason when the signal aborts, with
   * NO_SOURCE when nothing arrived for stallTimeoutMs, and with a store's own error (DISK_FULL, ...) when
   * storing fails for a local reason. Whatever the outcome, every request it started has ended when it settles.
   */
  async run (): Promise<void> {
    const { signal } = this.#init
    signal.throwIfAborted()
    const running = new Set<Promise<void>>()
    const onAbort = (): void => { this.#poke() }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      while (true) {
        if (this.#fatal != null) throw this.#fatal
        signal.throwIfAborted()
        const now = this.#now()
        this.#checkRequests(now)
        this.#checkObjects(now)
        this.#compact()
        // done: requests still open carry only duplicates (hedged chunks); they are ended below
        if (this.#missing.length === 0) return
        for (const job of this.#schedule(now)) {
          const p: Promise<void> = job.catch(err => { this.#fail(err) }).finally(() => { running.delete(p); this.#poke() })
          running.add(p)
        }
        if (now - this.#lastProgress > this.#init.stallTimeoutMs) {
          const n = this.#missing.length
          throw new NoSourceError(`no source delivered any chunk for ${Math.round(this.#init.stallTimeoutMs / 1000)} s: ${n} of ${this.#total} entries still missing, ${this.#stored} stored by this fetch`)
        }
        await this.#sleep()
      }
    } finally {
      signal.removeEventListener('abort', onAbort)
      this.#stop.abort()
      // each request settles promptly once aborted (a store in progress completes first)
      await Promise.all(running)
    }
  }

  async #sleep (): Promise<void> {
    let done: (() => void) | undefined
    const woken = new Promise<void>(resolve => { done = resolve })
    this.#wake = done
    try {
      await Promise.race([woken, this.#swarm.waitForChange(TICK_MS)])
    } finally {
      this.#wake = undefined
    }
  }

  #poke (): void { this.#wake?.() }

  /** End the fetch with a local error (a store that cannot take more, a programming error). */
  #fail (err: unknown): void {
    this.#fatal ??= err instanceof Error ? err : new Error(String(err))
    this.#stop.abort()
    this.#poke()
  }

  /**
   * Requests past their deadline: one that waited for a reply longer than its peer's stall deadline gives its
   * chunks and its slot back (they go to other holders) and the peer gets no new request until it answers;
   * one past requestTimeoutMs is ended.
   */
  #checkRequests (now: number): void {
    const { stats, hedgeAfterMs, requestTimeoutMs } = this.#init
    for (const a of this.#active) {
      if (now - a.started > requestTimeoutMs && !a.timedOut) {
        a.timedOut = true
        a.controller.abort()
        continue
      }
      if (a.storing || !a.counted) continue
      const since = Math.max(a.waitingSince, this.#lastReplyFrom.get(a.peerId) ?? 0)
      if (now - since <= stats.stallDeadlineMs(a.peerId, hedgeAfterMs)) continue
      log('%s has not answered for %d ms: its %d chunks go to other holders', a.peerId, now - since, a.pending.size)
      this.#hedge(a)
      this.#stalled.add(a.peerId)
      if (a.probe) this.#doubtClaims = true
    }
  }

  /** Give a request's undelivered chunks and its slot back; it stays open and may still deliver. */
  #hedge (a: Active): void {
    for (const i of a.pending) this.#unclaim(i, a)
    a.pending.clear()
    if (a.counted) {
      a.counted = false
      this.#inflight--
      if (a.probe) this.#probes--
    }
    this.#poke()
  }

  /** Drop chunks that are now held locally from the missing list. */
  #compact (): void {
    let w = 0
    for (let r = 0; r < this.#missing.length; r++) {
      const i = this.#missing[r]
      const stands = this.#standsFor.get(i)
      // a delta object is not needed once its chunks are held
      if (!this.#swarm.hasLocal(i) && (stands == null || !this.#allHeld(stands))) this.#missing[w++] = i
    }
    this.#missing.length = w
    if (this.#cursor >= w) this.#cursor = 0
  }

  #chunk (i: number): ChunkState {
    let s = this.#state.get(i)
    if (s == null) {
      s = { inflight: 0, probes: 0, peerFailures: 0, seedNotBefore: 0, firstPeerAsk: 0 }
      this.#state.set(i, s)
    }
    return s
  }

  #unclaim (i: number, a: Active): void {
    const s = this.#chunk(i)
    s.inflight = Math.max(0, s.inflight - 1)
    if (a.probe) s.probes = Math.max(0, s.probes - 1)
  }

  #peerInflight (peerId: string): number { return this.#inflightByPeer.get(peerId) ?? 0 }

  #maxProbes (): number { return Math.max(MIN_PROBES, Math.ceil(this.#init.maxInflight / 4)) }

  /**
   * Start as many requests as limits allow; peers first (best score first), then the seed. A peer that has
   * not delivered anything yet gets one small request at a time, and such probes take a bounded share of the
   * slots, so identities that claim everything and answer nothing cannot hold the fetch up.
   */
  #schedule (now: number): Array<Promise<void>> {
    const jobs: Array<Promise<void>> = []
    const { stats, maxInflight, maxInflightPerPeer } = this.#init
    // woken by every HAVE update: nothing to do while every request slot is taken
    if (this.#inflight >= maxInflight || this.#missing.length === 0) return jobs
    const remotes = [...this.#swarm.remotes.values()].filter(r => r.held > 0 && stats.usable(r.peerId, now) && !this.#stalled.has(r.peerId))
    const peers = remotes.filter(r => !r.seed).sort((a, b) => stats.score(b.peerId) - stats.score(a.peerId))
    const seeds = remotes.filter(r => r.seed)

    for (const pass of [peers, seeds]) {
      let progressed = true
      while (progressed && this.#inflight < maxInflight) {
        progressed = false
        for (const remote of pass) {
          if (this.#inflight >= maxInflight) break
          const probe = !remote.seed && !stats.proven(remote.peerId)
          if (this.#peerInflight(remote.peerId) >= (probe ? 1 : maxInflightPerPeer)) continue
          if (probe && this.#probes >= this.#maxProbes()) continue
          const batch = this.#pick(remote.bitmap, remote.seed, now, probe ? Math.min(PROBE_BATCH, this.#init.batchSize) : this.#init.batchSize)
          if (batch.length === 0) continue
          jobs.push(this.#request(remote.peerId, remote.seed, batch, probe))
          progressed = true
        }
      }
    }
    return jobs
  }

  /** Choose up to `size` missing chunks this holder has, rarest first within a window. */
  #pick (bitmap: Uint8Array, seed: boolean, now: number, size: number): number[] {
    const n = this.#missing.length
    if (n === 0) return []
    // give peer discovery the seed deadline before the origin of last resort is used at all
    if (seed && now - this.#startedAt < this.#init.seedDeadlineMs) return []
    const candidates: Array<{ i: number, rarity: number }> = []
    const window = Math.min(n, RAREST_WINDOW)
    let scanned = 0
    for (let k = 0; k < n && scanned < window * 4 && candidates.length < window; k++) {
      const i = this.#missing[(this.#cursor + k) % n]
      scanned++
      if (this.#swarm.hasLocal(i) || !bitGet(bitmap, i)) continue
      const s = this.#chunk(i)
      // a chunk that only a probe carries may go to the seed as well: the probe may never answer
      if (s.inflight - (seed ? s.probes : 0) > 0) continue
      const rarity = this.#swarm.holders(i)
      if (seed) {
        if (now < s.seedNotBefore) continue
        // the seed only for chunks no usable peer can serve, or that peers failed to deliver in time
        const peerCanServe = rarity > 0 && s.peerFailures < 2 && (s.firstPeerAsk === 0 || now - s.firstPeerAsk < this.#init.seedDeadlineMs)
        if (peerCanServe && this.#anyUsableHolder(i, now)) continue
      }
      candidates.push({ i, rarity })
    }
    this.#cursor = (this.#cursor + size) % Math.max(1, n)
    candidates.sort((a, b) => a.rarity - b.rarity)
    const batch = candidates.slice(0, size).map(c => c.i)
    for (const i of batch) {
      const s = this.#chunk(i)
      if (!seed && s.firstPeerAsk === 0) s.firstPeerAsk = now
    }
    return batch
  }

  /** the bytes of the chunks delta-object entry e rebuilds that are not held yet */
  #missingRunBytes (e: number): number {
    let n = 0
    for (const i of this.#swarm.targetsOf(e)) if (!this.#swarm.hasLocal(i)) n += this.#swarm.index.sizes[i]
    return n
  }

  /**
   * A peer that may serve chunk i soon: usable and not stalled; once an unproven peer has stalled or failed
   * in this fetch (identities that claim everything and answer nothing), only peers that have delivered
   * before keep a chunk from the seed past the seed deadline.
   */
  #anyUsableHolder (i: number, now: number): boolean {
    const { stats } = this.#init
    const young = now - this.#startedAt < this.#init.seedDeadlineMs
    for (const r of this.#swarm.remotes.values()) {
      if (r.seed || !bitGet(r.bitmap, i) || !stats.usable(r.peerId, now) || this.#stalled.has(r.peerId)) continue
      if (young || !this.#doubtClaims || stats.proven(r.peerId)) return true
    }
    return false
  }

  /** One batch from one peer. Never rejects for a peer's failure or an abort; a local store error ends the fetch. */
  async #request (peerId: string, seed: boolean, batch: number[], probe: boolean): Promise<void> {
    const { stats } = this.#init
    const started = this.#now()
    const a: Active = { peerId, seed, pending: new Set(batch), started, waitingSince: started, storing: false, counted: true, probe, timedOut: false, controller: new AbortController() }
    this.#active.add(a)
    for (const i of batch) {
      const s = this.#chunk(i)
      s.inflight++
      if (probe) s.probes++
    }
    this.#inflight++
    if (probe) this.#probes++
    this.#inflightByPeer.set(peerId, this.#peerInflight(peerId) + 1)
    // no listener on a shared signal per request: AbortSignal.any holds its sources weakly
    const signal = AbortSignal.any([this.#stop.signal, a.controller.signal])
    const clock = performance.now()
    let received = 0
    let result = 'ok'
    try {
      const digests = batch.map(i => this.#swarm.digestAt(i))
      let k = 0
      for await (const reply of this.#init.request(peerId, digests, signal)) {
        const i = batch[k++]
        if (i === undefined) break
        const at = this.#now()
        // the gap since this peer last answered anything (requests to one peer share its connection)
        stats.recordReplyGap(peerId, at - Math.max(a.waitingSince, this.#lastReplyFrom.get(peerId) ?? 0), at)
        this.#lastReplyFrom.set(peerId, at)
        // it answered: not stalled (any more)
        this.#stalled.delete(peerId)
        a.storing = true
        // the chunk stays claimed until it is stored, so no other request picks it meanwhile
        const release = (): void => { if (a.pending.delete(i)) this.#unclaim(i, a) }
        if (reply.status !== 'ok' || reply.bytes == null) release()
        if (reply.status === 'ok' && reply.bytes != null) {
          if (this.#swarm.hasLocal(i)) { release(); a.storing = false; a.waitingSince = this.#now(); continue } // a hedged duplicate
          const object = this.#swarm.isObject(i)
          // what the entry brings: a chunk, or the chunks of its run not held yet
          const rawBytes = object ? this.#missingRunBytes(i) : reply.bytes.byteLength
          try {
            await this.#init.store(i, digests[k - 1], reply.bytes, reply)
            release()
          } catch (err: any) {
            release()
            if (err?.code === 'DELTA_FAILED') {
              log.error('delta object %s does not rebuild its chunk: %s', digestHex(digests[k - 1]).slice(0, 16), err.message)
              this.#fallBack(i)
              a.storing = false
              a.waitingSince = this.#now()
              continue
            }
            if (err?.code === 'HASH_MISMATCH') {
              stats.penalize(peerId, this.#now())
              this.#init.onMisbehaviour?.(peerId, 'bad_hash')
              log.error('peer %s sent bytes not matching chunk %s', peerId, digestHex(digests[k - 1]).slice(0, 16))
              result = 'bad_hash'
              break
            }
            // not the peer's doing (DISK_FULL, STORE_CLOSED, STORE_CORRUPT, ...): the whole fetch fails with it
            log.error('storing chunk %s failed: %s', digestHex(digests[k - 1]).slice(0, 16), err?.message)
            this.#fail(err)
            result = 'local_error'
            break
          }
          received += reply.bytes.byteLength
          this.#stored++
          this.#lastProgress = this.#now()
          this.#init.onReceived(peerId, seed, reply.wireBytes, rawBytes, object ? 'delta' : reply.encoding ?? 'raw')
        } else if (reply.status === 'not-found') {
          this.#swarm.forgetRemoteChunk(peerId, i)
          if (!seed) this.#chunk(i).peerFailures++
          result = 'not_found'
        } else if (reply.status === 'rate-limited') {
          if (seed) this.#chunk(i).seedNotBefore = this.#now() + SEED_DEFER_MS
          else stats.backoff(peerId, 250, this.#now())
          result = 'rate_limited'
        } else {
          if (!seed) this.#chunk(i).peerFailures++
          result = 'error'
        }
        a.storing = false
        a.waitingSince = this.#now()
      }
      if (k < batch.length && result === 'ok') result = 'error'
    } catch (err: any) {
      if (this.#stop.signal.aborted) {
        result = 'aborted'
      } else if (err instanceof TypeError || err instanceof RangeError) {
        // a programming error: the fetch fails loudly with it
        this.#fail(err)
        result = 'bug'
      } else {
        result = a.timedOut ? 'timeout' : 'error'
        if (probe) this.#doubtClaims = true
        stats.recordFailure(peerId, this.#now())
        // backed off now: that decides when it is asked again
        this.#stalled.delete(peerId)
        for (const i of batch) if (!seed && !this.#swarm.hasLocal(i)) this.#chunk(i).peerFailures++
        log('request to %s failed: %s', peerId, err?.message)
      }
    } finally {
      this.#active.delete(a)
      for (const i of a.pending) this.#unclaim(i, a)
      a.pending.clear()
      if (a.counted) {
        this.#inflight--
        if (a.probe) this.#probes--
      }
      const left = this.#peerInflight(peerId) - 1
      if (left <= 0) this.#inflightByPeer.delete(peerId)
      else this.#inflightByPeer.set(peerId, left)
    }
    const seconds = (performance.now() - clock) / 1000
    if (received > 0) stats.recordTransfer(peerId, received, seconds)
    this.#init.onRequest?.(peerId, seed, result, seconds)
  }
}
