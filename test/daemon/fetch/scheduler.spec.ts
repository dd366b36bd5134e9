import { expect } from 'chai'
import { CID } from 'multiformats/cid'
import { sha256 } from '../../../protocol/cid.js'
import { PeerStats } from '../../../daemon/fetch/peer-stats.js'
import { DeltaFailedError, FetchScheduler, type Reply, type SchedulerInit } from '../../../daemon/fetch/scheduler.js'
import { SourceMisbehavedError } from '../../../daemon/fetch/errors.js'
import { drive, ManualClock, turn } from '../../helpers/manual-clock.js'
import type { Source, SourceKind } from '../../../daemon/fetch/source.js'
import { ReleaseSwarm, bitSet } from '../../../daemon/fetch/swarm.js'
import { DiskFullError, StoreClosedError, StoreCorruptError } from '../../../store/errors.js'
import type { ChunkIndex, DeltaIndex } from '../../../protocol/manifest.js'

const CID0 = CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')

function makeChunks (n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => new TextEncoder().encode(`chunk-${i}-`.repeat(50)))
}

function makeIndex (chunks: Uint8Array[]): ChunkIndex {
  const digests = new Uint8Array(chunks.length * 32)
  chunks.forEach((c, i) => digests.set(sha256(c), i * 32))
  const sizes = Uint32Array.from(chunks.map(c => c.byteLength))
  return {
    count: chunks.length,
    digests,
    sizes,
    totalBytes: chunks.reduce((n, c) => n + c.byteLength, 0),
    digestAt: (i: number) => digests.subarray(i * 32, i * 32 + 32),
    indexOf: () => -1
  } as unknown as ChunkIndex
}

function full (n: number): Uint8Array { const b = new Uint8Array(Math.ceil(n / 8)); for (let i = 0; i < n; i++) bitSet(b, i); return b }

type Ask = (peer: string, digests: Uint8Array[], signal: AbortSignal) => AsyncIterable<Reply>

/** what the sources of a test answer: `ask` may be replaced by a test; `origins` are static origins (URL ids) */
interface Net { ask: Ask, window: number, origins: string[], windows: Map<string, number> }

function source (net: Net, id: string, kind: SourceKind): Source {
  return { id, kind, transport: kind === 'origin' ? 'http' : 'libp2p', window: net.windows.get(id) ?? net.window, request: (digests, _sizes, signal) => net.ask(id, digests, signal) }
}

interface Setup { swarm: ReleaseSwarm, chunks: Uint8Array[], init: SchedulerInit, log: Array<{ peer: string, i: number }>, net: Net, clock: ManualClock, run: (s: FetchScheduler, stepMs?: number) => Promise<void> }

function setup (n: number, overrides: Partial<SchedulerInit> = {}, maxInflightPerPeer = 2): Setup {
  const chunks = makeChunks(n)
  const index = makeIndex(chunks)
  const swarm = new ReleaseSwarm(CID0, index, new Uint8Array(Math.ceil(n / 8)))
  const log: Array<{ peer: string, i: number }> = []
  const byDigest = new Map(chunks.map((c, i) => [Buffer.from(sha256(c)).toString('hex'), i]))
  const clock = new ManualClock()
  const net: Net = {
    window: maxInflightPerPeer,
    origins: [],
    windows: new Map(),
    ask: async function * (peer, digests): AsyncGenerator<Reply> {
      for (const d of digests) {
        const i = byDigest.get(Buffer.from(d).toString('hex'))!
        log.push({ peer, i })
        yield { digest: d, status: 'ok', bytes: chunks[i], wireBytes: chunks[i].byteLength }
      }
    }
  }
  const init: SchedulerInit = {
    swarm,
    stats: new PeerStats(),
    sources: {
      forPeer: (peerId, seed) => source(net, peerId, seed ? 'seed' : 'peer'),
      origins: () => net.origins.map(url => source(net, url, 'origin'))
    },
    store: async (i, digest, bytes) => {
      if (Buffer.compare(Buffer.from(sha256(bytes)), Buffer.from(digest)) !== 0) throw Object.assign(new Error('bad'), { code: 'HASH_MISMATCH' })
      swarm.markHave(i)
    },
    onReceived: () => {},
    maxInflight: 8,
    batchSize: 4,
    seedDeadlineMs: 200,
    hedgeAfterMs: 5_000,
    requestTimeoutMs: 5_000,
    stallTimeoutMs: 2_000,
    signal: new AbortController().signal,
    clock,
    ...overrides
  }
  return { swarm, chunks, init, log, net, clock, run: async (s, stepMs = 10) => { await drive(s.run(), clock, stepMs) } }
}

describe('fetch scheduler', () => {
  it('should take every chunk from peers and none from the seed when peers hold them all', async () => {
    const { swarm, init, log, run } = setup(40)
    swarm.setRemote('seed', full(40), true)
    swarm.setRemote('p1', full(40), false)
    swarm.setRemote('p2', full(40), false)
    await run(new FetchScheduler(init))
    expect(swarm.complete).to.equal(true)
    expect(log.filter(r => r.peer === 'seed')).to.have.length(0)
    expect(new Set(log.map(r => r.peer))).to.deep.equal(new Set(['p1', 'p2']))
  })

  it('should ask the seed only for chunks no peer holds, and only after the seed deadline', async () => {
    const { swarm, init, log, net, clock, run } = setup(20)
    const half = new Uint8Array(3)
    for (let i = 0; i < 10; i++) bitSet(half, i)
    swarm.setRemote('seed', full(20), true)
    swarm.setRemote('p1', half, false)
    const t0 = clock.t
    const times: number[] = []
    const request = net.ask
    net.ask = async function * (peer, digests, signal) {
      if (peer === 'seed') times.push(clock.t - t0)
      yield * request(peer, digests, signal)
    }
    await run(new FetchScheduler(init))
    expect(swarm.complete).to.equal(true)
    const fromSeed = log.filter(r => r.peer === 'seed').map(r => r.i).sort((a, b) => a - b)
    expect(fromSeed).to.deep.equal([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    expect(Math.min(...times)).to.be.at.least(200)
  })

  it('should fetch rarest chunks first', async () => {
    const { swarm, init, log, run } = setup(16, { maxInflight: 1, batchSize: 1 }, 1)
    const upper = new Uint8Array(2)
    for (let i = 8; i < 16; i++) bitSet(upper, i)
    swarm.setRemote('p1', full(16), false)
    swarm.setRemote('p2', upper, false)
    // p2 is known to hold chunks 8–15 but is not usable: those chunks are common, 0–7 are rare
    for (let k = 0; k < 3; k++) init.stats.penalize('p2')
    await run(new FetchScheduler(init))
    expect(log.slice(0, 8).map(r => r.i).sort((a, b) => a - b)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7])
    expect(log.every(r => r.peer === 'p1')).to.equal(true)
  })

  it('should penalise a peer that sends bad bytes and complete from another', async () => {
    const { swarm, init, log, net, run } = setup(12)
    swarm.setRemote('liar', full(12), false)
    swarm.setRemote('good', full(12), false)
    const request = net.ask
    net.ask = async function * (peer, digests, signal) {
      if (peer === 'liar') {
        for (const d of digests) yield { digest: d, status: 'ok', bytes: new Uint8Array([1, 2, 3]), wireBytes: 3 }
        return
      }
      yield * request(peer, digests, signal)
    }
    const bad: string[] = []
    init.onMisbehaviour = (peer) => { bad.push(peer) }
    await run(new FetchScheduler(init))
    expect(swarm.complete).to.equal(true)
    expect(bad[0]).to.equal('liar')
    expect(init.stats.get('liar').penalties).to.be.greaterThan(0)
    expect(log.every(r => r.peer === 'good')).to.equal(true)
  })

  it('should fail with NO_SOURCE when nobody delivers', async () => {
    const { swarm, init, net, run } = setup(4, { stallTimeoutMs: 1_000 })
    swarm.setRemote('p1', full(4), false)
    net.ask = async function * (_peer, digests) {
      for (const d of digests) yield { digest: d, status: 'not-found' as const, wireBytes: 0 }
    }
    try {
      await run(new FetchScheduler(init))
      expect.fail('completed')
    } catch (err: any) {
      expect(err.code).to.equal('NO_SOURCE')
    }
  })

  describe('sources', () => {
    it('should ask a static origin last: only after the seed deadline, only for chunks no peer holds', async () => {
      const { swarm, init, log, net, clock, run } = setup(20)
      net.origins = ['http://origin.test']
      const half = new Uint8Array(3)
      for (let i = 0; i < 10; i++) bitSet(half, i)
      swarm.setRemote('p1', half, false)
      const t0 = clock.t
      const times: number[] = []
      const request = net.ask
      net.ask = async function * (peer, digests, signal) {
        if (peer === 'http://origin.test') times.push(clock.t - t0)
        yield * request(peer, digests, signal)
      }
      await run(new FetchScheduler(init))
      expect(swarm.complete).to.equal(true)
      expect(log.filter(r => r.peer === 'http://origin.test').map(r => r.i).sort((a, b) => a - b)).to.deep.equal([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
      expect(log.filter(r => r.peer === 'p1').map(r => r.i).sort((a, b) => a - b)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      expect(Math.min(...times)).to.be.at.least(200)
    })

    it('should complete from an origin alone (no peer, no seed), and stop asking it for what it answered NOT_FOUND', async () => {
      const { swarm, init, log, net, run, chunks } = setup(12, { stallTimeoutMs: 3_000 })
      net.origins = ['http://a.test', 'http://b.test']
      const request = net.ask
      // origin a lacks chunks 0-3 (told by digest: the two origins' requests interleave); b has everything
      const lacking = new Set(chunks.slice(0, 4).map(c => Buffer.from(sha256(c)).toString('hex')))
      net.ask = async function * (peer, digests, signal) {
        if (peer === 'http://a.test') {
          for (const d of digests) {
            if (lacking.has(Buffer.from(d).toString('hex'))) yield { digest: d, status: 'not-found', wireBytes: 0 }
            else yield * request(peer, [d], signal)
          }
          return
        }
        yield * request(peer, digests, signal)
      }
      const notFound: number[] = []
      init.onRequest = (source, result) => { if (source.id === 'http://a.test' && result === 'not_found') notFound.push(1) }
      await run(new FetchScheduler(init))
      expect(swarm.complete).to.equal(true)
      // every chunk stored once; 0-3 came from b
      expect(log.filter(r => r.i < 4).every(r => r.peer === 'http://b.test')).to.equal(true)
      expect(log).to.have.length(12)
      expect(notFound.length).to.be.at.most(4)
    })

    it('should penalise a source whose request throws SourceMisbehavedError, and complete from another', async () => {
      const { swarm, init, log, net, run } = setup(12)
      swarm.setRemote('corrupt', full(12), false)
      swarm.setRemote('good', full(12), false)
      init.stats.recordTransfer('corrupt', 10_000_000, 0.01) // ranked first
      const request = net.ask
      net.ask = async function * (peer, digests, signal) {
        if (peer === 'corrupt') throw new SourceMisbehavedError('bad_hash', 'the bytes do not match the CID')
        yield * request(peer, digests, signal)
      }
      const bad: Array<[string, string]> = []
      init.onMisbehaviour = (peer, reason) => { bad.push([peer, reason]) }
      await run(new FetchScheduler(init))
      expect(swarm.complete).to.equal(true)
      expect(bad[0]).to.deep.equal(['corrupt', 'bad_hash'])
      expect(init.stats.get('corrupt').penalties).to.be.greaterThan(0)
      expect(log.every(r => r.peer === 'good')).to.equal(true)
    })

    it('should keep each source within its own in-flight window', async () => {
      const { swarm, init, net, run } = setup(48, { maxInflight: 16, batchSize: 2 }, 6)
      swarm.setRemote('narrow', full(48), false)
      swarm.setRemote('wide', full(48), false)
      for (const p of ['narrow', 'wide']) init.stats.recordTransfer(p, 1_000_000, 1)
      net.windows.set('narrow', 1)
      const open = new Map<string, number>()
      const peak = new Map<string, number>()
      const request = net.ask
      net.ask = async function * (peer, digests, signal) {
        open.set(peer, (open.get(peer) ?? 0) + 1)
        peak.set(peer, Math.max(peak.get(peer) ?? 0, open.get(peer)!))
        try {
          await turn()
          yield * request(peer, digests, signal)
        } finally { open.set(peer, open.get(peer)! - 1) }
      }
      await run(new FetchScheduler(init))
      expect(swarm.complete).to.equal(true)
      expect(peak.get('narrow')).to.equal(1)
      expect(peak.get('wide')).to.be.greaterThan(1).and.at.most(6)
    })
  })

  describe('delta objects', () => {
    /** n chunks; chunks 0..k*run-1 also have delta objects (entries n..n+k-1), object j for chunks j*run…j*run+run-1 */
    function withDeltas (n: number, k: number, runLength = 1): { swarm: ReleaseSwarm, init: SchedulerInit, log: Array<{ peer: string, e: number }>, bad: Set<number>, run: Setup['run'] } {
      const chunks = makeChunks(n)
      const index = makeIndex(chunks)
      const objects = Array.from({ length: k }, (_, j) => new TextEncoder().encode(`delta-${j}`))
      const odigests = new Uint8Array(k * 32)
      objects.forEach((o, j) => odigests.set(sha256(o), j * 32))
      const deltas: DeltaIndex = {
        count: k,
        digests: odigests,
        sizes: Uint32Array.from(objects, o => o.byteLength),
        targets: Array.from({ length: k }, (_, j) => Int32Array.from({ length: runLength }, (_, m) => j * runLength + m)),
        bases: objects.map(() => [new Uint8Array(32)]),
        kinds: objects.map(() => 'zstd-dict/1'),
        digestAt: (j: number) => odigests.subarray(j * 32, j * 32 + 32)
      }
      const swarm = new ReleaseSwarm(CID0, index, new Uint8Array(Math.ceil((n + k) / 8)), deltas)
      const log: Array<{ peer: string, e: number }> = []
      const bad = new Set<number>()
      const byDigest = new Map<string, number>()
      for (let e = 0; e < n + k; e++) byDigest.set(Buffer.from(swarm.digestAt(e)).toString('hex'), e)
      const base = setup(1)
      base.net.ask = async function * (peer, digests): AsyncGenerator<Reply> {
        for (const d of digests) {
          const e = byDigest.get(Buffer.from(d).toString('hex'))!
          log.push({ peer, e })
          const bytes = e < n ? chunks[e] : objects[e - n]
          yield { digest: d, status: 'ok', bytes, wireBytes: bytes.byteLength }
        }
      }
      const init: SchedulerInit = {
        ...base.init,
        swarm,
        deltaFor: new Map(Array.from({ length: k * runLength }, (_, i) => [i, n + Math.floor(i / runLength)])),
        store: async (e, _digest, _bytes) => {
          if (e >= n) {
            if (bad.has(e)) throw new DeltaFailedError('does not rebuild')
            swarm.markHave(e)
            for (const i of swarm.targetsOf(e)) swarm.markHave(i)
          } else {
            swarm.markHave(e)
          }
        }
      }
      return { swarm, init, log, bad, run: base.run }
    }

    it('should fetch delta objects instead of their chunks, and fall back to a chunk whose delta fails', async () => {
      const { swarm, init, log, bad, run } = withDeltas(12, 6)
      bad.add(12 + 2)
      swarm.setRemote('p1', full(18), false)
      await run(new FetchScheduler(init))
      expect(swarm.complete).to.equal(true)
      const asked = new Set(log.map(r => r.e))
      for (let j = 0; j < 6; j++) expect(asked.has(12 + j), `object ${j}`).to.equal(true)
      // chunks with a working delta were never fetched themselves; the failed one was
      expect([0, 1, 3, 4, 5].filter(i => asked.has(i))).to.deep.equal([])
      expect(asked.has(2)).to.equal(true)
      for (let i = 6; i < 12; i++) expect(asked.has(i)).to.equal(true)
    })

    it('should fetch one object for a run of chunks, and the whole run when its object fails', async () => {
      const { swarm, init, log, bad, run } = withDeltas(12, 3, 3)
      bad.add(12 + 1)
      swarm.setRemote('p1', full(15), false)
      await run(new FetchScheduler(init))
      expect(swarm.complete).to.equal(true)
      const asked = log.map(r => r.e)
      // each object asked once; chunks 0-2 and 6-8 never; object 1's run (3-5) and the chunks without one (9-11) each once
      expect(asked.filter(e => e >= 12).sort()).to.deep.equal([12, 13, 14])
      expect(asked.filter(e => e < 12).sort((a, b) => a - b)).to.deep.equal([3, 4, 5, 9, 10, 11])
    })

    it('should fetch the chunks themselves when no source holds the delta objects', async () => {
      const { swarm, init, log, run } = withDeltas(8, 4)
      const chunksOnly = new Uint8Array(2)
      for (let i = 0; i < 8; i++) bitSet(chunksOnly, i)
      swarm.setRemote('p1', chunksOnly, false)
      await run(new FetchScheduler(init))
      expect(swarm.complete).to.equal(true)
      expect(log.every(r => r.e < 8)).to.equal(true)
      expect(log).to.have.length(8)
    })
  })

  describe('failures, stalls and silent peers (injected clock)', () => {
    /** a request that never answers and ends only when its signal aborts */
    async function * silent (signal: AbortSignal): AsyncGenerator<Reply> {
      await new Promise((_resolve, reject) => {
        if (signal.aborted) { reject(signal.reason); return }
        signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
      })
      yield * [] // never reached: the wait above only ends by rejecting
    }

    for (const [name, make] of [['DISK_FULL', () => new DiskFullError('disk full writing pack-1')], ['STORE_CLOSED', () => new StoreClosedError()], ['STORE_CORRUPT', () => new StoreCorruptError('index points past the pack')]] as const) {
      it(`should fail at once with ${name} when storing fails locally, and penalise no peer`, async () => {
        const { swarm, init, clock, run } = setup(16, { stallTimeoutMs: 30_000 })
        swarm.setRemote('p1', full(16), false)
        swarm.setRemote('seed', full(16), true)
        let stores = 0
        init.store = async () => { stores++; throw make() }
        const t0 = clock.t
        const s = new FetchScheduler(init)
        const err = await run(s).then(() => undefined, (e: any) => e)
        expect(err?.code).to.equal(name)
        expect(clock.t - t0).to.be.below(2_000)
        // nobody is blamed for the local failure
        for (const p of ['p1', 'seed']) {
          const st = init.stats.get(p)
          expect(st.penalties, p).to.equal(0)
          expect(st.failures, p).to.equal(0)
          expect(init.stats.usable(p)).to.equal(true)
        }
        expect(stores).to.be.at.least(1)
        expect(s.openRequests).to.equal(0)
      })
    }

    it('should reject with the abort reason, end every request and leave no rejection unhandled when aborted mid-fetch', async () => {
      const controller = new AbortController()
      const { swarm, init, net } = setup(32, { signal: controller.signal, maxInflight: 16 }, 8)
      for (const p of ['p1', 'p2', 'p3']) swarm.setRemote(p, full(32), false)
      // every peer is known to deliver: full slots, requests hang
      for (const p of ['p1', 'p2', 'p3']) init.stats.recordTransfer(p, 1, 1)
      let started = 0
      let ended = 0
      let threeStarted: () => void = () => {}
      const third = new Promise<void>(resolve => { threeStarted = resolve })
      net.ask = async function * (_peer, _digests, signal) {
        if (++started === 3) threeStarted()
        try { yield * silent(signal) } finally { ended++ }
      }
      const unhandled: unknown[] = []
      const onUnhandled = (err: unknown): void => { unhandled.push(err) }
      process.on('unhandledRejection', onUnhandled)
      try {
        const s = new FetchScheduler(init)
        const running = s.run()
        await third
        const reason = Object.assign(new Error('daemon stopping'), { code: 'SHUTTING_DOWN' })
        controller.abort(reason)
        const err = await running.then(() => undefined, (e: any) => e)
        expect(err).to.equal(reason)
        expect(s.openRequests).to.equal(0)
        expect(ended).to.equal(started)
        // a rejection nobody handled is reported after the microtasks of its turn
        await turn()
        await turn()
        expect(unhandled).to.deep.equal([])
      } finally {
        process.off('unhandledRejection', onUnhandled)
      }
    })

    it('should return as soon as every chunk is in, ending requests still open', async () => {
      const { swarm, init, net, clock } = setup(8, { requestTimeoutMs: 600_000, stallTimeoutMs: 600_000, hedgeAfterMs: 5_000 }, 1)
      swarm.setRemote('slow', full(8), false)
      swarm.setRemote('fast', full(8), false)
      init.stats.recordTransfer('slow', 1_000, 0.001) // ranked first
      init.stats.recordTransfer('fast', 1, 1)
      const request = net.ask
      let slowAborted = false
      net.ask = async function * (peer, digests, signal) {
        if (peer === 'slow') {
          try { yield * silent(signal) } finally { slowAborted = signal.aborted }
          return
        }
        yield * request(peer, digests, signal)
      }
      const s = new FetchScheduler(init)
      const t0 = clock.t
      await drive(s.run(), clock, 100)
      expect(swarm.complete).to.equal(true)
      // the slow request's chunks went to the other peer after its stall deadline; it was ended, not waited for
      expect(slowAborted).to.equal(true)
      expect(s.openRequests).to.equal(0)
      expect(clock.t - t0).to.be.below(5_000)
    })

    it('should route around a peer that froze mid-transfer within a few seconds of its last reply', async () => {
      const { swarm, init, log, net, clock } = setup(40, { requestTimeoutMs: 600_000, stallTimeoutMs: 600_000, hedgeAfterMs: 5_000, batchSize: 2 }, 2)
      swarm.setRemote('frozen', full(40), false)
      swarm.setRemote('other', full(40), false)
      const request = net.ask
      let frozenAt = 0
      let askedAfterFreeze = 0
      let lastTransfer = 0
      net.ask = async function * (peer, digests, signal) {
        if (peer === 'frozen') {
          if (frozenAt !== 0) askedAfterFreeze++
          // delivers its first 6 chunks promptly, then stops answering (SIGSTOP)
          if (log.filter(r => r.peer === 'frozen').length >= 6) {
            if (frozenAt === 0) frozenAt = clock.t
            yield * silent(signal)
            return
          }
        }
        for await (const r of request(peer, digests, signal)) {
          if (peer === 'other') lastTransfer = clock.t
          yield r
        }
      }
      // the frozen peer is the faster one at first
      init.stats.recordTransfer('frozen', 10_000_000, 0.01)
      init.stats.recordTransfer('other', 1_000, 1)
      const s = new FetchScheduler(init)
      await drive(s.run(), clock, 50)
      expect(swarm.complete).to.equal(true)
      expect(frozenAt).to.be.greaterThan(0)
      // time lost to the frozen peer: its stall deadline (MIN_STALL_MS for a peer that answered promptly) and a tick or two
      const lost = lastTransfer - frozenAt
      expect(lost, `lost ${lost} ms`).to.be.below(2_500)
      // once stalled it got no new request
      expect(askedAfterFreeze).to.be.at.most(1)
    })

    it('should complete from the seed when 32 silent peers claim every chunk, probing each with one small request', async () => {
      const n = 64
      const { swarm, init, log, net, clock } = setup(n, { seedDeadlineMs: 2_000, hedgeAfterMs: 5_000, requestTimeoutMs: 30_000, stallTimeoutMs: 120_000, maxInflight: 16, batchSize: 8 }, 4)
      const sybils = Array.from({ length: 32 }, (_, k) => `sybil-${k}`)
      for (const p of sybils) swarm.setRemote(p, full(n), false)
      swarm.setRemote('seed', full(n), true)
      const request = net.ask
      const asked = new Map<string, number[]>()
      let sybilOpen = 0
      let maxSybilOpen = 0
      net.ask = async function * (peer, digests, signal) {
        if (peer.startsWith('sybil')) {
          asked.set(peer, [...(asked.get(peer) ?? []), digests.length])
          sybilOpen++
          maxSybilOpen = Math.max(maxSybilOpen, sybilOpen)
          try { yield * silent(signal) } finally { sybilOpen-- }
          return
        }
        yield * request(peer, digests, signal)
      }
      const t0 = clock.t
      const s = new FetchScheduler(init)
      await drive(s.run(), clock, 50)
      const took = clock.t - t0
      expect(swarm.complete).to.equal(true)
      expect(log.every(r => r.peer === 'seed')).to.equal(true)
      // the same fetch without the silent peers takes the seed deadline (2 s) and a few ticks: at most +10 s with them
      expect(took, `took ${took} ms`).to.be.below(12_000)
      // each silent identity got small probes, one at a time, and a bounded share of the slots
      for (const [peer, sizes] of asked) expect(Math.max(...sizes), peer).to.be.at.most(2)
      expect(maxSybilOpen).to.be.at.most(32)
      expect(s.openRequests).to.equal(0)
    })

    it('should rate an unmeasured peer below a measured one and back off a peer that never delivered for longer each time', () => {
      const stats = new PeerStats()
      stats.recordTransfer('measured', 4 * 1024 * 1024, 1)
      expect(stats.score('new')).to.be.below(stats.score('measured'))
      stats.recordFailure('silent', 0)
      const first = stats.get('silent').backoffUntil
      stats.recordFailure('silent', 0)
      stats.recordFailure('silent', 0)
      expect(stats.get('silent').backoffUntil).to.be.greaterThan(2 * first)
      // a fast-answering peer is stalled after about a second, an unmeasured one after two
      for (let t = 0; t < 10; t++) stats.recordReplyGap('fast', 10, t * 100)
      expect(stats.stallDeadlineMs('fast', 5_000)).to.equal(1_000)
      expect(stats.stallDeadlineMs('unknown', 5_000)).to.equal(2_000)
    })
  })
})
