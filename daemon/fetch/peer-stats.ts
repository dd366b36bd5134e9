// What this node has measured of each peer: round-trip time, recent throughput, how long it takes to answer
// (the gap before each reply), failures and penalties. The fetch scheduler ranks holders by it (nearest and
// fastest first), detects a peer that stopped answering, and avoids misbehaving peers.
// A peer that has never delivered a byte is "unproven": it is rated low and backs off longer after each
// failure, so identities that advertise everything and answer nothing cost little.
import { MovingAverage } from '@libp2p/utils'

const THROUGHPUT_ALPHA = 0.3
/** a peer that sent bytes not matching their CID (or malformed frames) this many times is avoided */
export const MAX_PENALTIES = 3
/** a failed or rate-limiting peer is not asked again for this long, ms (times the failure count, up to 10×) */
export const BACKOFF_MS = 1_000
/** a peer that never delivered anything backs off twice as long after each failure, up to this, ms */
export const UNPROVEN_MAX_BACKOFF_MS = 60_000
/** the rating of a peer not measured yet, bytes/s: low, so measured peers go first and a claim costs nothing */
export const UNMEASURED_THROUGHPUT = 1024 * 1024
/** the time span the reply-gap average forgets over, ms */
const GAP_SPAN_MS = 10_000
/** a peer is stalled when it is this many times its usual reply gap (plus deviations) late... */
const STALL_GAP_FACTOR = 4
/** ...but never sooner than this, ms (one GC pause or a busy event loop must not count as a stall) */
export const MIN_STALL_MS = 1_000
/** the stall deadline of a peer that has not answered yet, ms */
export const UNMEASURED_STALL_MS = 2_000

export interface PeerStat {
  peerId: string
  rttMs?: number
  throughput?: number
  bytesReceived: number
  bytesSent: number
  failures: number
  penalties: number
  backoffUntil: number
}

export class PeerStats {
  #stats = new Map<string, PeerStat>()
  readonly #gaps = new Map<string, MovingAverage>()

  get (peerId: string): PeerStat {
    let s = this.#stats.get(peerId)
    if (s == null) {
      s = { peerId, bytesReceived: 0, bytesSent: 0, failures: 0, penalties: 0, backoffUntil: 0 }
      this.#stats.set(peerId, s)
    }
    return s
  }

  all (): PeerStat[] { return [...this.#stats.values()] }

  recordRtt (peerId: string, ms: number): void {
    const s = this.get(peerId)
    s.rttMs = s.rttMs == null ? ms : s.rttMs * 0.7 + ms * 0.3
  }

  recordTransfer (peerId: string, bytes: number, seconds: number): void {
    const s = this.get(peerId)
    s.bytesReceived += bytes
    s.failures = 0
    if (seconds <= 0) return
    const rate = bytes / seconds
    s.throughput = s.throughput == null ? rate : s.throughput * (1 - THROUGHPUT_ALPHA) + rate * THROUGHPUT_ALPHA
  }

  /** How long a reply took to come, from the moment it was awaited (any status: it shows the peer is alive). */
  recordReplyGap (peerId: string, ms: number, now = Date.now()): void {
    let avg = this.#gaps.get(peerId)
    if (avg == null) {
      avg = new MovingAverage(GAP_SPAN_MS)
      this.#gaps.set(peerId, avg)
    }
    avg.push(Math.max(0, ms), now)
  }

  /**
   * How long a request to this peer may wait for its next reply before the peer counts as stalled: a few
   * times its measured reply gap, at least MIN_STALL_MS, at most `cap`; UNMEASURED_STALL_MS before it answered.
   */
  stallDeadlineMs (peerId: string, cap: number): number {
    const avg = this.#gaps.get(peerId)
    if (avg == null) return Math.min(cap, UNMEASURED_STALL_MS)
    const est = STALL_GAP_FACTOR * (avg.movingAverage + avg.deviation)
    return Math.min(cap, Math.max(MIN_STALL_MS, est))
  }

  /** has delivered verified bytes to this node */
  proven (peerId: string): boolean {
    return this.get(peerId).bytesReceived > 0
  }

  recordSent (peerId: string, bytes: number): void {
    this.get(peerId).bytesSent += bytes
  }

  recordFailure (peerId: string, now = Date.now()): void {
    const s = this.get(peerId)
    s.failures++
    const ms = s.bytesReceived > 0
      ? BACKOFF_MS * Math.min(s.failures, 10)
      : Math.min(UNPROVEN_MAX_BACKOFF_MS, BACKOFF_MS * 2 ** Math.min(s.failures, 16))
    s.backoffUntil = now + ms
  }

  backoff (peerId: string, ms: number = BACKOFF_MS, now = Date.now()): void {
    const s = this.get(peerId)
    s.backoffUntil = Math.max(s.backoffUntil, now + ms)
  }

  penalize (peerId: string, now = Date.now()): void {
    const s = this.get(peerId)
    s.penalties++
    s.backoffUntil = now + BACKOFF_MS * 5
  }

  usable (peerId: string, now = Date.now()): boolean {
    const s = this.get(peerId)
    return s.penalties < MAX_PENALTIES && s.backoffUntil <= now
  }

  /** Higher is better: measured throughput, discounted by RTT; an unmeasured peer is rated low. */
  score (peerId: string): number {
    const s = this.get(peerId)
    const rtt = s.rttMs ?? 5
    const tput = s.throughput ?? UNMEASURED_THROUGHPUT
    return tput / (1 + rtt / 50)
  }
}
