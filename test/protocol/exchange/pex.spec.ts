// Peer exchange between real libp2p nodes on loopback, and the bounds of its message.
import { expect } from 'chai'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { createLibp2p, type Libp2p } from 'libp2p'
import { identify } from '@libp2p/identify'
import { CID } from 'multiformats/cid'
import { pexExchange, type PexExchange } from '../../../protocol/exchange/index.js'
import { decodePexResponse, encodePexResponse, PEX_MAX_PEERS } from '../../../protocol/exchange/messages.js'
import { SwarmPeers } from '../../../daemon/fetch/swarm-peers.js'
import type { PeerId } from '@libp2p/interface'

type Node = Libp2p<{ pex: PexExchange }>
const release = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')

async function node (getPeers: (cid: CID, asker: PeerId) => PeerId[], misbehaved: string[] = []): Promise<Node> {
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), pex: pexExchange({ getPeers, onPeerMisbehaved: (_p, r) => { misbehaved.push(r) } }) }
  }) as unknown as Node
}

describe('peer exchange', function () {
  this.timeout(30_000)
  const nodes: Node[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

  it('should tell an asker the other peers that asked for the release, with their listen addresses, never the asker itself', async () => {
    const seen = new SwarmPeers({ holders: () => [] })
    const seed = await node((cid, asker) => seen.peers(cid, asker))
    const a = await node(() => [])
    const b = await node(() => [])
    nodes.push(seed, a, b)
    for (const lab of [a, b]) {
      await lab.dial(seed.getMultiaddrs()[0])
      seen.record(release, lab.peerId)
    }
    // identify has told the seed the labs' listen addresses (not their ephemeral ports): wait for them
    for (const lab of [a, b]) {
      const known = async (): Promise<boolean> => await seed.peerStore.get(lab.peerId).then(p => p.addresses.length > 0, () => false)
      for (let i = 0; i < 50 && !await known(); i++) await new Promise(resolve => setTimeout(resolve, 100))
    }
    const found = await a.services.pex.peers(seed.peerId, release)
    expect(found.map(p => p.id.toString())).to.deep.equal([b.peerId.toString()])
    expect(found[0].addrs.map(x => x.toString())).to.include(b.getMultiaddrs()[0].decapsulate('/p2p').toString())
    // a can reach b with what it learned
    await a.dial(found[0].addrs[0])
    expect(a.getConnections(b.peerId)).to.have.length.above(0)
    expect(await b.services.pex.peers(seed.peerId, CID.parse('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'))).to.deep.equal([])
  })

  it('should keep the most recent peers per release, forget them after 10 minutes, and add the watched holders', () => {
    let now = 0
    const seen = new SwarmPeers({ holders: () => ['12D3KooWLRPJAA5o6H9m5Wz4rWWp6XHYbcFn2hfV5wPHjoHMTxgR'], now: () => now })
    const ids = Array.from({ length: 70 }, (_, i) => ({ toString: () => `p${i}`, equals: () => false }) as unknown as PeerId)
    for (const id of ids) seen.record(release, id)
    const asker = ids[69]
    const out = seen.peers(release, asker).map(String)
    expect(out[0]).to.equal('p68')
    expect(out).to.have.length(64)
    expect(out).not.to.include('p69')
    expect(out).not.to.include('p5')
    expect(out[out.length - 1]).to.equal('12D3KooWLRPJAA5o6H9m5Wz4rWWp6XHYbcFn2hfV5wPHjoHMTxgR')
    now = 11 * 60_000
    expect(seen.peers(release, asker).map(String)).to.deep.equal(['12D3KooWLRPJAA5o6H9m5Wz4rWWp6XHYbcFn2hfV5wPHjoHMTxgR'])
  })

  it('should refuse answers over the bounds or malformed, and count them against the peer', async () => {
    const entry = { id: new Uint8Array(38).fill(1), addrs: [new Uint8Array(8)] }
    const bytes = encodePexResponse(Array.from({ length: 40 }, () => entry))
    expect(decodePexResponse(bytes)).to.have.length(PEX_MAX_PEERS)
    const tooMany = Uint8Array.from(bytes)
    tooMany[1] = 33
    for (const bad of [tooMany, bytes.subarray(0, bytes.length - 3), new Uint8Array([...bytes, 0]), new Uint8Array([2, 0])]) {
      expect(() => decodePexResponse(bad)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
    }
    const misbehaved: string[] = []
    const hostile = await node(() => [])
    await hostile.unhandle('/herald/pex/1.0.0')
    await hostile.handle('/herald/pex/1.0.0', async (stream) => {
      const lp = lpStream(stream)
      await lp.read()
      await lp.write(encodePexResponse([{ id: new Uint8Array([1, 2, 3]), addrs: [] }]))
      await stream.close()
    })
    const asker = await node(() => [], misbehaved)
    nodes.push(hostile, asker)
    await asker.dial(hostile.getMultiaddrs()[0])
    const err = await asker.services.pex.peers(hostile.peerId, release).catch(e => e)
    expect(err.code).to.equal('MALFORMED_MESSAGE')
    expect(misbehaved).to.deep.equal(['malformed_pex'])
  })
})
