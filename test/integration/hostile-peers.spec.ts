// Hostile peers against real heraldd processes: scripted js-libp2p nodes speaking Herald's protocols with
// the project's own protocol code. Silent identities that claim every chunk and answer nothing, and a hoarder
// that keeps re-requesting chunks from a super-seeding seed.
import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { parseCid } from '../../protocol/cid.js'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { manifestChunkIndex, startScriptedPeer, type ScriptedPeer } from '../helpers/scripted-peer.js'
import { generateRelease } from '../fixtures/release-gen.js'

describe('hostile peers (real daemons, scripted libp2p peers)', function () {
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

  it('should let labs complete while a hoarder re-requests every chunk from the super-seeding seed every 1.5 s', async () => {
    const input = join(dir, 'in')
    await generateRelease({ seed: 42, entries: 8_000, dir: input })
    const seed = await start('seed', { seed: true })
    const pub = await seed.client.publish({ name: 'hoard@1', dir: input })
    const hoarder = await startScriptedPeer({ dataDir: join(dir, 'hoarder') })
    scripted.push(hoarder)
    await hoarder.connect(seed.listen[0])
    const index = manifestChunkIndex(await hoarder.manifest(seed.peerId, parseCid(pub.manifestCid)))
    const digests = Array.from({ length: index.count }, (_, i) => index.digestAt(i))
    const seedId = peerIdFromString(seed.peerId)
    const rounds: Array<{ ok: number, limited: number }> = []
    let stop = false
    const round = async (): Promise<void> => {
      const r = { ok: 0, limited: 0 }
      for (let o = 0; o < digests.length; o += 32) {
        for await (const reply of hoarder.node.services.chunks.fetch(seedId, digests.slice(o, o + 32), { signal: AbortSignal.timeout(30_000) })) {
          if (reply.status === 'ok') r.ok++
          else if (reply.status === 'rate-limited') r.limited++
        }
      }
      rounds.push(r)
    }
    // the hoarder takes every chunk first, then keeps asking for them again, well within the 4 s grace
    await round()
    expect(rounds[0].ok).to.equal(digests.length)
    const loop = (async () => {
      while (!stop) {
        await new Promise(resolve => setTimeout(resolve, 1_500))
        if (!stop) await round().catch(() => {})
      }
    })()
    try {
      const trust = [await seed.publisherKey()]
      const labs = await Promise.all(['a', 'b'].map(async n => await start(n, { bootstrap: seed.listen, trust, config: { fetch: { stallTimeoutMs: 20_000 } } })))
      const results = await Promise.all(labs.map(async l => await timedFetch(l, 'hoard@1')))
      console.log(`      labs done in ${results.map(r => r.ms).join(', ')} ms; hoarder rounds (served/rate-limited): ${rounds.map(r => `${r.ok}/${r.limited}`).join(' ')}`)
      for (const r of results) expect(r.state, JSON.stringify(r.error)).to.equal('done')
    } finally {
      stop = true
      await loop
    }
    // re-asking within the grace bought the hoarder no second copy: some of its repeats were refused
    const limited = rounds.slice(1).reduce((n, r) => n + r.limited, 0)
    expect(limited).to.be.greaterThan(0)
  })
})
