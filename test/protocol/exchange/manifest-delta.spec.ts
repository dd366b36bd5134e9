// Manifests as deltas against a manifest the asker holds, between real libp2p nodes on loopback.
import { expect } from 'chai'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { randomBytes } from 'node:crypto'
import { releaseExchange, type ReleaseExchange } from '../../../protocol/exchange/index.js'
import { encodeManifestHeaderV2, decodeManifestRequestV2, Status } from '../../../protocol/exchange/messages.js'
import { decodeManifestDelta, encodeManifestDelta } from '../../../protocol/manifest-delta.js'

type Node = Libp2p<{ releases: ReleaseExchange }>

const cidA = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')
const cidB = CID.parse('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')

async function node (manifests: Map<string, Uint8Array>, legacy = false): Promise<Node> {
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      releases: releaseExchange({ getRelease: async () => undefined, getManifest: async cid => manifests.get(cid.toString()), maxManifestBytes: 8_000_000 })
    }
  }) as unknown as Node
  // a peer of the previous version speaks only /herald/manifest/1.0.0
  if (legacy) await n.unhandle('/herald/manifest/1.1.0')
  return n
}

describe('manifest deltas', function () {
  this.timeout(30_000)
  // two "manifests" that share almost everything, like two releases' digest lists
  const base = new Uint8Array(randomBytes(2_000_000))
  const target = Uint8Array.from(base)
  for (let i = 0; i < 200; i++) target.set(randomBytes(32), Math.floor(i * 9973) % (target.byteLength - 32))
  const nodes: Node[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

  it('should rebuild exactly, and refuse a delta that declares another size or carries trailing bytes', () => {
    const d = encodeManifestDelta(target, base)
    expect(d.byteLength).to.be.below(target.byteLength / 20)
    expect(Buffer.from(decodeManifestDelta(d, base, target.byteLength, 8_000_000)).equals(Buffer.from(target))).to.equal(true)
    for (const [obj, size] of [[d, target.byteLength - 1], [new Uint8Array([...d, 0, 0, 0, 0]), target.byteLength], [randomBytes(100), target.byteLength]] as const) {
      expect(() => decodeManifestDelta(obj, base, size, 8_000_000)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
    }
    expect(() => decodeManifestDelta(d, base, target.byteLength, 1_000_000)).to.throw(/over the 1000000-byte limit/)
  })

  it('should send a manifest as a delta against the base the asker holds, and raw to an asker without one', async () => {
    const server = await node(new Map([[cidA.toString(), base], [cidB.toString(), target]]))
    const client = await node(new Map())
    nodes.push(server, client)
    await client.dial(server.getMultiaddrs()[0])
    const wire: Array<[number, boolean]> = []
    const got = await client.services.releases.fetchManifest(server.peerId, cidB, { base: { cid: cidA, bytes: base }, onWire: (n, delta) => { wire.push([n, delta]) } })
    expect(Buffer.from(got!).equals(Buffer.from(target))).to.equal(true)
    expect(wire).to.have.length(1)
    expect(wire[0][1]).to.equal(true)
    expect(wire[0][0]).to.be.below(target.byteLength / 20)
    // no base, or a base the server does not hold: the raw manifest
    for (const opts of [{}, { base: { cid: CID.parse('bafyreibs4u4llzaprlbdvmx7b5ve3yxhhzqtnj4hqfxkxfjkevacxdpy4a'), bytes: base } }]) {
      wire.length = 0
      const raw = await client.services.releases.fetchManifest(server.peerId, cidB, { ...opts, onWire: (n, delta) => { wire.push([n, delta]) } })
      expect(Buffer.from(raw!).equals(Buffer.from(target))).to.equal(true)
      expect(wire).to.deep.equal([[target.byteLength, false]])
    }
  })

  it('should fall back to the raw protocol with a peer of the previous version', async () => {
    const server = await node(new Map([[cidA.toString(), base], [cidB.toString(), target]]), true)
    const client = await node(new Map())
    nodes.push(server, client)
    await client.dial(server.getMultiaddrs()[0])
    const wire: Array<[number, boolean]> = []
    const got = await client.services.releases.fetchManifest(server.peerId, cidB, { base: { cid: cidA, bytes: base }, onWire: (n, delta) => { wire.push([n, delta]) } })
    expect(Buffer.from(got!).equals(Buffer.from(target))).to.equal(true)
    expect(wire).to.deep.equal([[target.byteLength, false]])
  })

  it('should refuse a hostile delta (a zstd bomb declaring more than announced) and count it against the peer', async () => {
    const hostile = await node(new Map())
    await hostile.unhandle('/herald/manifest/1.1.0')
    await hostile.handle('/herald/manifest/1.1.0', async (stream) => {
      const lp = lpStream(stream)
      decodeManifestRequestV2(await lp.read())
      // announces 1,000 bytes, sends a frame that inflates to 4 MB
      const bomb = encodeManifestDelta(new Uint8Array(4_000_000), base)
      await lp.write(encodeManifestHeaderV2(Status.OK, 1000, true, bomb.byteLength))
      await lp.write(bomb)
      await stream.close()
    })
    const misbehaved: string[] = []
    const client = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { releases: releaseExchange({ getRelease: async () => undefined, getManifest: async () => undefined, onPeerMisbehaved: (_p, r) => { misbehaved.push(r) } }) }
    }) as unknown as Node
    nodes.push(hostile, client)
    await client.dial(hostile.getMultiaddrs()[0])
    const err = await client.services.releases.fetchManifest(hostile.peerId, cidB, { base: { cid: cidA, bytes: base } }).catch(e => e)
    expect(err.code).to.equal('MALFORMED_MESSAGE')
    expect(misbehaved).to.deep.equal(['malformed_manifest'])
  })
})
