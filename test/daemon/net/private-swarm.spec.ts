// Swarm key files, the allow-list gater, and the configuration rules of a private swarm.
import { expect } from 'chai'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { allowListGater, formatSwarmKey, parseSwarmKey } from '../../../daemon/net/private-swarm.js'
import { parseConfig } from '../../../daemon/config.js'
import type { ConnectionGater } from '@libp2p/interface'

describe('private swarm', () => {
  it('should read the v1 swarm key format and refuse anything else with INVALID_CONFIG', () => {
    const text = formatSwarmKey(new Uint8Array(32).fill(0xab))
    expect(text).to.equal(`/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(32)}\n`)
    expect(new TextDecoder().decode(parseSwarmKey(text.toUpperCase().replace('/KEY/SWARM/PSK/1.0.0/', '/key/swarm/psk/1.0.0/').replace('/BASE16/', '/base16/')))).to.equal(text.trim())
    for (const bad of ['', 'ab'.repeat(32), `/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(31)}`, `/key/swarm/psk/1.0.0/\n/base64/\n${'ab'.repeat(32)}`]) {
      expect(() => parseSwarmKey(bad)).to.throw(/not a swarm key/).with.property('code', 'INVALID_CONFIG')
    }
  })

  it('should refuse peers off the allow-list, in and out, and keep the inner gater', async () => {
    const ids = await Promise.all([1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
    let innerCalls = 0
    const inner: ConnectionGater = { denyInboundConnection: () => { innerCalls++; return true } }
    const refused: string[] = []
    const gater = allowListGater(inner, { allow: [ids[0].toString()], onRefused: (p, d) => refused.push(`${d}:${p.toString()}`) })
    expect(await gater.denyDialPeer?.(ids[0])).to.equal(false)
    expect(await gater.denyDialPeer?.(ids[1])).to.equal(true)
    expect(await gater.denyInboundEncryptedConnection?.(ids[2], {} as any)).to.equal(true)
    expect(await gater.denyInboundEncryptedConnection?.(ids[0], {} as any)).to.equal(false)
    expect(await gater.denyInboundConnection?.({} as any)).to.equal(true)
    expect(innerCalls).to.equal(1)
    expect(refused).to.deep.equal([`outbound:${ids[1].toString()}`, `inbound:${ids[2].toString()}`])
  })

  it('should refuse the chunk HTTP listener in a private swarm unless allowed', () => {
    const base = { dataDir: '/tmp/x', http: { enabled: true } }
    expect(() => parseConfig({ ...base, swarm: { keyFile: 'swarm.key' } })).to.throw(/private swarm/).with.property('code', 'INVALID_CONFIG')
    expect(parseConfig({ ...base, swarm: { keyFile: 'swarm.key', allowHttp: true } }).swarm.keyFile).to.equal('/tmp/x/swarm.key')
    expect(() => parseConfig({ dataDir: '/tmp/x', swarm: { allowPeers: ['nope'] } })).to.throw(/peer ID/)
    expect(() => parseConfig({ dataDir: '/tmp/x', swarm: { key: 'x' } })).to.throw(/swarm/)
  })
})
