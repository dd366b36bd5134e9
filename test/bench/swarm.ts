// `npm run bench:swarm -- [--peers 8] [--size 256MiB] [--cap 50MB] [--incompressible] [--baseline aria2|none]`:
// release day. One seed with a capped upload and N daemons (separate processes, each on its own loopback
// address 127.0.0.x) all fetch a fresh release at once; then, in the same invocation, the same shape as a
// BitTorrent swarm (../shared/bench/bt-swarm.sh, aria2 by default: random data, so compare it with
// --incompressible). Prints progress to stderr and, last on stdout, one JSON line:
// {seedShare, allDoneSeconds, allVerifiedSeconds, limitSeconds, firstDoneSeconds, peerTradeStartSeconds, releaseBytes,
//  seedCpuSeconds, peerCpuSeconds (mean), totalCpuSeconds, floorCpuSeconds, floorSeconds, cpuOverFloor, peerPeakRssMiB, requestsPerPeer (chunk-batch requests), peers, capBytesPerSec}
import '../../protocol/polyfill.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { generateRelease } from '../fixtures/release-gen.js'
import { floorCpuSeconds, measurePrimitives } from './floor.js'
import { findBtSwarm, runBtBaseline, type BtBaseline } from './bt-baseline.js'
import { generateRandomRelease } from '../fixtures/random-release.js'

function parseSize (s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(s.trim())
  if (m == null) throw new Error(`not a size: ${s}`)
  const unit = (m[2] ?? 'b').toLowerCase()
  const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 }
  return Math.round(Number(m[1]) * mult[unit])
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', default: '8' },
      size: { type: 'string', default: '256MiB' },
      cap: { type: 'string', default: '50MB' },
      keep: { type: 'boolean', default: false },
      incompressible: { type: 'boolean', default: false },
      baseline: { type: 'string', default: 'aria2' }
    }
  })
  const peers = Number(values.peers)
  const cores = availableParallelism()
  const size = parseSize(values.size!)
  const cap = parseSize(values.cap!)
  const dir = await mkdtemp(join(tmpdir(), 'herald-bench-swarm-'))
  const daemons: DaemonProcess[] = []
  const log = (msg: string): void => { process.stderr.write(msg + '\n') }
  try {
    log(`generating a ${(size / 2 ** 20).toFixed(0)} MiB release…`)
    const input = join(dir, 'release')
    if (values.incompressible === true) await generateRandomRelease({ seed: 7, bytes: size, files: 4, dir: input })
    else await generateRelease({ seed: 7, entries: Math.max(1, Math.round(size / 1_030)), dir: input })
    const primitives = await measurePrimitives(input, dir)
    log(`primitive costs, ns per byte: ${Object.entries(primitives).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`)
    const fetchTuning = { seedDeadlineMs: 300, hedgeAfterMs: 4_000, stallTimeoutMs: 60_000 }
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, host: '127.0.0.2', uploadBytesPerSecond: cap, logLevel: 'error', config: { fetch: fetchTuning, limits: JSON.parse(process.env.BENCH_LIMITS ?? '{}'), ...(process.env.BENCH_NO_CHUNK_PROVIDE != null ? { dht: { provideChunks: false } } : {}) } })
    daemons.push(seed)
    const pub = await seed.client.publish({ name: 'bench@1', dir: input })
    log(`published ${pub.bytes} bytes in ${pub.chunks} chunks (${pub.seconds.toFixed(1)} s)`)
    const trust = [await seed.publisherKey()]
    const nodes = await Promise.all(Array.from({ length: peers }, async (_, i) => {
      const d = await DaemonProcess.start({ dataDir: join(dir, `p${i}`), host: `127.0.0.${i + 3}`, bootstrap: seed.listen, trust, logLevel: 'error', config: { fetch: fetchTuning, limits: JSON.parse(process.env.BENCH_LIMITS ?? '{}'), ...(process.env.BENCH_NO_CHUNK_PROVIDE != null ? { dht: { provideChunks: false } } : {}) } })
      daemons.push(d)
      return d
    }))
    log(`${peers} daemons up; letting connections settle…`)
    await new Promise(resolve => setTimeout(resolve, 3_000))
    const served0 = (await seed.client.status()).served
    const cpu0 = await Promise.all(daemons.map(async d => await d.cpuSeconds()))
    const t0 = performance.now()
    const jobs = await Promise.all(nodes.map(async n => await n.client.startFetch({ name: 'bench@1' })))
    const doneAt: Array<number | undefined> = new Array(peers).fill(undefined)
    // every chunk received and verified (before files are written out)
    const verifiedAt: Array<number | undefined> = new Array(peers).fill(undefined)
    let tradeStart: number | undefined
    while (doneAt.some(d => d === undefined)) {
      await new Promise(resolve => setTimeout(resolve, 100))
      const now = (performance.now() - t0) / 1000
      const ps = await Promise.all(nodes.map(async (n, i) => await n.client.getFetch(jobs[i].id)))
      if (Math.floor(now) !== Math.floor(now - 0.1)) {
        log(`t=${now.toFixed(1)}s ` + ps.map(p => `${p.state.slice(0, 5)}:${Math.round(p.wireBytes.seed / 2 ** 20)}s/${Math.round(p.wireBytes.peer / 2 ** 20)}p/${p.peers}`).join(' '))
      }
      for (const [i, p] of ps.entries()) {
        if (p.state === 'failed') throw new Error(`peer ${i} failed: ${JSON.stringify(p.error)}`)
        if (p.state === 'done' && doneAt[i] === undefined) doneAt[i] = now
        if ((p.state === 'materializing' || p.state === 'done') && verifiedAt[i] === undefined) verifiedAt[i] = now
        if (tradeStart === undefined && p.wireBytes.peer > 0) tradeStart = now
      }
      if (now > 600) throw new Error('did not finish in 600 s')
    }
    const served = (await seed.client.status()).served - served0
    const cpu = (await Promise.all(daemons.map(async d => await d.cpuSeconds()))).map((c, i) => c - cpu0[i])
    const peerCpu = cpu.slice(1)
    // chunk-batch requests each daemon made (herald_fetch_chunks_total counts one per request)
    const byResult: Record<string, number> = {}
    const requests = await Promise.all(nodes.map(async n => {
      const text = await (await fetch(`${n.metricsUrl}/metrics`)).text()
      const lines = text.split('\n').filter(l => l.startsWith('herald_fetch_chunks_total{'))
      for (const l of lines) {
        const key = `${/source="(\w+)"/.exec(l)?.[1]}:${/result="(\w+)"/.exec(l)?.[1]}`
        byResult[key] = (byResult[key] ?? 0) + Number(l.split(' ').pop())
      }
      return lines.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0)
    }))
    log(`chunk-batch requests by source:result, all daemons: ${JSON.stringify(byResult)}`)
    // bytes each daemon verified, received on the wire and served: more than the release verified means duplicates
    const sum = (text: string, name: string): number => text.split('\n').filter(l => l.startsWith(name + '{') || l.startsWith(name + ' ')).reduce((a, l) => a + Number(l.split(' ').pop()), 0)
    const peakRss = await Promise.all(nodes.map(async d => await d.peakRssBytes()))
    const moved = { wire: 0, verified: 0, served }
    for (const [i, n] of nodes.entries()) {
      const text = await (await fetch(`${n.metricsUrl}/metrics`)).text()
      const [wire, verified, sent] = ['herald_fetch_received_bytes_total', 'herald_fetch_verified_bytes_total', 'herald_serve_sent_bytes_total'].map(m => sum(text, m))
      moved.wire += wire
      moved.verified += verified
      moved.served += sent
      const mib = (b: number): string => (b / 2 ** 20).toFixed(1)
      log(`daemon ${i}: peak RSS ${(peakRss[i] / 2 ** 20).toFixed(0)} MiB, verified ${mib(verified)} MiB, wire in ${mib(wire)} MiB, served ${mib(sent)} MiB`)
    }
    const floorCpu = floorCpuSeconds(primitives, moved)
    log(`floor: ${(moved.wire / 2 ** 20).toFixed(0)} MiB on the wire, ${(moved.verified / 2 ** 20).toFixed(0)} MiB verified, ${(moved.served / 2 ** 20).toFixed(0)} MiB served cost ${floorCpu.toFixed(1)} CPU-s at the primitives' prices, ${(floorCpu / cores).toFixed(1)} s on ${cores} cores`)
    const result = {
      seedShare: +(served / pub.bytes).toFixed(3),
      allDoneSeconds: +Math.max(...doneAt as number[]).toFixed(2),
      allVerifiedSeconds: +Math.max(...verifiedAt as number[]).toFixed(2),
      limitSeconds: +(1.15 * pub.bytes / cap).toFixed(2),
      firstDoneSeconds: +Math.min(...doneAt as number[]).toFixed(2),
      peerTradeStartSeconds: tradeStart === undefined ? null : +tradeStart.toFixed(2),
      releaseBytes: pub.bytes,
      // CPU seconds used during the fetch: on a small machine the sum over all processes bounds the time
      seedCpuSeconds: +cpu[0].toFixed(1),
      peerCpuSeconds: +(peerCpu.reduce((a, b) => a + b, 0) / peers).toFixed(1),
      totalCpuSeconds: +cpu.reduce((a, b) => a + b, 0).toFixed(1),
      // the same bytes at the primitives' prices (test/bench/floor.ts), measured in this run before the daemons started
      floorCpuSeconds: +floorCpu.toFixed(1),
      floorSeconds: +(floorCpu / cores).toFixed(2),
      cpuOverFloor: +(cpu.reduce((a, b) => a + b, 0) / floorCpu).toFixed(1),
      peerPeakRssMiB: Math.round(Math.max(...peakRss) / 2 ** 20),
      requestsPerPeer: Math.round(requests.reduce((a, b) => a + b, 0) / peers),
      peers,
      capBytesPerSec: cap
    }
    log(`seed sent ${(served / 2 ** 20).toFixed(1)} MiB = ${result.seedShare}× the release; all done in ${result.allDoneSeconds} s (target ${result.limitSeconds} s)`)
    // the daemons go before the baseline runs: the two never share the CPU
    await Promise.allSettled(daemons.map(async d => await d.stop()))
    daemons.length = 0
    let baseline: BtBaseline | { engine: string, skipped: string } | undefined
    if (values.baseline !== 'none') {
      const script = await findBtSwarm()
      if (script == null) throw new Error('bt-swarm.sh not found (set BT_SWARM_SH, or --baseline none)')
      log(`baseline: ${values.baseline} on the same shape (${peers} leechers, ${(size / 2 ** 20).toFixed(0)} MiB random data, seed cap ${(cap / 1e6).toFixed(0)} MB/s)…`)
      baseline = await runBtBaseline({ script, engine: values.baseline, sizeMiB: Math.round(size / 2 ** 20), leechers: peers, capMBps: Math.round(cap / 1e6), log })
    }
    const ratios = baseline != null && 'allDoneSeconds' in baseline
      ? {
          allDoneOverBaseline: +(result.allDoneSeconds / baseline.allDoneSeconds).toFixed(2),
          peerCpuOverBaseline: +(result.peerCpuSeconds / baseline.peerCpuSeconds).toFixed(2),
          seedShareOverBaseline: +(result.seedShare / baseline.seedShare).toFixed(2)
        }
      : undefined
    if (ratios != null) log(`vs ${values.baseline}: all done ${ratios.allDoneOverBaseline}×, CPU per downloader ${ratios.peerCpuOverBaseline}×, seed share ${ratios.seedShareOverBaseline}× (${values.incompressible === true ? 'same random data' : 'Herald on compressible text, the baseline on random data: use --incompressible to compare seed shares'})`)
    console.log(JSON.stringify({ ...result, incompressible: values.incompressible === true, baseline, ratios }))
  } finally {
    await Promise.allSettled(daemons.map(async d => await d.stop()))
    if (values.keep !== true) await rm(dir, { recursive: true, force: true })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
