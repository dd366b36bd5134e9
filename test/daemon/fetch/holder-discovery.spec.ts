import { expect } from 'chai'
import { CID } from 'multiformats/cid'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { HolderDiscovery } from '../../../daemon/fetch/holder-discovery.js'
import { ReleaseSwarm } from '../../../daemon/fetch/swarm.js'
import { MalformedMessageError } from '../../../protocol/exchange/errors.js'
import type { HaveExchange } from '../../../protocol/exchange/index.js'
import type { ChunkIndex } from '../../../protocol/manifest.js'

const CID0 = CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')

describe('holder discovery', () => {
  it('should count a malformed have frame against the peer that sent it, and drop its claims', async () => {
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const bad = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const index = { count: 8, digests: new Uint8Array(8 * 32), sizes: new Uint32Array(8), totalBytes: 0, digestAt: () => new Uint8Array(32) } as unknown as ChunkIndex
    const swarm = new ReleaseSwarm(CID0, index, new Uint8Array(1))
    let watched!: () => void
    const ended = new Promise<void>(resolve => { watched = resolve })
    const have: HaveExchange = {
      watch: async (_peer, _cid, handlers) => {
        handlers.onBitmap(new Uint8Array([0xff]), 8)
        // then a frame that does not decode
        setTimeout(watched, 10)
        throw new MalformedMessageError('have update index out of range')
      }
    }
    const blamed: Array<{ peer: string, reason: string }> = []
    const discovery = new HolderDiscovery({
      libp2p: {
        peerId: self,
        getPeers: () => [bad],
        getConnections: () => [{}] as any,
        dial: async () => { throw new Error('no dials in this test') },
        peerStore: { all: async () => [] } as any,
        contentRouting: { findProviders: async function * () {} } as any
      },
      have,
      swarm,
      isSeed: async () => false,
      onMisbehaviour: (peer, reason) => { blamed.push({ peer: peer.toString(), reason }) }
    })
    const controller = new AbortController()
    discovery.start(controller.signal)
    try {
      await ended
      expect(blamed).to.deep.equal([{ peer: bad.toString(), reason: 'malformed_have' }])
      expect(swarm.remotes.has(bad.toString())).to.equal(false)
    } finally {
      controller.abort()
    }
  })

  it('should not watch a complete holder again after its whole bitmap arrived, but re-watch one whose watch ended incomplete', async () => {
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const holder = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const partial = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const index = { count: 8, digests: new Uint8Array(8 * 32), sizes: new Uint32Array(8), totalBytes: 0, digestAt: () => new Uint8Array(32) } as unknown as ChunkIndex
    const swarm = new ReleaseSwarm(CID0, index, new Uint8Array(1))
    const watches = new Map<string, number>()
    let rewatched!: () => void
    const holderRewatched = new Promise<void>(resolve => { rewatched = resolve })
    const have: HaveExchange = {
      watch: async (peer, _cid, handlers) => {
        const id = peer.toString()
        watches.set(id, (watches.get(id) ?? 0) + 1)
        if (id === holder.toString() && watches.get(id) === 2) rewatched()
        // the holder sends a full bitmap (and its stream ends); the other half a bitmap, then its stream ends
        handlers.onBitmap(new Uint8Array([id === holder.toString() ? 0xff : 0xf0]), 8)
      }
    }
    // twelve discovery passes, counted by the peer lists they read
    let passes = 0
    let done!: () => void
    const twelve = new Promise<void>(resolve => { done = resolve })
    const discovery = new HolderDiscovery({
      libp2p: {
        peerId: self,
        getPeers: () => { if (++passes === 24) done(); return [holder, partial] },
        getConnections: () => [{}] as any,
        dial: async () => { throw new Error('no dials in this test') },
        peerStore: { all: async () => [] } as any,
        contentRouting: { findProviders: async function * () {} } as any
      },
      have,
      swarm,
      isSeed: async () => false,
      intervalMs: 5
    })
    const controller = new AbortController()
    discovery.start(controller.signal)
    try {
      await twelve
      expect(watches.get(holder.toString())).to.equal(1)
      expect(swarm.remotes.get(holder.toString())?.complete).to.equal(true)
      expect(watches.get(partial.toString())).to.be.at.least(3)
      // the holder turns out to lack a chunk: it is asked for its bitmap again
      swarm.forgetRemoteChunk(holder.toString(), 3)
      await holderRewatched
      expect(watches.get(holder.toString())).to.equal(2)
    } finally {
      controller.abort()
    }
  })
})
