import { expect } from 'chai'
import { SuperSeedPolicy } from '../../../daemon/node/super-seed.js'

describe('super-seed policy', () => {
  it('should hand a chunk to one peer and defer the others until the grace period passes', () => {
    const p = new SuperSeedPolicy(1_000)
    expect(p.decide('A', 'c1', 0)).to.equal('serve')
    expect(p.decide('B', 'c1', 100)).to.equal('rate-limited')
    expect(p.decide('A', 'c1', 200)).to.equal('serve')
    expect(p.decide('B', 'c2', 300)).to.equal('serve')
    expect(p.decide('B', 'c1', 1_300)).to.equal('serve')
  })
})
