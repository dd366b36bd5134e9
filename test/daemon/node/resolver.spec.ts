import { expect } from 'chai'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { buildRelease } from '../../../protocol/ingest.js'
import { signRelease } from '../../../protocol/release.js'
import { Store } from '../../../store/store.js'
import { PeerStats } from '../../../daemon/fetch/peer-stats.js'
import { PeerPenalties } from '../../../daemon/node/peer-manager.js'
import { Resolver } from '../../../daemon/node/resolver.js'
import { createLogger } from '../../../daemon/log.js'
import type { ReleaseExchange } from '../../../protocol/exchange/index.js'
import type { PeerId } from '@libp2p/interface'

const log = createLogger({ level: 'silent', name: 'test' })

describe('Resolver', () => {
  let dir: string
  let store: Store
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-resolver-'))
    store = await Store.open(join(dir, 'store'))
  })
  afterEach(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** a seed answering with the real record and manifest, and a hostile peer answering with `hostile` */
  async function setup (hostile: Partial<ReleaseExchange>, trustScope?: string[], publisherKey?: Awaited<ReturnType<typeof generateKeyPair>>) {
    const src = join(dir, 'src')
    await mkdir(src)
    await writeFile(join(src, 'a'), randomBytes(5000))
    const built = await buildRelease(src, { dataset: 'ds', version: 'v1', onChunk: () => {} })
    const publisher = publisherKey ?? await generateKeyPair('Ed25519')
    const record = await signRelease({ dataset: 'ds', version: 'v1', manifestCid: built.cid, seq: 1, publishedAt: Date.now() }, publisher)
    const seed = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const bad = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const honest: ReleaseExchange = {
      fetchRelease: async () => record,
      fetchManifest: async () => built.bytes
    }
    const releases: ReleaseExchange = {
      fetchRelease: async (peer: PeerId, d, v, o) => peer.equals(bad) ? await (hostile.fetchRelease ?? (async () => undefined))(peer, d, v, o) : await honest.fetchRelease(peer, d, v, o),
      fetchManifest: async (peer: PeerId, cid, o) => peer.equals(bad) ? await (hostile.fetchManifest ?? (async () => undefined))(peer, cid, o) : await honest.fetchManifest(peer, cid, o)
    }
    const stats = new PeerStats()
    const resolver = new Resolver({
      store,
      releases,
      getPeers: () => [bad, seed],
      peers: { ensureConnected: async () => {} },
      penalties: new PeerPenalties({ stats, log }),
      stats,
      trusted: [{ key: publisher.publicKey.raw, names: trustScope }],
      limits: { maxManifestBytes: 1 << 20, maxManifestChunks: 1000 },
      origins: [],
      log
    })
    return { resolver, stats, bad, seed, built, publisher }
  }

  it('should penalise a peer whose record does not decode, and still resolve from the seed', async () => {
    const { resolver, stats, bad, built } = await setup({ fetchRelease: async () => randomBytes(64) })
    const { cid } = await resolver.resolve('ds', 'v1', AbortSignal.timeout(5000))
    expect(cid.equals(built.cid)).to.equal(true)
    expect(stats.get(bad.toString()).penalties).to.equal(1)
  })

  it('should penalise a peer answering with a forged record (the trusted key, a signature that does not verify)', async () => {
    const publisher = await generateKeyPair('Ed25519')
    const { resolver, stats, bad, built } = await setup({
      fetchRelease: async () => {
        const other = await buildRelease(join(dir, 'src'), { dataset: 'ds', version: 'v1', onChunk: () => {}, now: 1 })
        const forged = await signRelease({ dataset: 'ds', version: 'v1', manifestCid: other.cid, seq: 99, publishedAt: Date.now() }, publisher)
        // a signature byte flipped: a record claiming the trusted key that does not verify
        forged[forged.length - 5] ^= 0xff
        return forged
      }
    }, undefined, publisher)
    const { signed } = await resolver.record('ds', 'v1', AbortSignal.timeout(5000))
    expect(signed.record.seq).to.equal(1)
    expect(signed.record.manifestCid.equals(built.cid)).to.equal(true)
    expect(stats.get(bad.toString()).penalties).to.equal(1)
  })

  it('should penalise a peer whose manifest bytes do not match the CID, then take it from the next peer', async () => {
    const { resolver, stats, bad, built } = await setup({ fetchManifest: async () => randomBytes(300) })
    const manifest = await resolver.manifest(built.cid, bad, AbortSignal.timeout(5000))
    expect(manifest.dataset).to.equal('ds')
    expect(stats.get(bad.toString()).penalties).to.equal(1)
    expect(await store.getManifest(built.cid)).to.deep.equal(built.bytes)
  })

  it('should refuse a record signed by a key trusted only for other datasets, and not store it', async () => {
    const { resolver } = await setup({}, ['uniprot'])
    const err = await resolver.record('ds', 'v1', AbortSignal.timeout(5000)).catch(e => e)
    expect(err.code).to.equal('UNTRUSTED_PUBLISHER')
    expect(await store.getRelease('ds', 'v1')).to.equal(undefined)
  })
})
