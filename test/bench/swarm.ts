// `npm run bench:swarm -- [--peers 8] [--size 256MiB] [--cap 50MB] [--incompressible] [--baseline aria2|none] [--scaling]`:
// release day. One seed with a capped upload and N daemons (separate processes, each on its own loopback
// address 127.0.0.x) all fetch a fresh release at once; then, in the same invocation, the same shape as a
// BitTorrent swarm (../shared/bench/bt-swarm.sh, aria2 by default: random data, so compare it with
// --incompressible). Prints progress to stderr and, last on stdout, one JSON line:
// {seedShare, allDoneSeconds, allVerifiedSeconds, limitSeconds, firstDoneSeconds, peerTradeStartSeconds, releaseBytes,
//  seedCpuSeconds, peerCpuSeconds (mean), peerCpuSecondsPerGiB, totalCpuSeconds, floorCpuSeconds, floorSeconds, cpuOverFloor,
//  peerPeakRssMiB, requestsPerPeer (chunk-batch requests), peers, capBytesPerSec, loadAverage, baseline, ratios}
// --scaling: the same release fetched by 1, 2, 4 and 8 downloaders (--counts to change), one run each, each
// followed by the baseline on the same shape; the JSON line is {scaling: [{peers, herald, baseline}],
// cpuPerGiBRatio (CPU per downloader per GiB at the largest count ÷ at the smallest), loadAverage}.
import '../../protocol/polyfill.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateRelease } from '../fixtures/release-gen.js'
import { measurePrimitives } from './floor.js'
import { findBtSwarm, runBtBaseline, type BtBaseline } from './bt-baseline.js'
import { generateRandomRelease } from '../fixtures/random-release.js'
import { parseSize, runHeraldSwarm, type HeraldRunResult } from './swarm-run.js'

type Baseline = BtBaseline | undefined

function loadAverage (): number[] { return loadavg().map(l => +l.toFixed(2)) }

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', default: '8' },
      size: { type: 'string', default: '256MiB' },
      cap: { type: 'string', default: '50MB' },
      keep: { type: 'boolean', default: false },
      incompressible: { type: 'boolean', default: false },
      baseline: { type: 'string', default: 'aria2' },
      scaling: { type: 'boolean', default: false },
      counts: { type: 'string', default: '1,2,4,8' }
    }
  })
  const cores = availableParallelism()
  const size = parseSize(values.size!)
  const cap = parseSize(values.cap!)
  const dir = await mkdtemp(join(tmpdir(), 'herald-bench-swarm-'))
  const log = (msg: string): void => { process.stderr.write(msg + '\n') }
  const script = values.baseline === 'none' ? undefined : await findBtSwarm()
  if (values.baseline !== 'none' && script == null) throw new Error('bt-swarm.sh not found (set BT_SWARM_SH, or --baseline none)')
  const baselineRun = async (peers: number): Promise<Baseline> => {
    if (script == null) return undefined
    log(`baseline: ${values.baseline} on the same shape (${peers} leechers, ${(size / 2 ** 20).toFixed(0)} MiB random data, seed cap ${(cap / 1e6).toFixed(0)} MB/s)…`)
    return await runBtBaseline({ script, engine: values.baseline, sizeMiB: Math.round(size / 2 ** 20), leechers: peers, capMBps: Math.round(cap / 1e6), log })
  }
  try {
    log(`generating a ${(size / 2 ** 20).toFixed(0)} MiB release… (load average ${loadAverage().join(' ')})`)
    const input = join(dir, 'release')
    if (values.incompressible === true) await generateRandomRelease({ seed: 7, bytes: size, files: 4, dir: input })
    else await generateRelease({ seed: 7, entries: Math.max(1, Math.round(size / 1_030)), dir: input })
    const primitives = await measurePrimitives(input, dir)
    log(`primitive costs, ns per byte: ${Object.entries(primitives).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`)

    if (values.scaling === true) {
      const counts = values.counts!.split(',').map(Number)
      const rows: Array<{ peers: number, loadAverage: number[], herald: HeraldRunResult, baseline: Baseline }> = []
      for (const [k, peers] of counts.entries()) {
        const load = loadAverage()
        log(`scaling: ${peers} downloader(s) (load average ${load.join(' ')})`)
        const herald = await runHeraldSwarm({ dir: join(dir, `run${k}`), input, peers, cap, log, primitives, cores })
        await rm(join(dir, `run${k}`), { recursive: true, force: true })
        rows.push({ peers, loadAverage: load, herald, baseline: await baselineRun(peers) })
      }
      log('| downloaders | Herald CPU-s per downloader per GiB | Herald seed CPU-s | Herald all done s | aria2 CPU-s (leecher 1) per GiB | aria2 all done s | load average |')
      for (const r of rows) {
        const b = r.baseline
        log(`| ${r.peers} | ${r.herald.peerCpuSecondsPerGiB} | ${r.herald.seedCpuSeconds} | ${r.herald.allDoneSeconds} | ${b != null ? (b.peerCpuSeconds / (size / 2 ** 30)).toFixed(2) : '—'} | ${b?.allDoneSeconds ?? '—'} | ${r.loadAverage[0]} |`)
      }
      const first = rows[0].herald.peerCpuSecondsPerGiB
      const last = rows[rows.length - 1].herald.peerCpuSecondsPerGiB
      console.log(JSON.stringify({
        scaling: rows.map(r => ({ peers: r.peers, loadAverage: r.loadAverage, herald: r.herald, baseline: r.baseline })),
        cpuPerGiBRatio: +(last / first).toFixed(2),
        incompressible: values.incompressible === true,
        loadAverage: loadAverage()
      }))
      return
    }

    const peers = Number(values.peers)
    const load = loadAverage()
    const result = await runHeraldSwarm({ dir, input, peers, cap, log, primitives, cores })
    const baseline = await baselineRun(peers)
    const ratios = baseline != null
      ? {
          allDoneOverBaseline: +(result.allDoneSeconds / baseline.allDoneSeconds).toFixed(2),
          peerCpuOverBaseline: +(result.peerCpuSeconds / baseline.peerCpuSeconds).toFixed(2),
          seedShareOverBaseline: +(result.seedShare / baseline.seedShare).toFixed(2)
        }
      : undefined
    if (ratios != null) log(`vs ${values.baseline}: all done ${ratios.allDoneOverBaseline}×, CPU per downloader ${ratios.peerCpuOverBaseline}×, seed share ${ratios.seedShareOverBaseline}× (${values.incompressible === true ? 'same random data' : 'Herald on compressible text, the baseline on random data: use --incompressible to compare seed shares'})`)
    console.log(JSON.stringify({ ...result, incompressible: values.incompressible === true, loadAverage: load, baseline, ratios }))
  } finally {
    if (values.keep !== true) await rm(dir, { recursive: true, force: true, maxRetries: 3 })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
