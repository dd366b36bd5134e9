// How peers find a node's HTTP chunk listener: the node announces it as one more multiaddr
// (/ip4/…/tcp/N/http, or …/tls/http with TLS; the form IPFS providers use for trustless gateways).
// libp2p's identify carries it (listenAddrs and the signed peer record) and the other side's peer store
// keeps it; no transport dials it, so it does not disturb libp2p dialling.
import { isIP } from 'node:net'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { HeraldConfig } from '../config.js'

/** The multiaddrs to announce for the HTTP listener: http.announce, else its own address when that is specific. */
export function httpAnnounceAddrs (config: HeraldConfig): string[] {
  const { enabled, host, port, tlsCert, announce } = config.http
  if (!enabled) return []
  if (announce != null) return announce
  if (port === 0 || host === '0.0.0.0' || host === '::' || host === '') return []
  const family = isIP(host)
  const proto = family === 4 ? 'ip4' : family === 6 ? 'ip6' : 'dns'
  return [`/${proto}/${host}/tcp/${port}${tlsCert != null ? '/tls' : ''}/http`]
}

/** The base URL of an HTTP chunk listener announced as a multiaddr (/ip4|ip6|dns*…/tcp/N[/tls]/http), or undefined. */
export function httpUrlOf (ma: Multiaddr | string): string | undefined {
  let parts
  try {
    parts = (typeof ma === 'string' ? multiaddr(ma) : ma).getComponents()
  } catch {
    return undefined
  }
  if (parts.length < 3 || parts[1].name !== 'tcp') return undefined
  const tail = parts.slice(2).map(p => p.name).join('/')
  if (tail !== 'http' && tail !== 'tls/http' && tail !== 'https') return undefined
  const [host, port] = [parts[0], parts[1].value]
  let name: string
  if (host.name === 'ip4' || host.name === 'dns' || host.name === 'dns4' || host.name === 'dns6') name = host.value ?? ''
  else if (host.name === 'ip6') name = `[${host.value ?? ''}]`
  else return undefined
  if (name === '' || port == null) return undefined
  return `${tail === 'http' ? 'http' : 'https'}://${name}:${port}`
}
