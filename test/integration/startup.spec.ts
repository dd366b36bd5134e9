// Start-up does no per-chunk work: a daemon that holds a release of thousands of chunks reads a handful of
// index keys before it is ready (counted by the store, not timed), and opens the release's ledger from the
// store's have-bitmap when a peer first asks for it.
import { expect } from 'chai'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { daemonFixture } from '../helpers/daemon-process.js'
import { generateRandomRelease } from '../fixtures/random-release.js'

describe('start-up (real daemons on loopback)', function () {
  this.timeout(240_000)
  const fx = daemonFixture('herald-startup-')

  it('should be ready after reading a few index keys whatever the chunk count, and serve the held release from its persisted have-bitmap', async () => {
    const seed = await fx.start('seed', { seed: true })
    const input = join(fx.dir, 'input')
    await mkdir(input)
    await generateRandomRelease({ seed: 5, bytes: 600_000, files: 3, dir: input })
    const pub = await seed.client.publish({ name: 'many@1', dir: input, chunkSize: '64:128:256' })
    expect(pub.chunks).to.be.above(3000)
    const trust = [await seed.publisherKey()]
    const a = await fx.start('a', { bootstrap: seed.listen, trust })
    expect((await a.fetch('many@1')).state).to.equal('done')

    // restarted, the seed and the lab read a few keys of the index (release records, pending jobs), not one per chunk
    let readsAtReady = 0
    for (const d of [seed, a]) {
      await d.stop()
      await d.launch()
      readsAtReady = (await d.client.status()).store.indexReads as number
      expect(readsAtReady).to.be.below(50)
    }
    // with the seed gone, a new lab fetches the whole release from the restarted lab: its ledger opens on the
    // first have request, from the bitmap the store kept, and says every chunk is held
    await seed.stop()
    const b = await fx.start('b', { bootstrap: a.listen, trust, config: { seeds: [seed.peerId] } })
    const done = await b.fetch('many@1')
    expect(done.state).to.equal('done')
    expect(done.wireBytes.peer).to.be.above(0)
    expect(done.wireBytes.seed).to.equal(0)
    // serving reads one location per chunk sent; opening the ledger read the bitmap, not the index again
    // (re-tracking the release would have read one more key per chunk)
    const served = ((await a.client.status()).store.indexReads as number) - readsAtReady
    expect(served).to.be.below(pub.chunks + 100)
  })
})
