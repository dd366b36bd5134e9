// Honest failures during a fetch, with real heraldd processes on loopback: SIGTERM mid-fetch, a source that
// freezes (SIGSTOP) mid-transfer, and many labs fetching from one seed at once.
import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { generateRelease } from '../fixtures/release-gen.js'
import type { FetchProgress } from '../../daemon/types.js'

/** Resolve with the first progress event of fetch `id` that satisfies `pred` (events, not polling). */
async function untilProgress (d: DaemonProcess, id: string, pred: (p: FetchProgress) => boolean, timeoutMs = 60_000): Promise<FetchProgress> {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort() }, timeoutMs)
  try {
    return await new Promise<FetchProgress>((resolve, reject) => {
      d.client.followFetch(id, p => { if (pred(p)) resolve(p) }, controller.signal).then(
        last => { if (pred(last)) resolve(last); else reject(new Error(`fetch ended (${last.state}) before the awaited progress`)) },
        err => { reject(controller.signal.aborted ? new Error(`no such progress within ${timeoutMs} ms`) : err) }
      )
    })
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
}

describe('fetch faults (real daemons on loopback)', function () {
  this.timeout(180_000)
  let dir: string
  const daemons: DaemonProcess[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-faults-'))
  })

  afterEach(async () => {
    for (const d of daemons) if (d.child?.pid != null && d.child.exitCode == null) d.child.kill('SIGCONT')
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  async function start (name: string, opts: Partial<Parameters<typeof DaemonProcess.start>[0]> = {}): Promise<DaemonProcess> {
    const d = await DaemonProcess.start({ dataDir: join(dir, name), ...opts })
    daemons.push(d)
    return d
  }

  it('should exit 0 on SIGTERM mid-fetch, twice, and resume to a verified release after each restart', async () => {
    const input = join(dir, 'in')
    await generateRelease({ seed: 31, entries: 8_000, dir: input })
    // a capped seed keeps the fetch in flight when the signal comes
    const seed = await start('seed', { seed: true, uploadBytesPerSecond: 512 * 1024 })
    await seed.client.publish({ name: 'term@1', dir: input })
    const lab = await start('lab', { bootstrap: seed.listen, trust: [await seed.publisherKey()] })
    let id = (await lab.client.startFetch({ name: 'term@1' })).id
    for (let round = 0; round < 2; round++) {
      const before = await untilProgress(lab, id, p => p.state === 'fetching' && p.doneChunks >= 2 + round * 4)
      expect(before.state).to.equal('fetching')
      const t0 = Date.now()
      const code = await lab.stop()
      const took = Date.now() - t0
      expect(code, lab.output.slice(-2000)).to.equal(0)
      expect(took, `stop took ${took} ms`).to.be.below(10_000)
      expect(lab.output).to.not.match(/AbortError|Unhandled|uncaught/i)
      await lab.launch()
      const resumed = (await lab.client.status()).fetches.find(f => f.name === 'term@1')
      expect(resumed, 'the interrupted fetch was resumed at start').to.not.equal(undefined)
      id = resumed!.id
    }
    const done = await lab.waitFetch(id, 150_000)
    expect(done.state, JSON.stringify(done.error)).to.equal('done')
    // what was stored before the stops was not fetched again
    expect(done.reusedChunks).to.be.at.least(6)
    expect(done.doneChunks).to.equal(done.totalChunks - done.reusedChunks)
    expect((await lab.client.verify('term@1')).ok).to.equal(true)
  })

})
