// Records and manifests from static origins, against local node:http servers: only verified ones are taken.
import { expect } from 'chai'
import { createServer, type Server } from 'node:http'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { CID } from 'multiformats/cid'
import { manifestFromOrigins, recordsFromOrigins } from '../../../daemon/fetch/origin-records.js'
import { signRelease } from '../../../protocol/release.js'
import { encodeManifest, manifestCid, type Manifest } from '../../../protocol/manifest.js'
import { sha256 } from '../../../protocol/cid.js'

const cid = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')

describe('origin records', () => {
  const servers: Server[] = []
  afterEach(async () => {
    for (const s of servers) { s.closeAllConnections(); await new Promise(resolve => s.close(resolve)) }
    servers.length = 0
  })

  /** an origin answering each path from `files` (404 otherwise) */
  async function origin (files: Record<string, Uint8Array>): Promise<string> {
    const s = createServer((req, res) => {
      const body = files[req.url ?? '']
      if (body == null) { res.writeHead(404).end(); return }
      res.writeHead(200, { 'content-length': body.byteLength }).end(body)
    })
    servers.push(s)
    await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(s.address() as any).port}/base/`
  }

  it('should take the records that verify, and none that are unsigned by a trusted key, misnamed, oversized or missing', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const trusted = [{ key: key.publicKey.raw }]
    const good = await signRelease({ dataset: 'uniprot', version: '1', manifestCid: cid, seq: 2, publishedAt: 1 }, key)
    const path = '/base/herald/releases/uniprot/1'
    const origins = [
      await origin({ [path]: good }),
      await origin({ [path]: await signRelease({ dataset: 'uniprot', version: '1', manifestCid: cid, seq: 9, publishedAt: 1 }, other) }),
      await origin({ [path]: await signRelease({ dataset: 'uniprot', version: '2', manifestCid: cid, seq: 9, publishedAt: 1 }, key) }),
      await origin({ [path]: new Uint8Array(5_000) }),
      await origin({}),
      'http://127.0.0.1:1/'
    ]
    const got = await recordsFromOrigins(origins, 'uniprot', '1', trusted, AbortSignal.timeout(10_000))
    expect(got.map(r => r.record.seq)).to.deep.equal([2])
  })

  it('should take a manifest only when it hashes to the CID, within maxManifestBytes', async () => {
    const chunk = new TextEncoder().encode('chunk')
    const m: Manifest = {
      format: 1,
      dataset: 'uniprot',
      version: '1',
      chunker: { algorithm: 'fastcdc', minSize: 65536, avgSize: 262144, maxSize: 1048576, normalization: 2, gear: 'herald-gear-v1' },
      files: [{ path: 'x', size: 5, mode: 0o644, chunks: sha256(chunk), chunkSizes: Uint32Array.of(5) }],
      encodings: [],
      createdAt: 0
    }
    const bytes = encodeManifest(m)
    const mcid = manifestCid(bytes)
    const limits = { maxManifestBytes: 1024, maxManifestChunks: 10 }
    const path = `/base/ipfs/${mcid.toString()}`
    const wrong = await origin({ [path]: new Uint8Array([0xa0]) })
    const big = await origin({ [path]: new Uint8Array(2048) })
    expect(await manifestFromOrigins([wrong, big], mcid, limits, AbortSignal.timeout(10_000))).to.equal(undefined)
    // the bad ones are skipped, the good one after them taken
    const good = await origin({ [path]: bytes })
    const got = await manifestFromOrigins([wrong, big, good], mcid, limits, AbortSignal.timeout(10_000))
    expect(got?.manifest.dataset).to.equal('uniprot')
    expect(Buffer.from(got!.bytes).equals(Buffer.from(bytes))).to.equal(true)
  })
})
