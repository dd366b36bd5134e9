// The fetch scheduler: moves the entries of one release that the local store lacks, asking Sources
// (daemon/fetch/source.ts; nothing here is libp2p or HTTP). Which entries go to which holder, rarest first,
// the seed and origins last: picker.ts; what is still wanted, delta objects included: want-list.ts.
// - Peer sources ranked by measured throughput and RTT, each within its own in-flight window; a peer that
//   has delivered nothing yet is rated low and gets one small request at a time.
// - A request that waits for its next reply longer than its source's stall deadline (a few times the
//   source's measured reply gap, 1–5 s) gives its chunks and its slot back to other holders, and the source
//   gets no new request until it answers: a frozen peer costs about its deadline.
// - Bad bytes penalise the source (the store's CID check, or SourceMisbehavedError from the source); a local
//   store error (disk full) ends the fetch and blames nobody. When every entry is in, requests still open
//   (hedged duplicates) are ended and run() returns.
import { logger } from '@libp2p/logger'
import { digestHex } from '../../protocol/cid.js'
import { NoSourceError } from './errors.js'
import { lastResort, Picker } from './picker.js'
import { systemClock, type Clock, type Holder, type Reply, type Source, type SourceDirectory } from './source.js'
import { WantList } from './want-list.js'
import type { PeerStats } from './peer-stats.js'
import type { ReleaseSwarm } from './swarm.js'

export { DeltaFailedError, NoSourceError } from './errors.js'
export type { Reply } from './source.js'

const log = logger('herald:fetch')

/** scheduling tick when nothing else wakes the loop, ms (also how often stalled requests are looked for) */
const TICK_MS = 100
/** chunks in one request to a peer that has not delivered anything yet */
const PROBE_BATCH = 2
/** requests to unproven peers at once, at least (else a quarter of maxInflight) */
const MIN_PROBES = 2

export interface SchedulerInit {
  swarm: ReleaseSwarm
  stats: PeerStats
  /** the source for each holder the swarm lists, and the static origins */
  sources: SourceDirectory
  /**
   * verify and store an entry (a chunk, or a delta object and the chunk it rebuilds); throws HASH_MISMATCH on
   * bad bytes (the source's fault), DELTA_FAILED when a delta object does not rebuild its chunks; anything else
   * it throws (DISK_FULL, STORE_CLOSED, STORE_CORRUPT, ...) is a local failure that ends the fetch with it
   */
  store: (index: number, digest: Uint8Array, bytes: Uint8Array, reply: Reply) => Promise<void>
  /** for missing chunks: the delta-object entry to fetch instead (its bases are held locally; one object may stand for several chunks) */
  deltaFor?: Map<number, number>
  onReceived: (source: Source, wireBytes: number, rawBytes: number, encoding: 'raw' | 'zstd' | 'delta') => void
  onRequest?: (source: Source, result: string, seconds: number) => void
  onMisbehaviour?: (sourceId: string, reason: string) => void
  maxInflight: number
  batchSize: number
  seedDeadlineMs: number
  /** the longest a request may wait for its next reply before its chunks go to another holder, ms (the stall deadline is adaptive below it) */
  hedgeAfterMs: number
  requestTimeoutMs: number
  stallTimeoutMs: number
  signal: AbortSignal
  /** the clock every decision reads and every wait uses (tests inject a manual one) */
  clock?: Clock
}

/** one request in flight */
interface Active {
  holder: Holder
  source: Source
  /** chunks of the batch not delivered yet that this request still claims */
  pending: Set<number>
  started: number
  /** when the request began waiting for its next reply */
  waitingSince: number
  /** storing a reply: the wait is ours, not the source's */
  storing: boolean
  /** holds one of the maxInflight slots (a stalled request gives its slot back) */
  counted: boolean
  /** a request to a peer that has not delivered anything yet */
  probe: boolean
  timedOut: boolean
  controller: AbortController
}

export class FetchScheduler {
  readonly #init: SchedulerInit
  readonly #swarm: ReleaseSwarm
  readonly #clock: Clock
  readonly #want: WantList
  readonly #picker: Picker
  readonly #inflightBySource = new Map<string, number>()
  readonly #active = new Set<Active>()
  /** static origins: hold every entry until one answers NOT_FOUND */
  readonly #origins: Holder[]
  /** the holders as of this tick */
  #holders: Holder[] = []
  /** sources with a request that waited past its stall deadline: no new requests until they answer */
  readonly #stalled = new Set<string>()
  /** when each source last answered, on any request: a source is alive while it answers some request */
  readonly #lastReplyFrom = new Map<string, number>()
  /** ends every request of this fetch: on completion, failure or abort */
  readonly #stop = new AbortController()
  #fatal: Error | undefined
  /** an unproven peer stalled or failed in this fetch: from now on a claim alone keeps no chunk from the seed */
  #doubtClaims = false
  #inflight = 0
  #probes = 0
  #stored = 0
  #lastProgress: number
  readonly #startedAt: number
  #wake: (() => void) | undefined

  constructor (init: SchedulerInit) {
    this.#init = init
    this.#swarm = init.swarm
    this.#clock = init.clock ?? systemClock
    this.#startedAt = this.#lastProgress = this.#clock.now()
    this.#want = new WantList(init.swarm, init.deltaFor)
    this.#picker = new Picker(init.swarm, this.#want, init.stats, {
      holders: () => this.#holders,
      usable: (source, now) => this.#usable(source, now),
      doubtClaims: () => this.#doubtClaims
    }, init.seedDeadlineMs, this.#startedAt)
    const entries = init.swarm.entries
    this.#origins = init.sources.origins().map(source => {
      const bitmap = new Uint8Array(Math.ceil(entries / 8)).fill(0xff)
      return { source, bitmap, held: entries }
    })
  }

  get remaining (): number { return this.#want.length }

  /** requests still open (tests: none may outlive run()) */
  get openRequests (): number { return this.#active.size }

  #fallBack (e: number): void { if (this.#want.fallBack(e)) this.#poke() }

  #usable (source: Source, now: number): boolean {
    return this.#init.stats.usable(source.id, now) && !this.#stalled.has(source.id)
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
        const now = this.#clock.now()
        this.#holders = this.#collectHolders()
        this.#checkRequests(now)
        // delta objects nobody can serve (after the seed deadline) fall back to their chunks
        for (const e of this.#picker.objectsToDrop(now)) this.#fallBack(e)
        this.#want.compact()
        // done: requests still open carry only duplicates (hedged chunks); they are ended below
        if (this.#want.length === 0) return
        for (const job of this.#schedule(now)) {
          const p: Promise<void> = job.catch(err => { this.#fail(err) }).finally(() => { running.delete(p); this.#poke() })
          running.add(p)
        }
        if (now - this.#lastProgress > this.#init.stallTimeoutMs) {
          throw new NoSourceError(`no source delivered any chunk for ${Math.round(this.#init.stallTimeoutMs / 1000)} s: ${this.#want.length} of ${this.#want.total} entries still missing, ${this.#stored} stored by this fetch`)
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

  #collectHolders (): Holder[] {
    const out: Holder[] = []
    for (const r of this.#swarm.remotes.values()) out.push({ source: this.#init.sources.forPeer(r.peerId, r.seed), bitmap: r.bitmap, held: r.held })
    for (const o of this.#origins) out.push(o)
    return out
  }

  /** Until a request settles, the swarm changes (a HAVE, a new holder) or a tick passes. */
  async #sleep (): Promise<void> {
    const done = new AbortController()
    const woken = new Promise<void>(resolve => { this.#wake = resolve })
    try {
      await Promise.race([woken, this.#swarm.nextChange(done.signal), this.#clock.sleep(TICK_MS, done.signal)])
    } finally {
      this.#wake = undefined
      done.abort()
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
   * Requests past their deadline: one that waited for a reply longer than its source's stall deadline gives
   * its chunks and its slot back (they go to other holders) and the source gets no new request until it
   * answers; one past requestTimeoutMs is ended.
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
      const id = a.source.id
      const since = Math.max(a.waitingSince, this.#lastReplyFrom.get(id) ?? 0)
      if (now - since <= stats.stallDeadlineMs(id, hedgeAfterMs)) continue
      log('%s has not answered for %d ms: its %d chunks go to other holders', id, now - since, a.pending.size)
      this.#hedge(a)
      this.#stalled.add(id)
      if (a.probe) this.#doubtClaims = true
    }
  }

  /** Give a request's undelivered chunks and its slot back; it stays open and may still deliver. */
  #hedge (a: Active): void {
    for (const i of a.pending) this.#picker.unclaim(i, a.probe)
    a.pending.clear()
    this.#uncount(a)
    this.#poke()
  }

  #uncount (a: Active): void {
    if (!a.counted) return
    a.counted = false
    this.#inflight--
    if (a.probe) this.#probes--
  }

  #sourceInflight (id: string): number { return this.#inflightBySource.get(id) ?? 0 }

  #maxProbes (): number { return Math.max(MIN_PROBES, Math.ceil(this.#init.maxInflight / 4)) }

  /**
   * Start as many requests as limits allow; peers first (best score first), then the seed, then origins. A
   * peer that has not delivered anything yet gets one small request at a time, and such probes take a
   * bounded share of the slots, so identities that claim everything and answer nothing cannot hold the
   * fetch up.
   */
  #schedule (now: number): Array<Promise<void>> {
    const jobs: Array<Promise<void>> = []
    const { stats, maxInflight } = this.#init
    // woken by every HAVE update: nothing to do while every request slot is taken
    if (this.#inflight >= maxInflight || this.#want.length === 0) return jobs
    const usable = this.#holders.filter(h => h.held > 0 && this.#usable(h.source, now))
    const peers = usable.filter(h => h.source.kind === 'peer').sort((a, b) => stats.score(b.source.id) - stats.score(a.source.id))
    const seeds = usable.filter(h => h.source.kind === 'seed')
    const origins = usable.filter(h => h.source.kind === 'origin')

    for (const pass of [peers, seeds, origins]) {
      let progressed = true
      while (progressed && this.#inflight < maxInflight) {
        progressed = false
        for (const holder of pass) {
          if (this.#inflight >= maxInflight) break
          const { source } = holder
          const probe = !lastResort(source) && !stats.proven(source.id)
          if (this.#sourceInflight(source.id) >= (probe ? 1 : source.window)) continue
          if (probe && this.#probes >= this.#maxProbes()) continue
          const batch = this.#picker.pick(holder, now, probe ? Math.min(PROBE_BATCH, this.#init.batchSize) : this.#init.batchSize)
          if (batch.length === 0) continue
          jobs.push(this.#request(holder, batch, probe))
          progressed = true
        }
      }
    }
    return jobs
  }

  /** One batch from one source. Never rejects for a source's failure or an abort; a local store error ends the fetch. */
  async #request (holder: Holder, batch: number[], probe: boolean): Promise<void> {
    const { stats } = this.#init
    const { source } = holder
    const id = source.id
    const last = lastResort(source)
    const started = this.#clock.now()
    const a: Active = { holder, source, pending: new Set(batch), started, waitingSince: started, storing: false, counted: true, probe, timedOut: false, controller: new AbortController() }
    this.#active.add(a)
    for (const i of batch) this.#picker.claim(i, probe)
    this.#inflight++
    if (probe) this.#probes++
    this.#inflightBySource.set(id, this.#sourceInflight(id) + 1)
    // no listener on a shared signal per request: AbortSignal.any holds its sources weakly
    const signal = AbortSignal.any([this.#stop.signal, a.controller.signal])
    const clock = performance.now()
    let received = 0
    let result = 'ok'
    try {
      const digests = batch.map(i => this.#swarm.digestAt(i))
      const sizes = batch.map(i => this.#swarm.sizeAt(i))
      let k = 0
      for await (const reply of source.request(digests, sizes, signal)) {
        const i = batch[k++]
        if (i === undefined) break
        const at = this.#clock.now()
        // the gap since this source last answered anything (requests to one source share its connection)
        stats.recordReplyGap(id, at - Math.max(a.waitingSince, this.#lastReplyFrom.get(id) ?? 0), at)
        this.#lastReplyFrom.set(id, at)
        // it answered: not stalled (any more)
        this.#stalled.delete(id)
        a.storing = true
        const outcome = await this.#take(a, i, digests[k - 1], reply)
        if (outcome === 'bad_hash' || outcome === 'local_error') { result = outcome; break }
        if (outcome === 'ok') received += reply.bytes?.byteLength ?? 0
        else if (outcome !== 'duplicate' && outcome !== 'delta_failed') result = outcome
        a.storing = false
        a.waitingSince = this.#clock.now()
      }
      if (k < batch.length && result === 'ok') result = 'error'
    } catch (err: any) {
      if (this.#stop.signal.aborted) {
        result = 'aborted'
      } else if (err instanceof TypeError || err instanceof RangeError) {
        // a programming error: the fetch fails loudly with it
        this.#fail(err)
        result = 'bug'
      } else if (err?.code === 'SOURCE_MISBEHAVED') {
        this.#penalize(id, err.reason ?? 'misbehaved', err.message)
        result = err.reason ?? 'misbehaved'
      } else {
        result = a.timedOut ? 'timeout' : 'error'
        if (probe) this.#doubtClaims = true
        stats.recordFailure(id, this.#clock.now())
        // backed off now: that decides when it is asked again
        this.#stalled.delete(id)
        for (const i of batch) if (!last && !this.#swarm.hasLocal(i)) this.#picker.chunk(i).peerFailures++
        log('request to %s failed: %s', id, err?.message)
      }
    } finally {
      this.#active.delete(a)
      for (const i of a.pending) this.#picker.unclaim(i, a.probe)
      a.pending.clear()
      this.#uncount(a)
      const left = this.#sourceInflight(id) - 1
      if (left <= 0) this.#inflightBySource.delete(id)
      else this.#inflightBySource.set(id, left)
    }
    const seconds = (performance.now() - clock) / 1000
    if (received > 0) stats.recordTransfer(id, received, seconds)
    this.#init.onRequest?.(source, result, seconds)
  }

  #penalize (id: string, reason: string, message: string): void {
    this.#init.stats.penalize(id, this.#clock.now())
    this.#init.onMisbehaviour?.(id, reason)
    log.error('source %s misbehaved (%s): %s', id, reason, message)
  }

  /** One reply: store it, or account for what it says. The chunk stays claimed until it is stored. */
  async #take (a: Active, i: number, digest: Uint8Array, reply: Reply): Promise<string> {
    const { source } = a
    const release = (): void => { if (a.pending.delete(i)) this.#picker.unclaim(i, a.probe) }
    if (reply.status === 'ok' && reply.bytes != null) {
      if (this.#swarm.hasLocal(i)) { release(); return 'duplicate' } // a hedged duplicate
      const object = this.#swarm.isObject(i)
      // what the entry brings: a chunk, or the chunks of its run not held yet
      const rawBytes = object ? this.#want.missingRunBytes(i) : reply.bytes.byteLength
      try {
        await this.#init.store(i, digest, reply.bytes, reply)
      } catch (err: any) {
        if (err?.code === 'DELTA_FAILED') {
          log.error('delta object %s does not rebuild its chunk: %s', digestHex(digest).slice(0, 16), err.message)
          this.#fallBack(i)
          return 'delta_failed'
        }
        if (err?.code === 'HASH_MISMATCH') {
          this.#penalize(source.id, 'bad_hash', `bytes not matching chunk ${digestHex(digest).slice(0, 16)}`)
          return 'bad_hash'
        }
        // not the source's doing (DISK_FULL, STORE_CLOSED, STORE_CORRUPT, ...): the whole fetch fails with it
        log.error('storing chunk %s failed: %s', digestHex(digest).slice(0, 16), err?.message)
        this.#fail(err)
        return 'local_error'
      } finally {
        release()
      }
      this.#stored++
      this.#lastProgress = this.#clock.now()
      this.#init.onReceived(source, reply.wireBytes, rawBytes, object ? 'delta' : reply.encoding ?? 'raw')
      return 'ok'
    }
    release()
    const status = reply.status === 'ok' ? 'error' : reply.status
    this.#picker.answered(a.holder, i, status, this.#clock.now())
    return status.replace('-', '_')
  }
}
