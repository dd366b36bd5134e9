import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { digestHex, sha256, verifyDigest } from '../../protocol/cid.js'
import { decodeDelta, DELTA_KIND, encodeDelta, superFeatures } from '../../protocol/delta.js'
import { encodeReleaseDeltas } from '../../protocol/delta-encoder.js'
import { DeltaPool } from '../../daemon/runtime/delta-pool.js'
import { buildRelease } from '../../protocol/ingest.js'
import { decodeManifest, encodeManifest, manifestChunkIndex, manifestCid, manifestDeltaIndex, type Manifest } from '../../protocol/manifest.js'
import { prng } from '../fixtures/release-gen.js'
import { generateNextRelease, generateRelease } from '../fixtures/release-gen.js'

function text (seed: number, size: number): Uint8Array {
  const rand = prng(seed)
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = 65 + Math.floor(rand() * 20)
  return out
}

/** `base` with a few bytes changed here and there */
function edited (base: Uint8Array, seed: number, edits: number): Uint8Array {
  const rand = prng(seed)
  const out = base.slice()
  for (let k = 0; k < edits; k++) out[Math.floor(rand() * out.length)] = 97 + Math.floor(rand() * 26)
  return out
}

describe('delta chunks', () => {
  const base = text(1, 200_000)
  const target = edited(base, 2, 40)

  it('should rebuild the target byte for byte from a much smaller object', () => {
    const object = encodeDelta([target], [base])
    expect(object.byteLength).to.be.below(target.byteLength / 20)
    const back = decodeDelta(object, [base], target.byteLength)
    expect(Buffer.from(back).equals(Buffer.from(target))).to.equal(true)
  })

  it('should rebuild a run of chunks as their concatenation, using what the run shares', () => {
    // new content the bases lack, repeated with edits in the next chunk: one object pays for it once
    const first = text(7, 100_000)
    const second = edited(first, 3, 40)
    const run = encodeDelta([first, second], [base])
    const apart = encodeDelta([first], [base]).byteLength + encodeDelta([second], [base]).byteLength
    expect(run.byteLength).to.be.below(apart * 0.6)
    const back = decodeDelta(run, [base], first.byteLength + second.byteLength)
    expect(Buffer.from(back.subarray(0, first.byteLength)).equals(Buffer.from(first))).to.equal(true)
    expect(Buffer.from(back.subarray(first.byteLength)).equals(Buffer.from(second))).to.equal(true)
  })

  it('should find matches anywhere in a dictionary of several megabytes', () => {
    // the target repeats the far start of a 6 MB dictionary: a level's default window would not reach it
    const far = text(4, 6_000_000)
    const object = encodeDelta([edited(far.subarray(0, 200_000), 5, 20)], [far])
    expect(object.byteLength).to.be.below(10_000)
  })

  it('should refuse a corrupt object, a wrong size and the wrong bases', () => {
    const object = encodeDelta([target], [base])
    const corrupt = object.slice()
    corrupt[Math.floor(corrupt.length / 2)] ^= 0xff
    let rebuilt: Uint8Array | undefined
    try { rebuilt = decodeDelta(corrupt, [base], target.byteLength) } catch (err: any) { expect(err.code).to.equal('MALFORMED_MESSAGE') }
    // zstd has no checksum in delta frames: what a corrupt object rebuilds is caught by the chunk digest
    if (rebuilt != null) expect(verifyDigest(sha256(target), rebuilt)).to.equal(false)
    expect(() => decodeDelta(object, [base], target.byteLength + 1)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
    expect(() => decodeDelta(object, [base], 8 * 1024 * 1024 + 1)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
    expect(() => decodeDelta(new Uint8Array([1, 2, 3, 4, 5]), [base], 5)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
    let wrong: Uint8Array | undefined
    try { wrong = decodeDelta(object, [text(9, 200_000)], target.byteLength) } catch (err: any) { expect(err.code).to.equal('MALFORMED_MESSAGE') }
    if (wrong != null) expect(verifyDigest(sha256(target), wrong)).to.equal(false)
  })

  it('should refuse a second frame or trailing bytes after the object', () => {
    const object = encodeDelta([target], [base])
    const two = new Uint8Array(Buffer.concat([object, object]))
    expect(() => decodeDelta(two, [base], target.byteLength)).to.throw(/after the delta object/).with.property('code', 'MALFORMED_MESSAGE')
    expect(() => decodeDelta(new Uint8Array(Buffer.concat([object, new Uint8Array([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])])), [base], target.byteLength)).to.throw(/after the delta object/)
  })

  it('should give near-duplicates a shared super-feature and unrelated chunks none', () => {
    const a = superFeatures(base)
    const b = superFeatures(target)
    const c = superFeatures(text(3, 200_000))
    expect([0, 1, 2].filter(j => a[j] === b[j]).length).to.be.greaterThan(0)
    expect([0, 1, 2].filter(j => a[j] === c[j]).length).to.equal(0)
    // shifted content keeps its features
    const shifted = new Uint8Array(base.length + 7)
    shifted.set(base, 7)
    expect([0, 1, 2].filter(j => a[j] === superFeatures(shifted)[j]).length).to.be.greaterThan(0)
  })

  describe('publisher encoding', function () {
    this.timeout(60_000)
    let dir: string
    let pool: DeltaPool
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'herald-delta-'))
      pool = new DeltaPool(2)
    })
    after(async () => {
      await pool.close()
      await rm(dir, { recursive: true, force: true })
    })

    it('should encode the chunks of an update against the previous release, each run rebuilding exactly', async () => {
      const v1 = join(dir, 'v1')
      const v2 = join(dir, 'v2')
      await generateRelease({ seed: 5, entries: 6000, dir: v1 })
      // scattered edits: nearly every chunk changes, so chunk reuse alone saves nothing
      await generateNextRelease(v1, v2, { seed: 6, modifyFraction: 0.03, deleteFraction: 0.002, appendFraction: 0.01, insertFraction: 0.002 })
      const chunks = new Map<string, Uint8Array>()
      const build = async (d: string, version: string): Promise<Manifest> => (await buildRelease(d, { dataset: 'uniprot', version, onChunk: (digest, b) => { chunks.set(digestHex(digest), b.slice()) } })).manifest
      const m1 = await build(v1, '2024-03')
      const m2 = await build(v2, '2024-04')
      const objects = new Map<string, Uint8Array>()
      const { encodings, stats } = await encodeReleaseDeltas({
        target: m2,
        bases: [m1],
        pool,
        getChunk: async d => chunks.get(digestHex(d)),
        putObject: async (d, b) => { objects.set(digestHex(d), b) }
      })
      expect(stats.candidates).to.be.greaterThan(5)
      expect(stats.encoded).to.be.greaterThan(stats.candidates * 0.8)
      expect(stats.deltaBytes).to.be.below(stats.candidateBytes / 20)
      expect(encodings.reduce((n, e) => n + e.targets.length, 0)).to.equal(stats.encoded)
      expect(encodings.length).to.equal(stats.objects)
      expect(Math.max(...encodings.map(e => e.targets.length))).to.be.greaterThan(1)
      for (const e of encodings) {
        expect(e.kind).to.equal(DELTA_KIND)
        const object = objects.get(digestHex(e.object)) as Uint8Array
        expect(verifyDigest(e.object, object)).to.equal(true)
        const sizes = e.targets.map(t => (chunks.get(digestHex(t)) as Uint8Array).byteLength)
        const rebuilt = decodeDelta(object, e.bases.map(b => chunks.get(digestHex(b)) as Uint8Array), sizes.reduce((a, b) => a + b, 0))
        let at = 0
        e.targets.forEach((t, k) => {
          expect(verifyDigest(t, rebuilt.subarray(at, at + sizes[k]))).to.equal(true)
          at += sizes[k]
        })
      }
      // one chunk per object is still a valid encoding
      const single = await encodeReleaseDeltas({ target: m2, bases: [m1], pool, group: 1, getChunk: async d => chunks.get(digestHex(d)), putObject: async () => {} })
      expect(single.encodings.every(e => e.targets.length === 1)).to.equal(true)
      expect(single.stats.encoded).to.be.greaterThan(stats.candidates * 0.8)
      // the manifest carries them and indexes them after its chunks
      m2.encodings = encodings
      const back = decodeManifest(encodeManifest(m2))
      expect(back.encodings).to.have.length(encodings.length)
      const index = manifestChunkIndex(back)
      const deltas = manifestDeltaIndex(back, index, [DELTA_KIND])
      expect(deltas.count).to.equal(encodings.length)
      expect([...deltas.targets[0]].map(i => index.digestAt(i))).to.deep.equal(encodings[0].targets)
      expect(manifestDeltaIndex(back, index, ['other-kind/1']).count).to.equal(0)
    })
  })

  describe('manifest fields', () => {
    const chunk = new TextEncoder().encode('chunk')
    const baseDigest = sha256(new TextEncoder().encode('base'))
    const m: Manifest = {
      format: 1,
      dataset: 'uniprot',
      version: '2024-04',
      chunker: { algorithm: 'fastcdc', minSize: 65536, avgSize: 262144, maxSize: 1048576, normalization: 2, gear: 'herald-gear-v1' },
      files: [{ path: 'x', size: 5, mode: 0o644, chunks: sha256(chunk), chunkSizes: Uint32Array.of(5) }],
      encodings: [{ targets: [sha256(chunk)], object: sha256(new TextEncoder().encode('object')), size: 6, bases: [baseDigest], kind: DELTA_KIND }],
      createdAt: 0
    }

    it('should encode delta encodings deterministically (golden CID)', () => {
      const bytes = encodeManifest(m)
      expect(manifestCid(bytes).toString()).to.equal('bafyreih4watyzmzaqponjjemswwiwuoinwmh7tckvuedkoy3hu5bivpopy')
      expect(decodeManifest(bytes).encodings[0]).to.deep.equal(m.encodings[0])
    })

    it('should write runs where readers of single-chunk encodings skip them, and read those encodings as runs of one', () => {
      const raw: any = dagCbor.decode(encodeManifest(m))
      expect(raw.encodings).to.deep.equal([])
      expect(raw.runs).to.have.length(1)
      const { targets, ...rest } = raw.runs[0]
      raw.encodings = [{ ...rest, target: targets[0] }]
      delete raw.runs
      expect(decodeManifest(dagCbor.encode(raw)).encodings[0]).to.deep.equal(m.encodings[0])
    })

    it('should reject encodings for chunks the manifest lacks, without bases, or oversized', () => {
      const tamper = (fn: (raw: any) => void): Uint8Array => { const raw: any = dagCbor.decode(encodeManifest(m)); fn(raw); return dagCbor.encode(raw) }
      for (const [what, bytes] of [
        ['unknown target', tamper(r => { r.runs[0].targets = [baseDigest] })],
        ['no targets', tamper(r => { r.runs[0].targets = [] })],
        ['too many targets', tamper(r => { r.runs[0].targets = Array.from({ length: 33 }, () => r.runs[0].targets[0]) })],
        ['a target twice', tamper(r => { r.runs[0].targets = [r.runs[0].targets[0], r.runs[0].targets[0]] })],
        ['no bases', tamper(r => { r.runs[0].bases = [] })],
        ['a base twice', tamper(r => { r.runs[0].bases = [baseDigest, baseDigest] })],
        ['short digest', tamper(r => { r.runs[0].object = new Uint8Array(31) })],
        ['oversized object', tamper(r => { r.runs[0].size = 64 * 1024 * 1024 })],
        ['too many bases', tamper(r => { r.runs[0].bases = Array.from({ length: 65 }, (_, k) => sha256(Uint8Array.of(k))) })],
        ['runs not a list', tamper(r => { r.runs = {} })]
      ] as Array<[string, Uint8Array]>) {
        expect(() => decodeManifest(bytes), what).to.throw().with.property('code', 'INVALID_MANIFEST')
      }
    })
  })
})
