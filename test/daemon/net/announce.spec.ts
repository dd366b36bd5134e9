// The release announcement message: golden bytes, bounds, and the order of "latest".
import { expect } from 'chai'
import { compareReleases, decodeAnnouncement, encodeAnnouncement, MAX_ANNOUNCE_BYTES } from '../../../protocol/announce.js'
import { MAX_RECORD_BYTES } from '../../../protocol/release.js'

describe('release announcement', () => {
  it('should encode as DAG-CBOR { at, record, v } (golden bytes)', () => {
    const bytes = encodeAnnouncement(new Uint8Array([1, 2, 3]), 1_700_000_000_000)
    // map(3) "at" uint64, "v" 1, "record" bytes(3): DAG-CBOR sorts keys by length, then bytewise
    expect(Buffer.from(bytes).toString('hex')).to.equal('a3617601626174' + '1b0000018bcfe56800' + '667265636f7264' + '43010203')
  })

  it('should refuse oversized, malformed and other-version messages with INVALID_RECORD', () => {
    expect(() => decodeAnnouncement(new Uint8Array(MAX_ANNOUNCE_BYTES + 1))).to.throw().with.property('code', 'INVALID_RECORD')
    expect(() => decodeAnnouncement(new TextEncoder().encode('not cbor'))).to.throw().with.property('code', 'INVALID_RECORD')
    expect(() => decodeAnnouncement(new Uint8Array([0xa1, 0x61, 0x76, 0x02]))).to.throw(/unsupported/).with.property('code', 'INVALID_RECORD')
    expect(() => decodeAnnouncement(new Uint8Array([0xa1, 0x61, 0x76, 0x01]))).to.throw(/no record/)
    expect(() => encodeAnnouncement(new Uint8Array(MAX_RECORD_BYTES + 1), 0)).to.throw().with.property('code', 'INVALID_RECORD')
  })

  it('should order releases by signed time, then seq, then version', () => {
    const r = (publishedAt: number, seq: number, version: string): { publishedAt: number, seq: number, version: string } => ({ publishedAt, seq, version })
    expect(compareReleases(r(2, 1, 'a'), r(1, 9, 'z'))).to.be.greaterThan(0)
    expect(compareReleases(r(1, 2, 'a'), r(1, 1, 'z'))).to.be.greaterThan(0)
    expect(compareReleases(r(1, 1, 'b'), r(1, 1, 'a'))).to.be.greaterThan(0)
    expect(compareReleases(r(1, 1, 'a'), r(1, 1, 'a'))).to.equal(0)
  })
})
