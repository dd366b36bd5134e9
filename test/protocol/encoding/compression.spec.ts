// Strict decompression of peers' zstd frames: one frame, declared size, nothing around it.
import { expect } from 'chai'
import { compressChunk, decompressChunk, parseFrameHeader } from '../../../protocol/encoding/compression.js'

/** a skippable frame (magic 0x184D2A5x, u32 length, payload) */
export function skippable (payload: Uint8Array, nibble = 0): Uint8Array {
  const out = new Uint8Array(8 + payload.byteLength)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, 0x184D2A50 + nibble, true)
  dv.setUint32(4, payload.byteLength, true)
  out.set(payload, 8)
  return out
}

function concat (...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

describe('compression', () => {
  const text = new TextEncoder().encode('>sp|P12345|TEST_HUMAN test OS=Homo sapiens\nMKTAYIAKQRQISFVKSHFSRQ\n'.repeat(4000))
  const frame = compressChunk(text)!

  it('should give back the exact bytes of one well-formed frame', () => {
    expect(Buffer.from(decompressChunk(frame, text.byteLength, undefined, text.byteLength)).equals(Buffer.from(text))).to.equal(true)
    const h = parseFrameHeader(frame)
    expect(h.contentSize).to.equal(text.byteLength)
  })

  it('should refuse a second frame after the first (the multi-frame bomb)', () => {
    // many frames each declaring the chunk's size: zstd alone would inflate every one of them
    const bomb = concat(...Array.from({ length: 64 }, () => frame))
    expect(() => decompressChunk(bomb, text.byteLength)).to.throw(/after the zstd frame|larger than/).with.property('code', 'MALFORMED_MESSAGE')
    // even a bomb smaller than the chunk is refused on its trailing frame
    const small = compressChunk(new Uint8Array(1024 * 1024))!
    const bomb2 = concat(small, small)
    expect(bomb2.byteLength).to.be.below(1024 * 1024)
    expect(() => decompressChunk(bomb2, 1024 * 1024)).to.throw(/after the zstd frame/).with.property('code', 'MALFORMED_MESSAGE')
  })

  it('should refuse skippable frames before or after the frame, and trailing bytes', () => {
    for (const nibble of [0, 7, 15]) {
      expect(() => decompressChunk(concat(frame, skippable(new Uint8Array(100), nibble)), text.byteLength)).to.throw(/after the zstd frame/).with.property('code', 'MALFORMED_MESSAGE')
      expect(() => decompressChunk(concat(skippable(new Uint8Array(100), nibble), frame), text.byteLength)).to.throw(/skippable/).with.property('code', 'MALFORMED_MESSAGE')
    }
    expect(() => decompressChunk(concat(frame, new Uint8Array([0])), text.byteLength)).to.throw(/1 bytes after/).with.property('code', 'MALFORMED_MESSAGE')
  })

  it('should refuse a size other than the manifest\'s, a missing size, a dictionary and a reserved bit', () => {
    expect(() => decompressChunk(frame, text.byteLength, undefined, text.byteLength - 1)).to.throw(/manifest says/).with.property('code', 'MALFORMED_MESSAGE')
    expect(() => decompressChunk(frame, text.byteLength + 1)).to.throw(/declares/).with.property('code', 'MALFORMED_MESSAGE')
    expect(() => decompressChunk(frame, 64 * 1024 * 1024)).to.throw(/limit/)
    const dict = frame.slice(); dict[4] |= 0x01
    expect(() => decompressChunk(dict, text.byteLength)).to.throw(/dictionary/)
    const reserved = frame.slice(); reserved[4] |= 0x08
    expect(() => decompressChunk(reserved, text.byteLength)).to.throw(/reserved/)
    // FCS flag 0 and not single-segment: no content size
    const noSize = frame.slice(); noSize[4] &= 0x04
    expect(() => decompressChunk(noSize, text.byteLength)).to.throw(/content size/)
    expect(() => decompressChunk(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 8)).to.throw(/not a zstd frame/)
  })

  it('should refuse a corrupt frame of the right shape with a typed error', () => {
    const bad = frame.slice()
    for (let i = 20; i < bad.byteLength - 4; i += 7) bad[i] ^= 0x5a
    expect(() => decompressChunk(bad, text.byteLength)).to.throw().with.property('code', 'MALFORMED_MESSAGE')
  })
})
