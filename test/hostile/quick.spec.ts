// The quick subset of the hostile suite that runs with `npm test`: 2,000 mutated inputs per decoder
// (the full suite, `npm run test:hostile`, runs 100,000 and the scripted peers against real daemons).
import { expect } from 'chai'
import { decoders, fuzz } from './fuzz.js'

describe('hostile (quick subset): decoder fuzzing', () => {
  it('should refuse every malformed input with a typed error, 2,000 inputs per decoder', async () => {
    for (const d of await decoders()) {
      const r = fuzz(d, 2_000, 7)
      expect(r.failures.map(f => f.error), d.name).to.deep.equal([])
      expect(r.refused, `${d.name}: the mutations reach the checks`).to.be.above(0)
    }
  })
})
