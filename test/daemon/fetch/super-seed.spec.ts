import { expect } from 'chai'
import { SuperSeedPolicy } from '../../../daemon/node/super-seed.js'

describe('super-seed policy (injected clock)', () => {
  it('should hand a chunk to one peer and defer the others until the grace period passes', () => {
    const p = new SuperSeedPolicy({ graceMs: 1_000 })
    expect(p.decide('A', 'c1', 0)).to.equal('serve')
    expect(p.decide('B', 'c1', 100)).to.equal('rate-limited')
    expect(p.decide('B', 'c2', 300)).to.equal('serve')
    expect(p.decide('B', 'c1', 1_000)).to.equal('serve')
  })

  it('should not extend a reservation when its holder asks again, and take its place away', () => {
    const p = new SuperSeedPolicy({ graceMs: 4_000 })
    expect(p.decide('hoarder', 'c1', 0)).to.equal('serve')
    expect(p.decide('lab', 'c1', 1_000)).to.equal('rate-limited')
    // the hoarder re-asks every 3 s: no second copy, and the chunk is free for the others at once
    expect(p.decide('hoarder', 'c1', 3_000)).to.equal('rate-limited')
    expect(p.reservations('hoarder')).to.equal(0)
    expect(p.decide('lab', 'c1', 3_100)).to.equal('serve')
    expect(p.decide('hoarder', 'c1', 6_000)).to.equal('rate-limited')
  })

  it('should let a reservation lapse after the grace period although its holder keeps asking', () => {
    const p = new SuperSeedPolicy({ graceMs: 4_000 })
    expect(p.decide('hoarder', 'c1', 0)).to.equal('serve')
    // a hoarder cannot keep the chunk past its grace whatever it does
    expect(p.decide('lab', 'c1', 4_000)).to.equal('serve')
    expect(p.decide('hoarder', 'c1', 4_100)).to.equal('rate-limited')
  })

  it('should cap the reservations one peer holds, its oldest lapsing first', () => {
    const p = new SuperSeedPolicy({ graceMs: 60_000, maxPerPeer: 8 })
    for (let k = 0; k < 20; k++) expect(p.decide('hoarder', `c${k}`, k)).to.equal('serve')
    expect(p.reservations('hoarder')).to.equal(8)
    // the 12 oldest are free for others; the 8 newest are still reserved
    for (let k = 0; k < 12; k++) expect(p.decide('lab', `c${k}`, 100), `c${k}`).to.equal('serve')
    for (let k = 12; k < 20; k++) expect(p.decide('lab', `c${k}`, 100), `c${k}`).to.equal('rate-limited')
    expect(p.reservations('lab')).to.equal(8)
  })
})
