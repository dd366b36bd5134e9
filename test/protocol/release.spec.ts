import { expect } from 'chai'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { CID } from 'multiformats/cid'
import { checkNotReplay, decodeSignedRelease, nameMatches, publisherKeyText, signRelease, verifyRelease } from '../../protocol/release.js'

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

  it('should accept a scoped key only for the names it is trusted for', async () => {
    const key = await generateKeyPair('Ed25519')
    const sign = async (dataset: string): Promise<ReturnType<typeof decodeSignedRelease>> =>
      decodeSignedRelease(await signRelease({ dataset, version: '1', manifestCid: cid, seq: 1, publishedAt: 1 }, key))
    const scoped = [{ key: key.publicKey.raw, names: ['uniprot', 'ncbi-*'] }]
    await verifyRelease(await sign('uniprot'), scoped)
    await verifyRelease(await sign('ncbi-nr'), scoped)
    for (const dataset of ['uniprot2', 'other', 'xncbi-nr']) {
      try {
        await verifyRelease(await sign(dataset), scoped)
        expect.fail(`accepted ${dataset}`)
      } catch (err: any) {
        expect(err.code).to.equal('UNTRUSTED_PUBLISHER')
        expect(err.message).to.match(/trusted only for uniprot, ncbi-\*/)
      }
    }
    // the same key unscoped elsewhere in the list: every name
    await verifyRelease(await sign('other'), [...scoped, { key: key.publicKey.raw }])
  })

  it('should match name patterns with * only, anchored', () => {
    expect(nameMatches('ncbi-*', 'ncbi-nr')).to.equal(true)
    expect(nameMatches('ncbi-*', 'ncbi-')).to.equal(true)
    expect(nameMatches('ncbi-*', 'xncbi-nr')).to.equal(false)
    expect(nameMatches('*-prod', 'uniprot-prod')).to.equal(true)
    expect(nameMatches('uni.rot', 'uniprot')).to.equal(false)
    expect(nameMatches('uniprot', 'uniprot')).to.equal(true)
    expect(nameMatches('*', 'anything')).to.equal(true)
  })
})
