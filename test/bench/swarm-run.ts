// One release-day run of Herald daemons, shared by the loopback (swarm.ts) and emulated-WAN (wan.ts)
// benchmarks: a seed publishes `input`, N daemons start, all fetch at once, and the run is measured from
// the daemons' own API and metrics (done times, seed egress, CPU from /proc, bytes by source).
import { join } from 'node:path'
import { DaemonProcess, type DaemonOptions } from '../helpers/daemon-process.js'
import { floorCpuSeconds, type PrimitiveCosts } from './floor.js'

export interface HeraldRunOptions {
  dir: string
  input: string
  peers: number
  /** the seed's upload cap in bytes per second (0: none, e.g. when the link is shaped instead) */
  cap: number
  log: (msg: string) => void
  primitives?: PrimitiveCosts
  cores?: number
  /** extra options for the seed and for daemon i (hosts, network namespaces, API addresses) */
  seedOptions?: Partial<DaemonOptions>
  peerOptions?: (i: number) => Partial<DaemonOptions>
  /** how long the daemons may connect before the fetches start */
  settleMs?: number
  timeoutS?: number
}

export interface HeraldRunResult {
  seedShare: number
  allDoneSeconds: number
  allVerifiedSeconds: number
  limitSeconds: number
  firstDoneSeconds: number
  peerTradeStartSeconds: number | null
  releaseBytes: number
  seedCpuSeconds: number
  peerCpuSeconds: number
  /** mean CPU-seconds of one downloader per GiB of release (the scaling figure of issue 19) */
  peerCpuSecondsPerGiB: number
  totalCpuSeconds: number
  floorCpuSeconds?: number
  floorSeconds?: number
  cpuOverFloor?: number
  peerPeakRssMiB: number
  requestsPerPeer: number
  peers: number
  capBytesPerSec: number
  /** per downloader: seconds to done */
  doneSeconds: number[]
}

/** `256MiB`, `50MB`, `1.5GiB` → bytes */
export function parseSize (s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(s.trim())
  if (m == null) throw new Error(`not a size: ${s}`)
  const unit = (m[2] ?? 'b').toLowerCase()
  const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 }
  return Math.round(Number(m[1]) * mult[unit])
}

const FETCH_TUNING = { seedDeadlineMs: 300, hedgeAfterMs: 4_000, stallTimeoutMs: 60_000 }

function benchConfig (): Record<string, any> {
  return {
    fetch: FETCH_TUNING,
    limits: JSON.parse(process.env.BENCH_LIMITS ?? '{}'),
    ...(process.env.BENCH_NO_CHUNK_PROVIDE != null ? { dht: { provideChunks: false } } : {})
  }
}

function mergeOptions (base: DaemonOptions, extra: Partial<DaemonOptions> | undefined): DaemonOptions {
  if (extra == null) return base
  return { ...base, ...extra, config: { ...base.config, ...extra.config } }
}

/** Sum of a Prometheus counter's samples (all label sets) in a /metrics text. */
export function metricSum (text: string, name: string, filter?: (line: string) => boolean): number {
  return text.split('\n')
    .filter(l => (l.startsWith(name + '{') || l.startsWith(name + ' ')) && (filter?.(l) ?? true))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0)
}

export async function runHeraldSwarm (o: HeraldRunOptions): Promise<HeraldRunResult> {
  const { log, peers, cap } = o
  const daemons: DaemonProcess[] = []
  try {
    const seed = await DaemonProcess.start(mergeOptions({ dataDir: join(o.dir, 'seed'), seed: true, host: '127.0.0.2', uploadBytesPerSecond: cap, logLevel: 'error', config: benchConfig() }, o.seedOptions))
    daemons.push(seed)
    const pub = await seed.client.publish({ name: 'bench@1', dir: o.input })
    log(`published ${pub.bytes} bytes in ${pub.chunks} chunks (${pub.seconds.toFixed(1)} s)`)
    const trust = [await seed.publisherKey()]
    // every start settles before any failure is thrown, so that the finally below stops all that came up
    // in waves of four: nine processes starting at once on a loaded 2-core machine can miss the 30 s banner wait
    const started: Array<PromiseSettledResult<DaemonProcess>> = []
    for (let w = 0; w < peers; w += 4) {
      started.push(...await Promise.allSettled(Array.from({ length: Math.min(4, peers - w) }, async (_, k) => {
        const i = w + k
        const d = await DaemonProcess.start(mergeOptions({ dataDir: join(o.dir, `p${i}`), host: `127.0.0.${i + 3}`, bootstrap: seed.listen, trust, logLevel: process.env.BENCH_LOG_LEVEL ?? 'error', config: benchConfig() }, o.peerOptions?.(i)))
        daemons.push(d)
        return d
      })))
    }
    const failed = started.find(s => s.status === 'rejected')
    if (failed != null) throw failed.reason
    const nodes = started.map(s => (s as PromiseFulfilledResult<DaemonProcess>).value)
    log(`${peers} daemons up; letting connections settle…`)
    await new Promise(resolve => setTimeout(resolve, o.settleMs ?? 3_000))
    const served0 = (await seed.client.status()).served
    const cpu0 = await Promise.all(daemons.map(async d => await d.cpuSeconds()))
    const t0 = performance.now()
    const jobs = await Promise.all(nodes.map(async n => await n.client.startFetch({ name: 'bench@1' })))
    const doneAt: Array<number | undefined> = new Array(peers).fill(undefined)
    // every chunk received and verified (before files are written out)
    const verifiedAt: Array<number | undefined> = new Array(peers).fill(undefined)
    let tradeStart: number | undefined
    let lastLog = 0
    const timeoutS = o.timeoutS ?? 600
    while (doneAt.some(d => d === undefined)) {
      await new Promise(resolve => setTimeout(resolve, 100))
      const now = (performance.now() - t0) / 1000
      const ps = await Promise.all(nodes.map(async (n, i) => await n.client.getFetch(jobs[i].id)))
      if (now - lastLog >= 1) {
        lastLog = now
        log(`t=${now.toFixed(1)}s ` + ps.map(p => `${p.state.slice(0, 5)}:${Math.round(p.wireBytes.seed / 2 ** 20)}s/${Math.round(p.wireBytes.peer / 2 ** 20)}p/${p.peers}`).join(' '))
      }
      for (const [i, p] of ps.entries()) {
        if (p.state === 'failed') throw new Error(`peer ${i} failed: ${JSON.stringify(p.error)}`)
        if (p.state === 'done' && doneAt[i] === undefined) doneAt[i] = now
        if ((p.state === 'materializing' || p.state === 'done') && verifiedAt[i] === undefined) verifiedAt[i] = now
        if (tradeStart === undefined && p.wireBytes.peer > 0) tradeStart = now
      }
      if (now > timeoutS) throw new Error(`did not finish in ${timeoutS} s`)
    }
    const served = (await seed.client.status()).served - served0
    const cpu = (await Promise.all(daemons.map(async d => await d.cpuSeconds()))).map((c, i) => c - cpu0[i])
    const peerCpu = cpu.slice(1)
    // chunk-batch requests each daemon made (herald_fetch_chunks_total counts one per request)
    const byResult: Record<string, number> = {}
    const texts = await Promise.all(nodes.map(async n => await (await fetch(`${n.metricsUrl}/metrics`)).text()))
    const requests = texts.map(text => {
      const lines = text.split('\n').filter(l => l.startsWith('herald_fetch_chunks_total{'))
      for (const l of lines) {
        const key = `${/source="(\w+)"/.exec(l)?.[1]}:${/result="(\w+)"/.exec(l)?.[1]}`
        byResult[key] = (byResult[key] ?? 0) + Number(l.split(' ').pop())
      }
      return lines.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0)
    })
    log(`chunk-batch requests by source:result, all daemons: ${JSON.stringify(byResult)}`)
    // bytes each daemon verified, received on the wire and served: more than the release verified means duplicates
    const peakRss = await Promise.all(nodes.map(async d => await d.peakRssBytes()))
    const moved = { wire: 0, verified: 0, served }
    for (const [i, text] of texts.entries()) {
      const [wire, verified, sent] = ['herald_fetch_received_bytes_total', 'herald_fetch_verified_bytes_total', 'herald_serve_sent_bytes_total'].map(m => metricSum(text, m))
      moved.wire += wire
      moved.verified += verified
      moved.served += sent
      const mib = (b: number): string => (b / 2 ** 20).toFixed(1)
      log(`daemon ${i}: CPU ${peerCpu[i].toFixed(1)} s, peak RSS ${(peakRss[i] / 2 ** 20).toFixed(0)} MiB, verified ${mib(verified)} MiB, wire in ${mib(wire)} MiB, served ${mib(sent)} MiB`)
    }
    const totalCpu = cpu.reduce((a, b) => a + b, 0)
    const meanPeerCpu = peerCpu.reduce((a, b) => a + b, 0) / peers
    let floor: Pick<HeraldRunResult, 'floorCpuSeconds' | 'floorSeconds' | 'cpuOverFloor'> = {}
    if (o.primitives != null) {
      const floorCpu = floorCpuSeconds(o.primitives, moved)
      const cores = o.cores ?? 2
      log(`floor: ${(moved.wire / 2 ** 20).toFixed(0)} MiB on the wire, ${(moved.verified / 2 ** 20).toFixed(0)} MiB verified, ${(moved.served / 2 ** 20).toFixed(0)} MiB served cost ${floorCpu.toFixed(1)} CPU-s at the primitives' prices, ${(floorCpu / cores).toFixed(1)} s on ${cores} cores`)
      floor = { floorCpuSeconds: +floorCpu.toFixed(1), floorSeconds: +(floorCpu / cores).toFixed(2), cpuOverFloor: +(totalCpu / floorCpu).toFixed(1) }
    }
    const result: HeraldRunResult = {
      seedShare: +(served / pub.bytes).toFixed(3),
      allDoneSeconds: +Math.max(...doneAt as number[]).toFixed(2),
      allVerifiedSeconds: +Math.max(...verifiedAt as number[]).toFixed(2),
      limitSeconds: cap > 0 ? +(1.15 * pub.bytes / cap).toFixed(2) : 0,
      firstDoneSeconds: +Math.min(...doneAt as number[]).toFixed(2),
      peerTradeStartSeconds: tradeStart === undefined ? null : +tradeStart.toFixed(2),
      releaseBytes: pub.bytes,
      // CPU seconds used during the fetch: on a small machine the sum over all processes bounds the time
      seedCpuSeconds: +cpu[0].toFixed(1),
      peerCpuSeconds: +meanPeerCpu.toFixed(1),
      peerCpuSecondsPerGiB: +(meanPeerCpu / (pub.bytes / 2 ** 30)).toFixed(2),
      totalCpuSeconds: +totalCpu.toFixed(1),
      ...floor,
      peerPeakRssMiB: Math.round(Math.max(...peakRss) / 2 ** 20),
      requestsPerPeer: Math.round(requests.reduce((a, b) => a + b, 0) / peers),
      peers,
      capBytesPerSec: cap,
      doneSeconds: doneAt.map(d => +(d as number).toFixed(2))
    }
    log(`seed sent ${(served / 2 ** 20).toFixed(1)} MiB = ${result.seedShare}× the release; all done in ${result.allDoneSeconds} s; ${result.peerCpuSecondsPerGiB} CPU-s per downloader per GiB`)
    return result
  } finally {
    // the daemons go before anything else runs: runs never share the CPU
    await Promise.allSettled(daemons.map(async d => await d.stop()))
  }
}

