// Hostile peers against real heraldd processes: scripted js-libp2p nodes speaking Herald's protocols with
// the project's own protocol code. Silent identities that claim every chunk and answer nothing, and a hoarder
// that keeps re-requesting chunks from a super-seeding seed.
import { expect } from 'chai'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { startScriptedPeer, type ScriptedPeer } from '../helpers/scripted-peer.js'
import { generateRelease } from '../fixtures/release-gen.js'

describe('silent Sybil peers (real daemons, scripted libp2p peers)', function () {
  this.timeout(240_000)
  let dir: string
  const daemons: DaemonProcess[] = []
  const scripted: ScriptedPeer[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-hostile-'))
  })

  afterEach(async () => {
    await Promise.allSettled(scripted.map(async p => await p.stop()))
    scripted.length = 0
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  async function start (name: string, opts: Partial<Parameters<typeof DaemonProcess.start>[0]> = {}): Promise<DaemonProcess> {
    const d = await DaemonProcess.start({ dataDir: join(dir, name), ...opts })
    daemons.push(d)
    return d
  }

  /** a fetch's duration, and when it reached each state (ms from its start) */
  async function timedFetch (d: DaemonProcess, name: string): Promise<{ ms: number, state: string, error?: unknown, states: Record<string, number> }> {
    const t0 = Date.now()
    const states: Record<string, number> = {}
    const started = await d.client.startFetch({ name })
    const r = await d.client.followFetch(started.id, p => { states[p.state] ??= Date.now() - t0 })
    return { ms: Date.now() - t0, state: r.state, error: r.error, states }
  }

  it('should complete a fetch within +10 s of its time without them when 32 silent peers claim every chunk', async () => {
    const input = join(dir, 'in')
    await generateRelease({ seed: 41, entries: 8_000, dir: input })
    // a capped seed makes the transfer last a few seconds: long enough for the lab to hear every claim
    const seed = await start('seed', { seed: true, uploadBytesPerSecond: 1024 * 1024 })
    await seed.client.publish({ name: 'sybil@1', dir: input })
    const trust = [await seed.publisherKey()]

    const base = await start('base', { bootstrap: seed.listen, trust })
    const without = await timedFetch(base, 'sybil@1')
    expect(without.state, JSON.stringify(without.error)).to.equal('done')

    const lab = await start('lab', { bootstrap: seed.listen, trust, env: process.env.TEST_FETCH_DEBUG_LOG != null ? { DEBUG: 'herald:fetch' } : {} })
    const plan = await lab.client.plan('sybil@1')
    let asked = 0
    for (let k = 0; k < 32; k++) {
      const p = await startScriptedPeer({
        dataDir: join(dir, `sybil${k}`),
        claimAll: plan.releaseChunks,
        getStored: async () => { asked++; return await new Promise(() => {}) }
      })
      scripted.push(p)
      await p.connect(lab.listen[0])
    }
    // the lab sees (nearly) all of them before it starts; a loaded machine may lose a handshake or two
    const deadline = Date.now() + 20_000
    while ((await lab.client.peers()).length < 33 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
    const connected = (await lab.client.peers()).length - 1
    expect(connected).to.be.at.least(28)

    const withSybils = await timedFetch(lab, 'sybil@1')
    console.log(`      fetch without silent peers ${without.ms} ms ${JSON.stringify(without.states)}, with ${connected} of them connected ${withSybils.ms} ms ${JSON.stringify(withSybils.states)}; chunk requests they swallowed: ${asked}`)
    if (process.env.TEST_FETCH_DEBUG_LOG != null) await writeFile(process.env.TEST_FETCH_DEBUG_LOG, lab.output)
    expect(withSybils.state, JSON.stringify(withSybils.error)).to.equal('done')
    // they cost at most 10 s (`asked` counts only the requests that got as far as their chunk handler)
    expect(withSybils.ms).to.be.below(without.ms + 10_000)
    expect((await lab.client.verify('sybil@1')).ok).to.equal(true)
  })

})
