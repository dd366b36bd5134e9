import { expect } from 'chai'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { CID } from 'multiformats/cid'
import { checkNotReplay, decodeSignedRelease, publisherKeyText, signRelease, verifyRelease } from '../../protocol/release.js'

const cid = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')

describe('release record', () => {
  it('should sign and verify against a trusted key (raw or text form)', async () => {
    const key = await generateKeyPair('Ed25519')
    const bytes = await signRelease({ dataset: 'uniprot', version: '2024-03', manifestCid: cid, seq: 3, publishedAt: 1_700_000_000_000 }, key)
    const signed = decodeSignedRelease(bytes)
    expect(signed.record.seq).to.equal(3)
    expect(signed.record.manifestCid.equals(cid)).to.equal(true)
    await verifyRelease(signed, [key.publicKey.raw])
    await verifyRelease(signed, [publisherKeyText(key.publicKey.raw)])
  })

  it('should refuse an untrusted publisher and a tampered record', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const bytes = await signRelease({ dataset: 'uniprot', version: '2024-03', manifestCid: cid, seq: 1, publishedAt: 1 }, key)
    try {
      await verifyRelease(decodeSignedRelease(bytes), [other.publicKey.raw])
      expect.fail('accepted')
    } catch (err: any) { expect(err.code).to.equal('UNTRUSTED_PUBLISHER') }
    const raw: any = dagCbor.decode(bytes)
    raw.record.seq = 99
    try {
      await verifyRelease(decodeSignedRelease(dagCbor.encode(raw)), [key.publicKey.raw])
      expect.fail('accepted')
    } catch (err: any) { expect(err.code).to.equal('BAD_SIGNATURE') }
  })

  it('should reject malformed and oversized envelopes', () => {
    expect(() => decodeSignedRelease(new Uint8Array([0xff]))).to.throw().with.property('code', 'INVALID_RECORD')
    expect(() => decodeSignedRelease(new Uint8Array(5000))).to.throw().with.property('code', 'INVALID_RECORD')
    expect(() => decodeSignedRelease(dagCbor.encode({ record: { v: 1 } }))).to.throw().with.property('code', 'INVALID_RECORD')
  })

  it('should refuse a replayed lower seq', () => {
    expect(() => { checkNotReplay({ seq: 5 }, { seq: 4, dataset: 'a', version: 'b' }) }).to.throw().with.property('code', 'RELEASE_REPLAY')
    checkNotReplay({ seq: 5 }, { seq: 5, dataset: 'a', version: 'b' })
    checkNotReplay(undefined, { seq: 0, dataset: 'a', version: 'b' })
  })
})
