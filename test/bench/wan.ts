// `npm run bench:wan -- [--labs 6] [--size 128MiB] [--baseline aria2|none]` (through test/bench/wan.sh, as
// root): release day on an emulated WAN. wan.sh builds the network (test/bench/wan-net.sh: one network
// namespace per daemon, veth pairs to a router namespace, tc-shaped links: labs 200 Mbit/s down / 50 up, the
// seed 100 up, labs 0 and 1 on one campus with 1 Gbit/s between them) and runs this file inside the router
// namespace. A seed and LABS daemons fetch a fresh incompressible release at once; then aria2 does the same
// in the same namespaces. Nothing is capped in the daemons: the links are the limit, and the CPU is not.
// Prints progress to stderr and, last on stdout, one JSON line:
// {herald: {allDoneSeconds, overBound, seedShare, campus: {lab0FromNeighbour, lab1FromNeighbour, wanCopies}, …},
//  baseline: {same for aria2}, boundSeconds, releaseBytes, labs, rates, loadAverage}
import '../../protocol/polyfill.js'
import { execFile } from 'node:child_process'
import { mkdtemp, open, readdir, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { generateRandomRelease } from '../fixtures/random-release.js'
import { parseSize, runHeraldSwarm, type HeraldRunResult } from './swarm-run.js'
import type { DaemonOptions } from '../helpers/daemon-process.js'

const execFileP = promisify(execFile)
const NET = process.env.WAN_NET ?? ''

/** `100mbit`, `1gbit` (tc's units, 10^6 / 10^9 bits per second) → bytes per second */
function rate (s: string): number {
  const m = /^(\d+(?:\.\d+)?)(kbit|mbit|gbit)$/.exec(s)
  if (m == null) throw new Error(`not a tc rate: ${s}`)
  return Number(m[1]) * { kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2] as 'kbit' | 'mbit' | 'gbit'] / 8
}

async function net (...args: string[]): Promise<string> {
  return (await execFileP('bash', [NET, ...args])).stdout.trim()
}

async function counters (): Promise<Record<string, number>> {
  return Object.fromEntries((await net('stats')).split('\n').map(l => l.split(' ')).map(([k, v]) => [k, Number(v)]))
}

interface CampusFigures {
  /** of the bytes lab i received, the share that came over the campus link from its neighbour */
  lab0FromNeighbour: number
  lab1FromNeighbour: number
  /** bytes that entered the campus from the WAN ÷ the release: 1.0 when every byte crossed the uplink once */
  wanCopies: number
}

function campusFigures (before: Record<string, number>, after: Record<string, number>, release: number): CampusFigures {
  const d = (k: string): number => after[k] - before[k]
  const share = (i: number): number => +(d(`lab${i}_from_campus`) / (d(`lab${i}_from_campus`) + d(`lab${i}_from_wan`))).toFixed(3)
  return { lab0FromNeighbour: share(0), lab1FromNeighbour: share(1), wanCopies: +((d('lab0_from_wan') + d('lab1_from_wan')) / release).toFixed(3) }
}

function nsOptions (ns: string, addr: string): Partial<DaemonOptions> {
  return {
    host: addr,
    wrap: ['ip', 'netns', 'exec', ns],
    // the API and metrics listen on the namespace's address: this process runs in the router namespace
    config: { api: { host: addr, port: 0 }, metrics: { host: addr, port: 0, enabled: true } }
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      labs: { type: 'string', default: '6' },
      size: { type: 'string', default: '128MiB' },
      baseline: { type: 'string', default: 'aria2' },
      keep: { type: 'boolean', default: false }
    }
  })
  if (NET === '') throw new Error('run through test/bench/wan.sh (npm run bench:wan): it builds the namespaces')
  const labs = Number(values.labs)
  const size = parseSize(values.size!)
  const rates = {
    seedUp: rate(process.env.SEED_UP ?? '100mbit'),
    labUp: rate(process.env.LAB_UP ?? '50mbit'),
    labDown: rate(process.env.LAB_DOWN ?? '200mbit'),
    campus: rate(process.env.CAMPUS ?? '1gbit')
  }
  const log = (msg: string): void => { process.stderr.write(msg + '\n') }
  const dir = await mkdtemp(join(tmpdir(), 'herald-bench-wan-'))
  try {
    const load = loadavg().map(l => +l.toFixed(2))
    log(`generating a ${(size / 2 ** 20).toFixed(0)} MiB random release… (load average ${load.join(' ')})`)
    const input = join(dir, 'release')
    await generateRandomRelease({ seed: 7, bytes: size, files: 4, dir: input })
    // The flow-model bound: each byte leaves the seed once (F / seedUp); each lab takes in F (F / labDown);
    // every lab but one campus lab must receive each byte over the WAN, from the seed's and all labs' uplinks.
    const boundSeconds = Math.max(size / rates.seedUp, size / rates.labDown, (labs - 1) * size / (rates.seedUp + labs * rates.labUp))
    log(`flow-model bound for ${labs} labs: ${boundSeconds.toFixed(2)} s`)

    const addr = async (node: string): Promise<string> => await net('addr', node)
    const seedAddr = await addr('seed')
    const labAddrs = await Promise.all(Array.from({ length: labs }, async (_, i) => await addr(`lab${i}`)))
    const c0 = await counters()
    const herald = await runHeraldSwarm({
      dir: join(dir, 'herald'),
      input,
      peers: labs,
      cap: 0,
      log,
      seedOptions: nsOptions('hw-seed', seedAddr),
      peerOptions: i => nsOptions(`hw-lab${i}`, labAddrs[i]),
      settleMs: 5_000
    })
    const c1 = await counters()
    const heraldFigures = summarize(herald, boundSeconds, campusFigures(c0, c1, size), c1.seed_up - c0.seed_up, size)
    log(`Herald: ${JSON.stringify(heraldFigures)}`)
    await rm(join(dir, 'herald'), { recursive: true, force: true })

    let baseline: Record<string, unknown> | undefined
    if (values.baseline === 'aria2') {
      // the same bytes as one file (BitTorrent's single-file torrent)
      const file = join(dir, 'release.bin')
      const out = await open(file, 'w')
      for (const name of (await readdir(input)).sort()) {
        const fh = await open(join(input, name))
        for await (const buf of fh.readableWebStream() as any) await out.write(new Uint8Array(buf))
        await fh.close()
      }
      await out.close()
      const b0 = await counters()
      const line = await net('aria2', join(dir, 'aria2'), file, String(labs))
      const b1 = await counters()
      const a = JSON.parse(line.split('\n').pop() ?? '{}')
      baseline = {
        ...a,
        overBound: +(a.allDoneSeconds / boundSeconds).toFixed(2),
        campus: campusFigures(b0, b1, size),
        seedLinkShare: +((b1.seed_up - b0.seed_up) / size).toFixed(3)
      }
      log(`aria2: ${JSON.stringify(baseline)}`)
    }
    console.log(JSON.stringify({ herald: heraldFigures, baseline, boundSeconds: +boundSeconds.toFixed(2), releaseBytes: size, labs, rates, loadAverage: load }))
  } finally {
    if (values.keep !== true) await rm(dir, { recursive: true, force: true, maxRetries: 3 })
  }
}

function summarize (r: HeraldRunResult, bound: number, campus: CampusFigures, seedLinkBytes: number, size: number): Record<string, unknown> {
  return {
    allDoneSeconds: r.allDoneSeconds,
    firstDoneSeconds: r.firstDoneSeconds,
    doneSeconds: r.doneSeconds,
    overBound: +(r.allDoneSeconds / bound).toFixed(2),
    // chunk bytes the seed served (its own counter) ÷ the release
    seedShare: r.seedShare,
    // everything that left the seed's namespace (TCP/IP, Noise, DHT and control traffic included) ÷ the release
    seedLinkShare: +(seedLinkBytes / size).toFixed(3),
    campus,
    seedCpuSeconds: r.seedCpuSeconds,
    peerCpuSeconds: r.peerCpuSeconds,
    peerTradeStartSeconds: r.peerTradeStartSeconds
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
