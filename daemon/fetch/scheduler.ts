// The fetch scheduler: moves the chunks of one release that the local store lacks.
// - Rarest first: among the missing chunks, the ones fewest known peers hold go first (sampled window,
//   random tie-break per node so that simultaneous downloaders ask for different chunks).
// - Nearest first: holders ranked by measured throughput and RTT, with per-peer in-flight limits.
// - The seed is the origin of last resort: asked only for chunks no other peer holds, or that peers
//   failed to deliver within the seed deadline; a super-seeding seed answers RATE_LIMITED for chunks it
//   already handed to someone else, and we wait for that someone's HAVE.
// - Slow requests are hedged to another holder; bad bytes penalise the peer; every chunk is verified
//   (by the caller's `store`) before it counts.
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
/** scheduling tick when nothing else wakes the loop, ms */
const TICK_MS = 100

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
  /** verify and store an entry (a chunk, or a delta object and the chunk it rebuilds); throws on a hash mismatch */
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
  hedgeAfterMs: number
  requestTimeoutMs: number
  stallTimeoutMs: number
  signal: AbortSignal
}

interface ChunkState {
  /** requests currently carrying this chunk */
  inflight: number
  /** failed deliveries from peers (not the seed) */
  peerFailures: number
  /** not asked from the seed before this time */
  seedNotBefore: number
  /** first time we asked a peer, for the seed deadline */
  firstPeerAsk: number
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
  readonly #missing: number[]
  readonly #state = new Map<number, ChunkState>()
  readonly #inflightByPeer = new Map<string, number>()
  /** delta-object entry → the missing chunks it stands for */
  readonly #standsFor = new Map<number, number[]>()
  #inflight = 0
  #cursor = 0
  #lastProgress = Date.now()
  readonly #startedAt = Date.now()
  #wake: (() => void) | undefined
  readonly #salt = Math.floor(Math.random() * 0x7fffffff)

  constructor (init: SchedulerInit) {
    this.#init = init
    this.#swarm = init.swarm
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
        if (bitGet(r.bitmap, e) && this.#init.stats.usable(r.peerId, now)) { served = true; break }
      }
      if (!served || (s != null && s.peerFailures >= 3)) this.#fallBack(e)
    }
  }

  async run (): Promise<void> {
    const { signal } = this.#init
    const running = new Set<Promise<void>>()
    while (true) {
      signal.throwIfAborted()
      this.#checkObjects(Date.now())
      this.#compact()
      if (this.#missing.length === 0 && running.size === 0) return
      for (const job of this.#schedule()) {
        const p = job.finally(() => { running.delete(p); this.#poke() })
        running.add(p)
      }
      if (this.#missing.length > 0 && Date.now() - this.#lastProgress > this.#init.stallTimeoutMs) {
        throw new NoSourceError(`no source delivered any of the ${this.#missing.length} missing chunks for ${Math.round(this.#init.stallTimeoutMs / 1000)} s`)
      }
      await Promise.race([
        new Promise<void>(resolve => { this.#wake = resolve }),
        this.#swarm.waitForChange(TICK_MS)
      ])
      this.#wake = undefined
    }
  }

  #poke (): void { this.#wake?.() }

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
      s = { inflight: 0, peerFailures: 0, seedNotBefore: 0, firstPeerAsk: 0 }
      this.#state.set(i, s)
    }
    return s
  }

  #peerInflight (peerId: string): number { return this.#inflightByPeer.get(peerId) ?? 0 }

  /** Start as many requests as limits allow; peers first (best score first), then the seed. */
  #schedule (): Array<Promise<void>> {
    const jobs: Array<Promise<void>> = []
    const { stats, maxInflight, maxInflightPerPeer } = this.#init
    // woken by every HAVE update: nothing to do while every request slot is taken
    if (this.#inflight >= maxInflight || this.#missing.length === 0) return jobs
    const now = Date.now()
    const remotes = [...this.#swarm.remotes.values()].filter(r => r.held > 0 && stats.usable(r.peerId, now))
    const peers = remotes.filter(r => !r.seed).sort((a, b) => stats.score(b.peerId) - stats.score(a.peerId))
    const seeds = remotes.filter(r => r.seed)

    for (const pass of [peers, seeds]) {
      let progressed = true
      while (progressed && this.#inflight < maxInflight) {
        progressed = false
        for (const remote of pass) {
          if (this.#inflight >= maxInflight) break
          if (this.#peerInflight(remote.peerId) >= maxInflightPerPeer) continue
          const batch = this.#pick(remote.peerId, remote.bitmap, remote.seed, now)
          if (batch.length === 0) continue
          jobs.push(this.#request(remote.peerId, remote.seed, batch))
          progressed = true
        }
      }
    }
    return jobs
  }

  /** Choose up to batchSize missing chunks this holder has, rarest first within a window. */
  #pick (peerId: string, bitmap: Uint8Array, seed: boolean, now: number): number[] {
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
      const hedgeable = s.inflight > 0
      if (hedgeable) continue
      const rarity = this.#swarm.holders(i)
      if (seed) {
        if (now < s.seedNotBefore) continue
        // the seed only for chunks no usable peer can serve, or that peers failed to deliver in time
        const peerCanServe = rarity > 0 && s.peerFailures < 2 && (s.firstPeerAsk === 0 || now - s.firstPeerAsk < this.#init.seedDeadlineMs)
        if (peerCanServe && this.#anyUsableHolder(i, now)) continue
      }
      candidates.push({ i, rarity })
    }
    this.#cursor = (this.#cursor + this.#init.batchSize) % Math.max(1, n)
    candidates.sort((a, b) => a.rarity - b.rarity)
    const batch = candidates.slice(0, this.#init.batchSize).map(c => c.i)
    for (const i of batch) {
      const s = this.#chunk(i)
      if (!seed && s.firstPeerAsk === 0) s.firstPeerAsk = now
    }
    void peerId
    return batch
  }

  /** the bytes of the chunks delta-object entry e rebuilds that are not held yet */
  #missingRunBytes (e: number): number {
    let n = 0
    for (const i of this.#swarm.targetsOf(e)) if (!this.#swarm.hasLocal(i)) n += this.#swarm.index.sizes[i]
    return n
  }

  #anyUsableHolder (i: number, now: number): boolean {
    for (const r of this.#swarm.remotes.values()) {
      if (!r.seed && bitGet(r.bitmap, i) && this.#init.stats.usable(r.peerId, now)) return true
    }
    return false
  }

  async #request (peerId: string, seed: boolean, batch: number[]): Promise<void> {
    const { stats, signal } = this.#init
    for (const i of batch) this.#chunk(i).inflight++
    this.#inflight++
    this.#inflightByPeer.set(peerId, this.#peerInflight(peerId) + 1)
    const controller = new AbortController()
    const timeout = setTimeout(() => controller.abort(), this.#init.requestTimeoutMs)
    // hedge: after hedgeAfterMs the chunks still undelivered become eligible for another holder
    const pending = new Set(batch)
    // hedge on stalls, not on length: the timer restarts with every reply that arrives
    const hedgeNow = (): void => {
      for (const i of pending) this.#chunk(i).inflight = Math.max(0, this.#chunk(i).inflight - 1)
      pending.clear()
      this.#poke()
    }
    let hedge = setTimeout(hedgeNow, this.#init.hedgeAfterMs)
    const onAbort = (): void => { controller.abort() }
    signal.addEventListener('abort', onAbort, { once: true })
    const started = performance.now()
    let received = 0
    let result = 'ok'
    try {
      const digests = batch.map(i => this.#swarm.digestAt(i))
      let k = 0
      for await (const reply of this.#init.request(peerId, digests, controller.signal)) {
        const i = batch[k++]
        if (i === undefined) break
        clearTimeout(hedge)
        hedge = setTimeout(hedgeNow, this.#init.hedgeAfterMs)
        // the chunk stays claimed until it is stored, so no other request picks it meanwhile
        const release = (): void => { if (pending.delete(i)) this.#chunk(i).inflight-- }
        if (reply.status !== 'ok' || reply.bytes == null) release()
        if (reply.status === 'ok' && reply.bytes != null) {
          if (this.#swarm.hasLocal(i)) { release(); continue } // a hedged duplicate
          const object = this.#swarm.isObject(i)
          // what the entry brings: a chunk, or the chunks of its run not held yet
          const rawBytes = object ? this.#missingRunBytes(i) : reply.bytes.byteLength
          try {
            await this.#init.store(i, digests[k - 1], reply.bytes, reply)
            release()
          } catch (err: any) {
            release()
            if (err.code === 'DELTA_FAILED') {
              log.error('delta object %s does not rebuild its chunk: %s', digestHex(digests[k - 1]).slice(0, 16), err.message)
              this.#fallBack(i)
              continue
            }
            if (err.code === 'HASH_MISMATCH') {
              stats.penalize(peerId)
              this.#init.onMisbehaviour?.(peerId, 'bad_hash')
              log.error('peer %s sent bytes not matching chunk %s', peerId, digestHex(digests[k - 1]).slice(0, 16))
              result = 'bad_hash'
              break
            }
            throw err
          }
          received += reply.bytes.byteLength
          this.#lastProgress = Date.now()
          this.#init.onReceived(peerId, seed, reply.wireBytes, rawBytes, object ? 'delta' : reply.encoding ?? 'raw')
        } else if (reply.status === 'not-found') {
          this.#swarm.forgetRemoteChunk(peerId, i)
          if (!seed) this.#chunk(i).peerFailures++
          result = 'not_found'
        } else if (reply.status === 'rate-limited') {
          if (seed) this.#chunk(i).seedNotBefore = Date.now() + SEED_DEFER_MS
          else stats.backoff(peerId, 250)
          result = 'rate_limited'
        } else {
          if (!seed) this.#chunk(i).peerFailures++
          result = 'error'
        }
      }
      if (k < batch.length && result === 'ok') result = 'error'
    } catch (err: any) {
      if (signal.aborted) throw err
      if (err instanceof TypeError || err instanceof RangeError) throw err
      result = controller.signal.aborted ? 'timeout' : 'error'
      stats.recordFailure(peerId)
      for (const i of batch) if (!seed && !this.#swarm.hasLocal(i)) this.#chunk(i).peerFailures++
      log('request to %s failed: %s', peerId, err.message)
    } finally {
      clearTimeout(timeout)
      clearTimeout(hedge)
      signal.removeEventListener('abort', onAbort)
      for (const i of pending) this.#chunk(i).inflight = Math.max(0, this.#chunk(i).inflight - 1)
      this.#inflight--
      this.#inflightByPeer.set(peerId, this.#peerInflight(peerId) - 1)
    }
    const seconds = (performance.now() - started) / 1000
    if (received > 0) stats.recordTransfer(peerId, received, seconds)
    this.#init.onRequest?.(peerId, seed, result, seconds)
  }
}
