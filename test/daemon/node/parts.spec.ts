import { expect } from 'chai'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { buildRelease } from '../../../protocol/ingest.js'
import { manifestChunkIndex, type DeltaIndex, type Manifest } from '../../../protocol/manifest.js'
import { encodeDelta } from '../../../protocol/delta.js'
import { Store } from '../../../store/store.js'
import { ReleaseSwarm } from '../../../daemon/fetch/swarm.js'
import { ReleaseRegistry } from '../../../daemon/node/release-registry.js'
import { ReceivePipeline } from '../../../daemon/node/receive-pipeline.js'
import { PeerManager } from '../../../daemon/node/peer-manager.js'
import { checkManifestName } from '../../../daemon/node/resolver.js'
import { PeerStats } from '../../../daemon/fetch/peer-stats.js'
import { createLogger } from '../../../daemon/log.js'
import type { CID } from 'multiformats/cid'
import type { StagedRelease } from '../../../store/materialize.js'

const log = createLogger({ level: 'silent', name: 'test' })
const sha = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest())

/** a release of `files` random files, its chunks NOT stored (returned instead) */
async function release (dir: string, files: number): Promise<{ manifest: Manifest, cid: CID, chunks: Map<string, Uint8Array> }> {
  const src = join(dir, `src-${files}`)
  await mkdir(src, { recursive: true })
  for (let i = 0; i < files; i++) await writeFile(join(src, `f${i}`), randomBytes(3000 + i))
  const chunks = new Map<string, Uint8Array>()
  const built = await buildRelease(src, { dataset: 'ds', version: 'v1', onChunk: (d, b) => { chunks.set(Buffer.from(d).toString('hex'), b) } })
  return { manifest: built.manifest, cid: built.cid, chunks }
}

describe('node parts', () => {
  let dir: string
  let store: Store
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-parts-'))
    store = await Store.open(join(dir, 'store'))
  })
  afterEach(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  describe('ReleaseRegistry', () => {
    it('should build a ledger from what the store holds, serve it to the have protocol, and follow a drop', async () => {
      const { manifest, cid, chunks } = await release(dir, 3)
      const index = manifestChunkIndex(manifest)
      // hold the first chunk only
      const first = index.digestAt(0)
      await store.putChunk(first, chunks.get(Buffer.from(first).toString('hex')) as Uint8Array)
      const registry = new ReleaseRegistry({ store, log })
      expect(await registry.getHave(cid)).to.equal(undefined)
      const swarm = await registry.open(cid, manifest)
      expect(await registry.open(cid, manifest)).to.equal(swarm)
      expect(swarm.hasLocal(0)).to.equal(true)
      expect(swarm.held).to.equal(1)
      expect((await registry.getHave(cid))?.count).to.equal(index.count)
      registry.unmarkEverywhere(first)
      expect(swarm.hasLocal(0)).to.equal(false)
      expect(swarm.held).to.equal(0)
      // refresh rebuilds every ledger from the store (after a gc): the chunk is still stored, so held again
      await registry.refresh()
      expect(registry.get(cid)?.hasLocal(0)).to.equal(true)
      await store.dropChunk(first)
      await registry.refresh()
      expect(registry.get(cid)?.held).to.equal(0)
    })
  })

  describe('ReceivePipeline', () => {
    it('should store a received chunk once, write it into the attached staged release, and refuse bad bytes typed', async () => {
      const { manifest, cid, chunks } = await release(dir, 2)
      const index = manifestChunkIndex(manifest)
      const swarm = new ReleaseSwarm(cid, index, new Uint8Array(Math.ceil(index.count / 8)))
      const pipeline = new ReceivePipeline({ store })
      const written: string[] = []
      const staged = { write: (d: Uint8Array) => { written.push(Buffer.from(d).toString('hex')) } } as unknown as StagedRelease
      pipeline.attach(cid, staged)
      const d0 = index.digestAt(0)
      const bytes = chunks.get(Buffer.from(d0).toString('hex')) as Uint8Array
      expect(await pipeline.receive(swarm, 0, d0, bytes)).to.deep.equal([0])
      expect(await store.getChunk(d0)).to.deep.equal(bytes)
      expect(written).to.deep.equal([Buffer.from(d0).toString('hex')])
      const d1 = index.digestAt(1)
      const err = await pipeline.receive(swarm, 1, d1, bytes).catch(e => e)
      expect(err.code).to.equal('HASH_MISMATCH')
      expect(await store.hasChunk(d1)).to.equal(false)
      pipeline.detach(cid, staged)
      const b1 = chunks.get(Buffer.from(d1).toString('hex')) as Uint8Array
      await pipeline.receive(swarm, 1, d1, b1)
      expect(written).to.have.length(1)
    })

    it('should rebuild chunks from a delta object, store the object after them, and store nothing from one that rebuilds wrong bytes', async () => {
      const { manifest, cid, chunks } = await release(dir, 1)
      const index = manifestChunkIndex(manifest)
      const target = chunks.get(Buffer.from(index.digestAt(0)).toString('hex')) as Uint8Array
      // the base: the target with a few bytes changed, held locally
      const base = Uint8Array.from(target)
      base[10] ^= 0xff
      await store.putChunk(sha(base), base)
      const good = encodeDelta([target], [base])
      const wrongTarget = Uint8Array.from(target)
      wrongTarget[20] ^= 0xff
      const bad = encodeDelta([wrongTarget], [base])
      const deltas = (object: Uint8Array): DeltaIndex => {
        const digests = sha(object)
        return { count: 1, digests, sizes: Uint32Array.of(object.byteLength), targets: [Int32Array.of(0)], bases: [[sha(base)]], kinds: ['zstd-patch'], digestAt: () => digests }
      }
      const pipeline = new ReceivePipeline({ store })
      const badSwarm = new ReleaseSwarm(cid, index, new Uint8Array(1), deltas(bad))
      const err = await pipeline.receive(badSwarm, index.count, sha(bad), bad).catch(e => e)
      expect(err.code).to.equal('DELTA_FAILED')
      expect(await store.hasChunk(index.digestAt(0))).to.equal(false)
      expect(await store.hasChunk(sha(bad))).to.equal(false)
      const swarm = new ReleaseSwarm(cid, index, new Uint8Array(1), deltas(good))
      expect(await pipeline.receive(swarm, index.count, sha(good), good)).to.deep.equal([0])
      expect(await store.getChunk(index.digestAt(0))).to.deep.equal(target)
      expect(await store.hasChunk(sha(good))).to.equal(true)
      expect(swarm.hasLocal(index.count)).to.equal(true)
    })
  })

  describe('PeerManager', () => {
    const libp2p = { dial: async () => { throw new Error('no dial') }, getConnections: () => [], getPeers: () => [], addEventListener: () => {}, removeEventListener: () => {} } as any
    const a = '12D3KooWLRPJAA5o6H9m5Wz4rWWp6XHYbcFn2hfV5wPHjoHMTxgR'
    const b = '12D3KooWGRUVh3Rqv7AD2Lp8ZEFmoUGCnf1DeRuSc4nVCvEk6Mtg'
    it('should take the seeds from `seeds`, else from the /p2p/ ids of the bootstrap addresses, and nothing else', () => {
      const fromList = new PeerManager({ libp2p, config: { seeds: [a], bootstrap: [`/ip4/127.0.0.1/tcp/1/p2p/${b}`] }, stats: new PeerStats(), log })
      expect(fromList.isSeed(a)).to.equal(true)
      expect(fromList.isSeed(b)).to.equal(false)
      const fromBootstrap = new PeerManager({ libp2p, config: { seeds: [], bootstrap: [`/ip4/127.0.0.1/tcp/1/p2p/${b}`] }, stats: new PeerStats(), log })
      expect(fromBootstrap.isSeed(b)).to.equal(true)
      expect(fromBootstrap.isSeed(a)).to.equal(false)
    })
  })

  describe('checkManifestName', () => {
    it('should refuse a manifest that names another release than its record, with INVALID_MANIFEST', () => {
      expect(() => { checkManifestName({ dataset: 'ds', version: 'v1' } as Manifest, 'ds', 'v1') }).not.to.throw()
      for (const [d, v] of [['other', 'v1'], ['ds', 'v2']]) {
        try {
          checkManifestName({ dataset: 'ds', version: 'v1' } as Manifest, d, v)
          expect.fail('accepted')
        } catch (err: any) {
          expect(err.code).to.equal('INVALID_MANIFEST')
        }
      }
    })
  })
})
