// What this node has measured of each peer: round-trip time, recent throughput, failures and penalties.
// The fetch scheduler ranks holders by it (nearest and fastest first) and avoids misbehaving peers.

const THROUGHPUT_ALPHA = 0.3
/** a peer that sent bytes not matching their CID this many times is avoided */
export const MAX_PENALTIES = 3
/** a failed or rate-limiting peer is not asked again for this long, ms */
export const BACKOFF_MS = 1_000

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

  recordSent (peerId: string, bytes: number): void {
    this.get(peerId).bytesSent += bytes
  }

  recordFailure (peerId: string): void {
    const s = this.get(peerId)
    s.failures++
    s.backoffUntil = Date.now() + BACKOFF_MS * Math.min(s.failures, 10)
  }

  backoff (peerId: string, ms: number = BACKOFF_MS): void {
    this.get(peerId).backoffUntil = Date.now() + ms
  }

  penalize (peerId: string): void {
    const s = this.get(peerId)
    s.penalties++
    s.backoffUntil = Date.now() + BACKOFF_MS * 5
  }

  usable (peerId: string, now = Date.now()): boolean {
    const s = this.get(peerId)
    return s.penalties < MAX_PENALTIES && s.backoffUntil <= now
  }

  /** Higher is better: measured throughput, discounted by RTT; unmeasured peers get probed early. */
  score (peerId: string): number {
    const s = this.get(peerId)
    const rtt = s.rttMs ?? 5
    const tput = s.throughput ?? 50 * 1024 * 1024
    return tput / (1 + rtt / 50)
  }
}
