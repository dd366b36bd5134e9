// A cap on the inbound connections one host may hold open, as a libp2p connection gater. libp2p's own
// connection manager caps connections overall (`maxConnections`), pending upgrades, and the rate of new
// connections per host, but not how many one host keeps open: 300 connections from one address filled
// `maxConnections` and every other lab was refused. Counted from the moment the socket is accepted (before
// the Noise handshake, so half-open connections count) until it closes. IPv6 addresses are grouped by their
// /64, the block one host usually holds; IPv4-mapped IPv6 counts as the IPv4 address.
// Streams need no cap of their own here: each protocol caps the streams of one connection
// (`maxInboundStreams`), so one host holds at most this many connections × those caps.
import { logger } from '@libp2p/logger'
import type { ConnectionGater, MultiaddrConnection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('herald:conn')

/** one lab server holds one connection per peer; 64 leaves room for several daemons behind one NAT */
export const DEFAULT_MAX_CONNECTIONS_PER_HOST = 64

export class HostConnectionLimit implements ConnectionGater {
  readonly #max: number
  readonly #open = new Map<string, number>()
  readonly #onRefused?: (host: string) => void
  #refused = 0

  constructor (max = DEFAULT_MAX_CONNECTIONS_PER_HOST, onRefused?: (host: string) => void) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('the per-host connection cap is a positive integer')
    this.#max = max
    this.#onRefused = onRefused
  }

  /** connections refused so far */
  get refused (): number { return this.#refused }

  /** inbound connections open from this host (its /64 for IPv6) */
  openFrom (address: string): number { return this.#open.get(hostKey(address)) ?? 0 }

  denyInboundConnection (maConn: MultiaddrConnection): boolean {
    const host = hostOf(maConn.remoteAddr)
    if (host == null) return false
    const n = this.#open.get(host) ?? 0
    if (n >= this.#max) {
      this.#refused++
      log('refusing a connection from %s: %d open (limit %d)', host, n, this.#max)
      this.#onRefused?.(host)
      return true
    }
    this.#open.set(host, n + 1)
    let counted = true
    const release = (): void => {
      if (!counted) return
      counted = false
      const left = (this.#open.get(host) ?? 1) - 1
      if (left <= 0) this.#open.delete(host)
      else this.#open.set(host, left)
    }
    maConn.addEventListener('close', release, { once: true })
    if (maConn.status === 'closed') release()
    return false
  }
}

function hostOf (ma: Multiaddr): string | undefined {
  for (const c of ma.getComponents()) {
    if ((c.name === 'ip4' || c.name === 'ip6') && c.value != null) return hostKey(c.value)
  }
  return undefined
}

/** The key one host's connections are counted under: the IPv4 address, or the /64 of an IPv6 address. */
export function hostKey (address: string): string {
  const a = address.toLowerCase().replace(/%.*$/, '')
  if (!a.includes(':')) return a
  const mapped = /^(?:0{0,4}:){0,5}ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a.replace(/^::/, '0:'))
  if (mapped != null) return mapped[1]
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail == null || tail === '' ? [] : tail.split(':')
  const groups = tail == null ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return groups.slice(0, 4).map(g => g.replace(/^0+(?=.)/, '')).join(':') + '::/64'
}
