import { expect } from 'chai'
import * as dagCbor from '@ipld/dag-cbor'
import { DEFAULT_CHUNKER } from '../../protocol/chunker.js'
import { sha256 } from '../../protocol/cid.js'
import { decodeManifest, encodeManifest, manifestChunkIndex, manifestCid, verifyManifest, type Manifest, type ManifestFile } from '../../protocol/manifest.js'

function file (path: string, chunks: string[]): ManifestFile {
  const bytes = chunks.map(c => new TextEncoder().encode(c))
  const packed = new Uint8Array(bytes.length * 32)
  bytes.forEach((b, i) => packed.set(sha256(b), i * 32))
  return { path, size: bytes.reduce((n, b) => n + b.byteLength, 0), mode: 0o644, chunks: packed, chunkSizes: Uint32Array.from(bytes.map(b => b.byteLength)), upstream: { name: path + '.gz', size: 10, sha256: 'a'.repeat(64), md5: 'b'.repeat(32), compression: 'gzip' } }
}

function manifest (files: ManifestFile[]): Manifest {
  return { format: 1, dataset: 'uniprot', version: '2024-03', chunker: { ...DEFAULT_CHUNKER }, files, encodings: [], createdAt: 0 }
}

function tamper (m: Manifest, fn: (raw: any) => void): Uint8Array {
  const raw: any = dagCbor.decode(encodeManifest(m))
  fn(raw)
  return dagCbor.encode(raw)
}

describe('manifest', () => {
  const m = manifest([file('a/x.fasta', ['one', 'two', 'one']), file('b.txt', ['three'])])

  it('should round-trip and encode deterministically', () => {
    const bytes = encodeManifest(m)
    const back = decodeManifest(bytes)
    expect(back.files.map(f => f.path)).to.deep.equal(['a/x.fasta', 'b.txt'])
    expect([...back.files[0].chunkSizes]).to.deep.equal([3, 3, 3])
    expect(back.files[0].upstream?.compression).to.equal('gzip')
    expect(Buffer.from(encodeManifest(back)).equals(Buffer.from(bytes))).to.equal(true)
    expect(manifestCid(bytes).toString()).to.equal(manifestCid(encodeManifest(decodeManifest(bytes))).toString())
    expect(manifestCid(bytes).code).to.equal(0x71)
  })

  it('should index distinct chunks in order of first appearance', () => {
    const idx = manifestChunkIndex(m)
    expect(idx.count).to.equal(3)
    expect(idx.totalBytes).to.equal(3 + 3 + 5)
    expect(idx.indexOf(sha256(new TextEncoder().encode('three')))).to.equal(2)
    expect(idx.indexOf(new Uint8Array(32))).to.equal(-1)
  })

  it('should refuse bytes that do not match the CID', () => {
    const bytes = encodeManifest(m)
    const other = encodeManifest(manifest([file('c', ['z'])]))
    expect(() => verifyManifest(manifestCid(bytes), other)).to.throw().with.property('code', 'HASH_MISMATCH')
  })

  it('should reject malformed manifests with typed errors', () => {
    const cases: Array<[string, Uint8Array]> = [
      ['garbage', new Uint8Array([1, 2, 3])],
      ['escaping path', tamper(m, r => { r.files[0].path = '../etc/passwd' })],
      ['absolute path', tamper(m, r => { r.files[0].path = '/etc/passwd' })],
      ['unnormalised path', tamper(m, r => { r.files[0].path = 'a//x.fasta' })],
      ['duplicate path', tamper(m, r => { r.files[1].path = 'a/x.fasta' })],
      ['file vs directory', tamper(m, r => { r.files[1].path = 'a' })],
      ['size mismatch', tamper(m, r => { r.files[0].size = 10 })],
      ['ragged chunk list', tamper(m, r => { r.files[0].chunks = r.files[0].chunks.subarray(0, 40) })],
      ['unknown format', tamper(m, r => { r.format = 2 })],
      ['chunker drift', tamper(m, r => { r.chunker.gear = 'x' })],
      ['oversized chunk', tamper(m, r => { r.files[1].sizes = new Uint8Array([0, 0, 0, 1]); r.files[1].size = 16777216 })]
    ]
    for (const [what, bytes] of cases) {
      try {
        decodeManifest(bytes)
        expect.fail(`accepted ${what}`)
      } catch (err: any) {
        expect(['INVALID_MANIFEST', 'INVALID_PATH'], what).to.include(err.code)
      }
    }
  })

  it('should encode and decode a 10^6-chunk manifest in linear time', function () {
    this.timeout(60_000)
    const n = 1_000_000
    const chunks = new Uint8Array(n * 32)
    for (let i = 0; i < n; i++) new DataView(chunks.buffer).setUint32(i * 32, i)
    const sizes = new Uint32Array(n).fill(256 * 1024)
    const big = manifest([{ path: 'nr.fasta', size: n * 256 * 1024, mode: 0o644, chunks, chunkSizes: sizes }])
    const bytes = encodeManifest(big)
    expect(bytes.byteLength).to.be.below(40 * 1024 * 1024)
    const back = decodeManifest(bytes)
    expect(back.files[0].chunkSizes.length).to.equal(n)
    expect(manifestChunkIndex(back).count).to.equal(n)
  })
})

describe('manifest limits', () => {
  function big (n: number, files = 1): Uint8Array {
    const per = Math.ceil(n / files)
    return encodeManifest(manifest(Array.from({ length: files }, (_, f) => {
      const count = Math.min(per, n - f * per)
      const chunks = new Uint8Array(count * 32)
      for (let i = 0; i < count; i++) new DataView(chunks.buffer).setUint32(i * 32, f * per + i)
      return { path: `f${f}`, size: count * 65_536, mode: 0o644, chunks, chunkSizes: new Uint32Array(count).fill(65_536) }
    })))
  }

  it('should refuse a manifest over the chunk limit while decoding, across files', () => {
    const bytes = big(10_000, 4)
    expect(decodeManifest(bytes, { maxChunks: 10_000 }).files.length).to.equal(4)
    expect(() => decodeManifest(bytes, { maxChunks: 9_999 })).to.throw(/more than 9999 chunks/).with.property('code', 'INVALID_MANIFEST')
  })

  it('should refuse a manifest over the byte limit before decoding it, and cap limits at the protocol\'s', () => {
    const bytes = big(1_000)
    expect(() => decodeManifest(bytes, { maxBytes: bytes.byteLength - 1 })).to.throw(/over the .*-byte limit/).with.property('code', 'INVALID_MANIFEST')
    expect(() => verifyManifest(manifestCid(bytes), bytes, { maxChunks: 999 })).to.throw(/chunks/).with.property('code', 'INVALID_MANIFEST')
    // a limit above the protocol's is the protocol's
    expect(decodeManifest(bytes, { maxChunks: 1e12, maxBytes: 1e12 }).files[0].chunkSizes.length).to.equal(1_000)
  })

})
