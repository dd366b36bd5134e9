// Golden bytes of every wire message: a change to any layout breaks these on purpose.
import { expect } from 'chai'
import * as m from '../../../protocol/exchange/messages.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
const d1 = new Uint8Array(32).fill(0x11)
const d2 = new Uint8Array(32).fill(0x22)
const cid = new Uint8Array([1, 0x71, 0x12, 0x20, ...new Uint8Array(32).fill(0xaa)])

const GOLDEN = {
  chunkRequest: '010002' + '11'.repeat(32) + '22'.repeat(32),
  chunkResponseOk: '0000' + '11'.repeat(32) + '00000003' + '010203',
  chunkResponseNotFound: '0100' + '22'.repeat(32) + '00000000',
  haveRequest: '01' + '01711220' + 'aa'.repeat(32),
  haveBitmap: '0100' + '0000000a' + 'a5c0',
  haveUpdate: '0201' + '00000002' + '00000001' + '0000012c',
  releaseRequest: '01' + '07' + Buffer.from('uniprot').toString('hex') + '07' + Buffer.from('2024-03').toString('hex'),
  releaseResponse: '00' + 'a301',
  manifestHeader: '00' + '00100001',
  chunkRequestAcceptZstd: '010001' + '11'.repeat(32) + '01',
  chunkResponseZstd: '0001' + '11'.repeat(32) + '00000002' + 'aabb' + '000003e8'
}

describe('wire messages', () => {
  it('should encode every message to its golden bytes', () => {
    expect(hex(m.encodeChunkRequest([d1, d2]))).to.equal(GOLDEN.chunkRequest)
    expect(hex(m.encodeChunkResponse({ status: m.Status.OK, encoding: m.Encoding.RAW, digest: d1, data: new Uint8Array([1, 2, 3]) }))).to.equal(GOLDEN.chunkResponseOk)
    expect(hex(m.encodeChunkResponse({ status: m.Status.NOT_FOUND, encoding: m.Encoding.RAW, digest: d2, data: new Uint8Array(0) }))).to.equal(GOLDEN.chunkResponseNotFound)
    expect(hex(m.encodeHaveRequest(cid))).to.equal(GOLDEN.haveRequest)
    expect(hex(m.encodeHaveMessage({ type: 'bitmap', status: m.Status.OK, count: 10, bitmap: new Uint8Array([0xa5, 0xc0]) }))).to.equal(GOLDEN.haveBitmap)
    expect(hex(m.encodeHaveMessage({ type: 'update', complete: true, indices: [1, 300] }))).to.equal(GOLDEN.haveUpdate)
    expect(hex(m.encodeReleaseRequest('uniprot', '2024-03'))).to.equal(GOLDEN.releaseRequest)
    expect(hex(m.encodeReleaseResponse(m.Status.OK, new Uint8Array([0xa3, 0x01])))).to.equal(GOLDEN.releaseResponse)
    expect(hex(m.encodeManifestHeader(m.Status.OK, 1_048_577))).to.equal(GOLDEN.manifestHeader)
    expect(hex(m.encodeChunkRequest([d1], m.ACCEPT_ZSTD))).to.equal(GOLDEN.chunkRequestAcceptZstd)
    expect(hex(m.encodeChunkResponse({ status: m.Status.OK, encoding: m.Encoding.ZSTD, digest: d1, data: new Uint8Array([0xaa, 0xbb]), rawSize: 1000 }))).to.equal(GOLDEN.chunkResponseZstd)
  })

  it('should carry the accepted encodings and the raw size of compressed chunks', () => {
    expect(m.decodeChunkRequestFull(bytes(GOLDEN.chunkRequestAcceptZstd)).accept).to.equal(m.ACCEPT_ZSTD)
    expect(m.decodeChunkRequestFull(bytes(GOLDEN.chunkRequest)).accept).to.equal(0)
    const z = m.decodeChunkResponse(bytes(GOLDEN.chunkResponseZstd))
    expect([z.encoding, z.rawSize, hex(z.data)]).to.deep.equal([m.Encoding.ZSTD, 1000, 'aabb'])
    expect(() => m.decodeChunkResponse(bytes(GOLDEN.chunkResponseZstd.slice(0, -8)))).to.throw().with.property('code', 'MALFORMED_MESSAGE')
  })

  it('should decode the golden bytes back', () => {
    expect(m.decodeChunkRequest(bytes(GOLDEN.chunkRequest)).map(hex)).to.deep.equal([hex(d1), hex(d2)])
    const ok = m.decodeChunkResponse(bytes(GOLDEN.chunkResponseOk))
    expect([ok.status, ok.encoding, hex(ok.digest), [...ok.data]]).to.deep.equal([m.Status.OK, m.Encoding.RAW, hex(d1), [1, 2, 3]])
    expect(m.decodeChunkResponse(bytes(GOLDEN.chunkResponseNotFound)).status).to.equal(m.Status.NOT_FOUND)
    expect(hex(m.decodeHaveRequest(bytes(GOLDEN.haveRequest)))).to.equal(hex(cid))
    expect(m.decodeHaveMessage(bytes(GOLDEN.haveBitmap))).to.deep.include({ type: 'bitmap', status: m.Status.OK, count: 10 })
    expect(m.decodeHaveMessage(bytes(GOLDEN.haveUpdate))).to.deep.equal({ type: 'update', complete: true, indices: [1, 300] })
    expect(m.decodeReleaseRequest(bytes(GOLDEN.releaseRequest))).to.deep.equal({ dataset: 'uniprot', version: '2024-03' })
    expect(m.decodeReleaseResponse(bytes(GOLDEN.releaseResponse)).status).to.equal(m.Status.OK)
    expect(m.decodeManifestHeader(bytes(GOLDEN.manifestHeader))).to.deep.equal({ status: m.Status.OK, total: 1_048_577 })
  })

  it('should ignore trailing fields added by a newer peer', () => {
    expect(m.decodeChunkRequest(bytes(GOLDEN.chunkRequest + 'ffff'))).to.have.length(2)
    expect(m.decodeManifestHeader(bytes(GOLDEN.manifestHeader + '01')).total).to.equal(1_048_577)
  })

  it('should reject malformed frames with MALFORMED_MESSAGE', () => {
    const bad: Array<() => unknown> = [
      () => m.decodeChunkRequest(bytes('01')),
      () => m.decodeChunkRequest(bytes('020001' + '11'.repeat(32))),
      () => m.decodeChunkRequest(bytes('010000')),
      () => m.decodeChunkRequest(bytes('010041' + '11'.repeat(32 * 65))),
      () => m.decodeChunkRequest(bytes('010002' + '11'.repeat(32))),
      () => m.decodeChunkResponse(bytes('0000' + '11'.repeat(32) + 'ffffffff')),
      () => m.decodeChunkResponse(bytes('0900' + '11'.repeat(32) + '00000000')),
      () => m.decodeChunkResponse(bytes('0100' + '11'.repeat(32) + '0000000101')),
      () => m.decodeHaveMessage(bytes('0100ffffffff')),
      () => m.decodeHaveMessage(bytes('0200000000ff')),
      () => m.decodeHaveMessage(bytes('0300000000000')),
      () => m.decodeReleaseRequest(bytes('01ff00')),
      () => m.decodeReleaseRequest(bytes('0102ffff00'))
    ]
    bad.forEach((fn, i) => { expect(fn, `case ${i}`).to.throw().with.property('code', 'MALFORMED_MESSAGE') })
  })
})
