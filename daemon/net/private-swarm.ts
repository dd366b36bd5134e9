// Private swarms: a pre-shared network key (libp2p pnet: every connection is wrapped in XSalsa20 keyed by
// it before Noise, so a node without the key cannot even complete a handshake) and/or an allow-list of
// peer IDs (a connection gater refuses any other peer right after the Noise handshake proves its ID).
import { readFile } from 'node:fs/promises'
import { preSharedKey } from '@libp2p/pnet'
import { PNET_HANDSHAKE_TIMEOUT_MS } from './constants.js'
import { HeraldError } from '../errors.js'
import type { ConnectionGater, ConnectionProtector, PeerId } from '@libp2p/interface'

/** The v1 swarm key file format (the same as Kubo's `swarm.key`). */
const PSK_HEADER = '/key/swarm/psk/1.0.0/'
const PSK_ENCODING = '/base16/'

/** Text of a new swarm key file: 32 random bytes in the v1 format. */
export function formatSwarmKey (key: Uint8Array): string {
  if (key.byteLength !== 32) throw new HeraldError('INVALID_CONFIG', 'a swarm key is 32 bytes')
  return `${PSK_HEADER}\n${PSK_ENCODING}\n${Buffer.from(key).toString('hex')}\n`
}

/** Check a swarm key file's text; returns the normalised bytes pnet expects, or throws INVALID_CONFIG. */
export function parseSwarmKey (text: string, where = 'swarm key'): Uint8Array {
  const lines = text.split(/\r?\n/).map(l => l.trim()).filter(l => l !== '')
  if (lines.length !== 3 || lines[0] !== PSK_HEADER || lines[1] !== PSK_ENCODING || !/^[0-9a-fA-F]{64}$/.test(lines[2])) {
    throw new HeraldError('INVALID_CONFIG', `${where} is not a swarm key: expected three lines, ${PSK_HEADER}, ${PSK_ENCODING} and 64 hex digits (docs/SECURITY.md shows how to create one)`)
  }
  return new TextEncoder().encode(`${PSK_HEADER}\n${PSK_ENCODING}\n${lines[2].toLowerCase()}`)
}

export async function loadSwarmKey (path: string): Promise<Uint8Array> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    throw new HeraldError('INVALID_CONFIG', `swarm.keyFile: cannot read ${path}: ${String(err.code ?? err.message)}`, { cause: err })
  }
  return parseSwarmKey(text, `swarm.keyFile ${path}`)
}

export function swarmProtector (psk: Uint8Array): () => ConnectionProtector {
  return preSharedKey({ psk, timeout: PNET_HANDSHAKE_TIMEOUT_MS })
}

export interface AllowListInit {
  /** peer IDs (base58) allowed to connect, in or out */
  allow: Iterable<string>
  /** told of each refused peer (metrics, logs) */
  onRefused?: (peer: PeerId, direction: 'inbound' | 'outbound') => void
}

/**
 * Wraps a gater with an allow-list of peer IDs: a peer not on the list is never dialled, and an inbound
 * connection from it is closed once the encrypted handshake has shown who it is (before any protocol runs).
 */
export function allowListGater (inner: ConnectionGater, init: AllowListInit): ConnectionGater {
  const allowed = new Set(init.allow)
  const denied = (peer: PeerId, direction: 'inbound' | 'outbound'): boolean => {
    if (allowed.has(peer.toString())) return false
    init.onRefused?.(peer, direction)
    return true
  }
  return {
    ...bindAll(inner),
    denyDialPeer: async (peer) => denied(peer, 'outbound') || (await inner.denyDialPeer?.(peer) ?? false),
    denyInboundEncryptedConnection: async (peer, conn) => denied(peer, 'inbound') || (await inner.denyInboundEncryptedConnection?.(peer, conn) ?? false),
    denyOutboundEncryptedConnection: async (peer, conn) => denied(peer, 'outbound') || (await inner.denyOutboundEncryptedConnection?.(peer, conn) ?? false)
  }
}

/** The gater's methods bound to it, so that a spread copy still calls them on the right object. */
function bindAll (gater: ConnectionGater): ConnectionGater {
  const out: Record<string, unknown> = {}
  let proto: object | null = gater
  while (proto != null && proto !== Object.prototype) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const value = (gater as any)[name]
      if (name !== 'constructor' && name.startsWith('deny') && typeof value === 'function' && out[name] == null) out[name] = value.bind(gater)
    }
    proto = Object.getPrototypeOf(proto)
  }
  return out as ConnectionGater
}
