// Decoder fuzzing: HOSTILE_TRIALS (default 100,000) mutated inputs per decoder, RSS sampled before and after.
import { expect } from 'chai'
import { decoders, fuzz } from './fuzz.js'
import { record } from './tally.js'

const TRIALS = Number(process.env.HOSTILE_TRIALS ?? 100_000)

describe('hostile: decoder fuzzing', function () {
  this.timeout(0)
  it(`should refuse every malformed input with a typed error, ${TRIALS} inputs per decoder, RSS flat`, async () => {
    // HOSTILE_DECODERS=name,name runs only those
    const only = process.env.HOSTILE_DECODERS?.split(',')
    const list = (await decoders()).filter(d => only == null || only.some(o => d.name.includes(o)))
    const failed: string[] = []
    for (const [n, d] of list.entries()) {
      const r = fuzz(d, TRIALS, 0x9e37 + n)
      const grew = r.rssAfterMiB - r.rssBeforeMiB
      record(`fuzz ${d.name}`, r.trials, r.trials - r.failures.length, `${r.refused} refused, ${r.accepted} accepted, RSS ${r.rssBeforeMiB.toFixed(0)}→${r.rssAfterMiB.toFixed(0)} MiB, ${r.seconds.toFixed(1)} s`)
      if (r.failures.length > 0) failed.push(`${d.name}: ${r.failures.length} untyped, first ${r.failures[0].error}`)
      // a decoder that kept what it was given would grow by the inputs' size at least (~10 MB per 10^5)
      expect(grew, `${d.name} RSS grew ${grew.toFixed(1)} MiB`).to.be.below(64)
    }
    expect(failed, failed.join('\n')).to.deep.equal([])
  })
})
