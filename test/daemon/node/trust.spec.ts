import { expect } from 'chai'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { publisherKeyText } from '../../../protocol/release.js'
import { loadTrustedKeys, parseTrustEntry, unscopedWarning } from '../../../daemon/node/trust.js'

describe('trusted publisher keys', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-trust-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should read NAMES=KEY and NAMES=FILE entries, merging the scopes of one key', async () => {
    const a = publisherKeyText((await generateKeyPair('Ed25519')).publicKey.raw)
    const b = publisherKeyText((await generateKeyPair('Ed25519')).publicKey.raw)
    await writeFile(join(dir, 'b.pub'), b + '\n')
    const trusted = await loadTrustedKeys([`uniprot=${a}`, `ncbi-*=${join(dir, 'b.pub')}`, `swissprot=${a}`])
    expect(trusted).to.have.length(2)
    expect(publisherKeyText(trusted[0].key)).to.equal(a)
    expect(trusted[0].names).to.deep.equal(['uniprot', 'swissprot'])
    expect(trusted[1].names).to.deep.equal(['ncbi-*'])
    expect(unscopedWarning(trusted)).to.equal(undefined)
  })

  it('should trust a bare key for every name, and warn when two keys are trusted that way', async () => {
    const a = publisherKeyText((await generateKeyPair('Ed25519')).publicKey.raw)
    const b = publisherKeyText((await generateKeyPair('Ed25519')).publicKey.raw)
    const one = await loadTrustedKeys([a, `uniprot=${a}`])
    expect(one[0].names).to.equal(undefined)
    expect(unscopedWarning(one)).to.equal(undefined)
    expect(unscopedWarning(await loadTrustedKeys([a, b]))).to.match(/2 publisher keys are trusted for every dataset name/)
  })

  it('should refuse a bad key, a missing file and a bad scope with INVALID_CONFIG', async () => {
    for (const entry of ['ed25519:notakey', 'uniprot=ed25519:AAAA', join(dir, 'missing.pub'), 'Bad Name=ed25519:x', 'uniprot=']) {
      try {
        await loadTrustedKeys([entry])
        expect.fail(`accepted ${entry}`)
      } catch (err: any) {
        expect(err.code, entry).to.equal('INVALID_CONFIG')
      }
    }
    expect(parseTrustEntry('ncbi-*=keys/ncbi.pub')).to.deep.equal({ names: 'ncbi-*', source: 'keys/ncbi.pub' })
    expect(parseTrustEntry('*=keys/all.pub')).to.deep.equal({ names: undefined, source: 'keys/all.pub' })
  })
})
