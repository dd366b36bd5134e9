// `npm run bench:scale -- [--counts 10000,100000,1000000] [--chunk-size 64:128:256] [--releases 1]`:
// releases of ~10^4, ~10^5 and ~10^6 chunks (small chunks, so that 10^6 chunks is ~150 MB), each through
// real heraldd processes on loopback: publish time and the seed's peak RSS; restart-to-ready time and RSS
// with the release(s) held; a lab's fetch time and peak RSS. Then the growth from the smallest to the
// largest count of time per chunk and of RSS. Prints a table on stderr and one JSON line per count, and a
// last JSON line with the growth, on stdout.
import '../../protocol/polyfill.js'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { generateRandomRelease } from '../fixtures/random-release.js'

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '10000,100000,1000000' },
    'chunk-size': { type: 'string', default: '64:128:256' },
    releases: { type: 'string', default: '1' }
  }
})
const counts = values.counts!.split(',').map(Number)
const releases = Number(values.releases)
/** mean chunk size of 64:128:256 on random data, measured: bytes per chunk to ask for */
const BYTES_PER_CHUNK = 150
const log = (msg: string): void => { process.stderr.write(msg + '\n') }
const mib = (b: number): number => Math.round(b / 2 ** 20)

async function rssBytes (d: DaemonProcess): Promise<number> {
  const status = await readFile(`/proc/${d.child?.pid ?? 0}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024
}

interface Row {
  chunks: number
  bytes: number
  publishSeconds: number
  publishPeakRssMiB: number
  readySeconds: number
  readyRssMiB: number
  fetchSeconds: number
  fetchPeakRssMiB: number
}

async function one (target: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'herald-bench-scale-'))
  const daemons: DaemonProcess[] = []
  try {
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, host: '127.0.0.2', logLevel: 'error' })
    daemons.push(seed)
    let pub: Awaited<ReturnType<typeof seed.client.publish>> | undefined
    let publishSeconds = 0
    for (let r = 1; r <= releases; r++) {
      const input = join(dir, `release${r}`)
      await generateRandomRelease({ seed: 11 + r, bytes: target * BYTES_PER_CHUNK, files: 8, dir: input })
      const t = performance.now()
      pub = await seed.client.publish({ name: `scale@${r}`, dir: input, chunkSize: values['chunk-size'] })
      publishSeconds = (performance.now() - t) / 1000
      await rm(input, { recursive: true, force: true })
      log(`  published scale@${r}: ${pub.chunks} chunks, ${mib(pub.bytes)} MiB in ${publishSeconds.toFixed(1)} s`)
    }
    const publishPeakRss = await seed.peakRssBytes()
    // restart: from spawn to the ready line, with every release held
    await seed.stop()
    const t0 = performance.now()
    await seed.launch()
    const readySeconds = (performance.now() - t0) / 1000
    const readyRss = await rssBytes(seed)
    const lab = await DaemonProcess.start({ dataDir: join(dir, 'lab'), host: '127.0.0.3', bootstrap: seed.listen, trust: [await seed.publisherKey()], logLevel: 'error' })
    daemons.push(lab)
    const t1 = performance.now()
    const done = await lab.fetch(`scale@${releases}`, 3_600_000)
    if (done.state !== 'done') throw new Error(`fetch ${done.state}: ${JSON.stringify(done.error)}`)
    const fetchSeconds = (performance.now() - t1) / 1000
    const fetchPeakRss = await lab.peakRssBytes()
    const p = pub as NonNullable<typeof pub>
    return { chunks: p.chunks, bytes: p.bytes, publishSeconds: +publishSeconds.toFixed(2), publishPeakRssMiB: mib(publishPeakRss), readySeconds: +readySeconds.toFixed(2), readyRssMiB: mib(readyRss), fetchSeconds: +fetchSeconds.toFixed(2), fetchPeakRssMiB: mib(fetchPeakRss) }
  } finally {
    for (const d of daemons) await d.stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

const rows: Row[] = []
for (const n of counts) {
  log(`~${n} chunks (load average ${loadavg()[0].toFixed(1)})`)
  const row = await one(n)
  rows.push(row)
  console.log(JSON.stringify(row))
}
log('\n| chunks | publish s | publish peak RSS MiB | restart→ready s | RSS ready MiB | fetch s | fetch peak RSS MiB |')
log('|---|---|---|---|---|---|---|')
for (const r of rows) log(`| ${r.chunks} | ${r.publishSeconds} | ${r.publishPeakRssMiB} | ${r.readySeconds} | ${r.readyRssMiB} | ${r.fetchSeconds} | ${r.fetchPeakRssMiB} |`)
if (rows.length > 1) {
  const [a, b] = [rows[0], rows[rows.length - 1]]
  const growth = {
    from: a.chunks,
    to: b.chunks,
    publishTimePerChunk: +((b.publishSeconds / b.chunks) / (a.publishSeconds / a.chunks)).toFixed(2),
    fetchTimePerChunk: +((b.fetchSeconds / b.chunks) / (a.fetchSeconds / a.chunks)).toFixed(2),
    readySeconds: +(b.readySeconds / a.readySeconds).toFixed(2),
    readyRss: +(b.readyRssMiB / a.readyRssMiB).toFixed(2),
    fetchPeakRss: +(b.fetchPeakRssMiB / a.fetchPeakRssMiB).toFixed(2),
    releasesHeld: releases,
    loadAverage: +loadavg()[0].toFixed(1)
  }
  log(`growth ${a.chunks} → ${b.chunks}: ${JSON.stringify(growth)} (targets: time per chunk ≤ 1.2×; ready ≤ 1 s and RSS ≤ 256 MiB with three releases of 10^6 held; publish peak ≤ 512 MiB; fetch peak ≤ 384 MiB)`)
  console.log(JSON.stringify(growth))
}
