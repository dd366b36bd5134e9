// Honest failures during a fetch that are bound by time or load: a source that freezes (SIGSTOP)
// mid-transfer, and many labs fetching from one seed at once. Part of `npm run test:faults`, not of
// `npm test`: their bounds do not hold on a loaded 2-core machine, and the many-labs case still fails
// (docs/RELIABILITY.md).
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

describe('fetch faults, timing-bound (real daemons on loopback)', function () {
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

  it('should route around a source frozen by SIGSTOP mid-transfer, losing at most a few seconds', async () => {
    const input = join(dir, 'in')
    await generateRelease({ seed: 32, entries: 16_000, dir: input })
    const seed = await start('seed', { seed: true })
    await seed.client.publish({ name: 'frozen@1', dir: input })
    const trust = [await seed.publisherKey()]
    // A holds the release and serves it at a capped rate, so the transfer from it lasts
    const a = await start('a', { bootstrap: seed.listen, trust, uploadBytesPerSecond: 1024 * 1024 })
    expect((await a.fetch('frozen@1')).state).to.equal('done')
    // C fetches from A first (peers before the seed); its default stall deadlines apply (hedge cap 5 s)
    const c = await start('c', { bootstrap: [...seed.listen, ...a.listen], trust, config: { seeds: [seed.peerId], fetch: { hedgeAfterMs: 5_000 } } })
    const id = (await c.client.startFetch({ name: 'frozen@1' })).id
    const times: number[] = []
    let last = 0
    let frozenAt = 0
    const follow = c.client.followFetch(id, p => {
      if (p.doneChunks > last) { last = p.doneChunks; times.push(Date.now()) }
    })
    try {
      await untilProgress(c, id, p => p.wireBytes.peer > 0 && p.doneChunks >= 4)
      a.child!.kill('SIGSTOP')
      frozenAt = Date.now()
      const done = await follow
      expect(done.state, JSON.stringify(done.error)).to.equal('done')
      expect(done.doneBytes).to.equal(done.totalBytes - done.reusedBytes)
    } finally {
      a.child!.kill('SIGCONT')
    }
    // the longest wait for the next chunk after the freeze is the time the frozen source cost
    const after = [frozenAt, ...times.filter(t => t > frozenAt)]
    let worst = 0
    for (let k = 1; k < after.length; k++) worst = Math.max(worst, after[k] - after[k - 1])
    console.log(`      frozen source: longest wait for a chunk after SIGSTOP ${worst} ms`)
    expect(worst, `waited ${worst} ms for a chunk`).to.be.below(3_500)
    expect((await c.client.verify('frozen@1')).ok).to.equal(true)
  })

  it('should complete 12 labs fetching from one seed at once, none failing', async function () {
    this.timeout(300_000)
    const input = join(dir, 'in')
    await generateRelease({ seed: 33, entries: 4_000, dir: input })
    const seed = await start('seed', { seed: true })
    await seed.client.publish({ name: 'load@1', dir: input })
    const trust = [await seed.publisherKey()]
    // started four at a time (a loaded 2-core machine starts twelve at once slower than the 30 s start bound)
    const labs: DaemonProcess[] = []
    for (let g = 0; g < 3; g++) labs.push(...await Promise.all(Array.from({ length: 4 }, async (_, k) => await start(`lab${g * 4 + k}`, { bootstrap: seed.listen, trust }))))
    const t0 = Date.now()
    const results = await Promise.all(labs.map(async l => await l.fetch('load@1', 120_000)))
    const failed = results.filter(r => r.state !== 'done')
    console.log(`      12 labs: ${results.length - failed.length} done, ${failed.length} failed in ${Date.now() - t0} ms`)
    expect(failed.map(f => f.error), 'failed fetches').to.deep.equal([])
    for (const r of results) expect(r.doneBytes).to.equal(r.totalBytes)
    for (const l of labs) expect(l.output, l.output.slice(-4000)).to.not.match(/MaxListenersExceededWarning|on garbage collection/)
    expect(seed.output).to.not.match(/MaxListenersExceededWarning|on garbage collection/)
  })
})
