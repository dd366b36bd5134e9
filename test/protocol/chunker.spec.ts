import { expect } from 'chai'
import { createHash, randomBytes } from 'node:crypto'
import { Chunker, chunkBuffer, chunkStream, DEFAULT_CHUNKER, parseChunkSize, validateChunkerParams } from '../../protocol/chunker.js'
import { digestHex, sha256 } from '../../protocol/cid.js'
import { prng } from '../fixtures/release-gen.js'

const small = { ...DEFAULT_CHUNKER, minSize: 2 * 1024, avgSize: 8 * 1024, maxSize: 32 * 1024 }

function pseudoRandom (n: number, seed: number): Uint8Array {
  const r = prng(seed)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 256)
  return out
}

describe('chunker', () => {
  // The gear table and the boundary rule are frozen: every published manifest depends on them. These
  // boundaries were recorded from herald-gear-v1; a change to the table, the masks or the normalization
  // moves them and must fail here (a new algorithm gets a new name instead).
  it('should cut a fixed input at the recorded (golden) boundaries', () => {
    const input = xorshift(8 * 1024 * 1024, 0x9e3779b9)
    for (const [params, count, first, digest] of [
      [DEFAULT_CHUNKER, 27, [402735, 710686, 994163, 1264745, 1603766, 1867537], 'b3f999b351b82f25c98c1b0f9355fbb521e87fb39ec5cd8c3915ac8e33c4e2f3'],
      [parseChunkSize('2K:8K:32K'), 904, [9140, 17818, 20599, 31205, 39643, 47891], '1fc92865ea2451d46ff9769dd2d17ed647f44bdc0f4d06b42bd1648d2219ea99']
    ] as const) {
      let at = 0
      const ends = chunkBuffer(input, params).map(c => (at += c.byteLength))
      expect(ends).to.have.length(count)
      expect(ends.slice(0, 6)).to.deep.equal(first)
      expect(createHash('sha256').update(JSON.stringify(ends)).digest('hex')).to.equal(digest)
    }
  })

  it('should be deterministic and cover the input exactly', () => {
    const data = pseudoRandom(1_000_000, 1)
    const a = chunkBuffer(data, small)
    const b = chunkBuffer(data, small)
    expect(a.map(c => digestHex(sha256(c)))).to.deep.equal(b.map(c => digestHex(sha256(c))))
    expect(Buffer.concat(a).equals(Buffer.from(data))).to.equal(true)
  })

  it('should respect min and max sizes (only the last chunk may be smaller than min)', () => {
    const chunks = chunkBuffer(pseudoRandom(2_000_000, 2), small)
    chunks.slice(0, -1).forEach(c => { expect(c.byteLength).to.be.within(small.minSize, small.maxSize) })
    expect(chunks[chunks.length - 1].byteLength).to.be.at.most(small.maxSize)
    const zeros = chunkBuffer(new Uint8Array(200_000), small)
    zeros.slice(0, -1).forEach(c => { expect(c.byteLength).to.equal(small.maxSize) })
  })

  it('should give the same chunks whatever the sizes of the pieces it is fed', async () => {
    const data = pseudoRandom(600_000, 3)
    const whole = chunkBuffer(data, small).map(c => digestHex(sha256(c)))
    const pieces: Uint8Array[] = []
    for (let o = 0; o < data.byteLength;) {
      const n = 1 + Math.floor(Math.random() * 50_000)
      pieces.push(data.subarray(o, o + n))
      o += n
    }
    const streamed: string[] = []
    for await (const c of chunkStream(pieces, small)) streamed.push(digestHex(sha256(c)))
    expect(streamed).to.deep.equal(whole)
  })

  it('should keep most chunks when bytes are inserted elsewhere', () => {
    const data = pseudoRandom(2_000_000, 4)
    const edited = Buffer.concat([data.subarray(0, 1_000_000), randomBytes(100), data.subarray(1_000_000)])
    const before = new Set(chunkBuffer(data, small).map(c => digestHex(sha256(c))))
    const after = chunkBuffer(edited, small).map(c => digestHex(sha256(c)))
    const shared = after.filter(d => before.has(d)).length
    expect(shared / after.length).to.be.greaterThan(0.95)
  })

  it('should chunk empty and tiny inputs', () => {
    expect(chunkBuffer(new Uint8Array(0))).to.deep.equal([])
    const c = new Chunker()
    expect(c.push(new Uint8Array([1, 2, 3]))).to.deep.equal([])
    expect(c.end().map(x => [...x])).to.deep.equal([[1, 2, 3]])
  })

  it('should reject unknown gear tables and inconsistent sizes', () => {
    expect(() => validateChunkerParams({ ...DEFAULT_CHUNKER, gear: 'other' })).to.throw(/gear/)
    expect(() => validateChunkerParams({ ...DEFAULT_CHUNKER, minSize: 2_000_000 })).to.throw(/sizes/)
    expect(() => validateChunkerParams({ ...DEFAULT_CHUNKER, avgSize: 300_000 })).to.throw(/power of two/)
    expect(() => validateChunkerParams(null)).to.throw()
  })
})

/** a fixed pseudo-random input (xorshift32), the same on every machine */
function xorshift (n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}
