// The Host header check of the local API: a page in a browser on this host can reach 127.0.0.1 through a
// name it controls (DNS rebinding), but its requests then carry that name as Host. Only loopback names and
// the names the configuration gives are accepted.
import { isIP } from 'node:net'

/** The host part of a Host header value: `[::1]:7480` → `::1`, `Example.org:7480` → `example.org`. */
export function hostName (header: string): string {
  const h = header.trim().toLowerCase()
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined)
  const colon = h.lastIndexOf(':')
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h
}

export function isLoopbackName (name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost') || name === '::1') return true
  return isIP(name) === 4 && name.startsWith('127.')
}

/** A missing Host (HTTP/1.0 tools) is accepted: browsers always send one. */
export function hostAllowed (header: string | undefined, extra: string[]): boolean {
  if (header == null || header === '') return true
  const name = hostName(header)
  if (isLoopbackName(name)) return true
  return extra.some(e => e !== '' && e !== '0.0.0.0' && e !== '::' && hostName(e) === name)
}

/** A listener on this address is reachable from other hosts. */
export function isPublicBind (host: string): boolean {
  return !isLoopbackName(hostName(host))
}
