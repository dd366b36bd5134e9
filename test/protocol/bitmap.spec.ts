import { expect } from 'chai'
import { allSet, bitClear, bitGet, bitmapBytes, bitmapFrom, bitSet, popcount, setBits } from '../../protocol/bitmap.js'
import { prng } from '../fixtures/release-gen.js'

describe('bitmap', () => {
  it('should put bit 0 in the most significant bit of byte 0 (the have protocol layout)', () => {
    const b = new Uint8Array(2)
    bitSet(b, 0)
    bitSet(b, 9)
    expect([...b]).to.deep.equal([0x80, 0x40])
    expect(bitGet(b, 0)).to.equal(true)
    expect(bitGet(b, 1)).to.equal(false)
    bitClear(b, 0)
    expect([...b]).to.deep.equal([0x00, 0x40])
    expect(bitmapBytes(0)).to.equal(0)
    expect(bitmapBytes(9)).to.equal(2)
  })

  it('should count and iterate the same bits as a model, ignoring bits past the count', () => {
    const rand = prng(7)
    for (let round = 0; round < 50; round++) {
      const count = Math.floor(rand() * 300)
      const b = new Uint8Array(bitmapBytes(count) + 1)
      const model: number[] = []
      for (let i = 0; i < count; i++) if (rand() < 0.3) { bitSet(b, i); model.push(i) }
      // noise past the count must not be counted
      b[b.byteLength - 1] = 0xff
      if ((count & 7) !== 0) b[bitmapBytes(count) - 1] |= 0xff >> (count & 7)
      expect(popcount(b, count)).to.equal(model.length)
      expect([...setBits(b, count)]).to.deep.equal(model)
      expect(allSet(b, count)).to.equal(model.length === count)
    }
  })

  it('should copy from shorter or longer bytes to exactly the count, clearing the tail', () => {
    expect([...bitmapFrom(new Uint8Array([0xff]), 12)]).to.deep.equal([0xff, 0x00])
    expect([...bitmapFrom(new Uint8Array([0xff, 0xff, 0xff]), 12)]).to.deep.equal([0xff, 0xf0])
    const src = new Uint8Array([0x80])
    const copy = bitmapFrom(src, 8)
    src[0] = 0
    expect(copy[0]).to.equal(0x80)
    expect(allSet(bitmapFrom(new Uint8Array([0xff, 0xff]), 12), 12)).to.equal(true)
    // a short bitmap has no bits past its bytes
    expect(popcount(new Uint8Array([0xff]), 100)).to.equal(8)
  })
})
