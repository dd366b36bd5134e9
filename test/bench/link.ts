// `npm run bench:link -- [--size 1GiB]`: one seed → one lab over loopback, nothing capped, an incompressible
// release, three ways in the same run:
//   libp2p  the lab fetches over the libp2p chunk exchange (TCP + Noise + Yamux; fetch.httpPeers=false)
//   http    the lab fetches over the seed's announced HTTP chunk listener (libp2p for record, manifest, haves)
//   aria2   aria2c downloads the release's files from a Debian nginx serving them (a plain HTTP download)
// Each lab runs alone (the previous one is stopped first, so it cannot serve the next). For each: MB/s of
// release bytes (to every chunk verified, and to the files written out) and the lab's CPU-seconds per GiB.
// Prints progress to stderr and, last on stdout, one JSON line.
import '../../protocol/polyfill.js'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { freePort, startNginx } from '../helpers/nginx.js'
import { untilProgress, metricSum } from '../helpers/progress.js'
import { generateRandomRelease } from '../fixtures/random-release.js'

const execFileP = promisify(execFile)
const GIB = 1024 ** 3

function parseSize (s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(s.trim())
  if (m == null) throw new Error(`not a size: ${s}`)
  const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 }
  return Math.round(Number(m[1]) * mult[(m[2] ?? 'b').toLowerCase()])
}

interface PathResult { path: string, verifiedMBps?: number, doneMBps: number, labCpuPerGiB: number, seedCpuPerGiB?: number, seconds: number, httpShare?: number }

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '1GiB' }, keep: { type: 'boolean', default: false } } })
  const size = parseSize(values.size!)
  const dir = await mkdtemp(join(tmpdir(), 'herald-bench-link-'))
  const log = (msg: string): void => { process.stderr.write(msg + '\n') }
  const daemons: DaemonProcess[] = []
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined
  try {
    log(`generating a ${(size / 2 ** 20).toFixed(0)} MiB incompressible release…`)
    const input = join(dir, 'release')
    await generateRandomRelease({ seed: 11, bytes: size, files: 4, dir: input })
    const port = await freePort()
    const tuning = { fetch: { seedDeadlineMs: 0 } }
    // one lab: super-seeding would only slow a single client down
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, logLevel: 'error', config: { superSeed: false, http: { enabled: true, host: '127.0.0.1', port }, ...tuning } })
    daemons.push(seed)
    const pub = await seed.client.publish({ name: 'link@1', dir: input })
    log(`published ${pub.bytes} bytes in ${pub.chunks} chunks (${pub.seconds.toFixed(1)} s)`)
    const trust = [await seed.publisherKey()]
    const results: PathResult[] = []

    for (const path of ['libp2p', 'http'] as const) {
      const lab = await DaemonProcess.start({ dataDir: join(dir, `lab-${path}`), bootstrap: seed.listen, trust, logLevel: 'error', config: { fetch: { ...tuning.fetch, httpPeers: path === 'http' } } })
      daemons.push(lab)
      const http0 = await metricSum(seed, 'herald_serve_http_sent_bytes_total')
      const [lab0, seed0] = [await lab.cpuSeconds(), await seed.cpuSeconds()]
      const t0 = performance.now()
      const job = await lab.client.startFetch({ name: 'link@1' })
      const verified = await untilProgress(lab, job.id, p => p.state === 'materializing' || p.state === 'done', 600_000)
      const verifiedAt = (performance.now() - t0) / 1000
      const done = verified.state === 'done' ? verified : await lab.waitFetch(job.id, 600_000)
      const seconds = (performance.now() - t0) / 1000
      if (done.state !== 'done') throw new Error(`${path}: ${JSON.stringify(done.error)}`)
      const [lab1, seed1] = [await lab.cpuSeconds(), await seed.cpuSeconds()]
      const overHttp = await metricSum(seed, 'herald_serve_http_sent_bytes_total') - http0
      const r: PathResult = {
        path,
        verifiedMBps: round(size / 1e6 / verifiedAt),
        doneMBps: round(size / 1e6 / seconds),
        labCpuPerGiB: round((lab1 - lab0) / (size / GIB)),
        seedCpuPerGiB: round((seed1 - seed0) / (size / GIB)),
        seconds: round(seconds),
        // the first requests may go over libp2p while the seed's announced address is looked up
        httpShare: round(overHttp / size)
      }
      log(`${path}: ${JSON.stringify(r)}`)
      if (path === 'http' && overHttp < 0.5 * size) throw new Error(`the HTTP path carried only ${overHttp} of ${size} bytes`)
      if (path === 'libp2p' && overHttp > 0) throw new Error('the libp2p path sent bytes over HTTP')
      results.push(r)
      // stopped, not killed: a profile (BENCH_NODE_ARGS=--cpu-prof) is written on a clean exit
      await lab.stop()
      daemons.splice(daemons.indexOf(lab), 1)
      await rm(join(dir, `lab-${path}`), { recursive: true, force: true })
    }

    // aria2 over HTTP from nginx, the release's files as they are (the same bytes)
    nginx = await startNginx(dir, input)
    const files = (await readdir(input)).sort()
    const out = join(dir, 'aria2-out')
    await mkdir(out, { recursive: true })
    const list = join(dir, 'aria2.txt')
    await writeFile(list, files.map(f => `${nginx!.url}/${f}`).join('\n') + '\n')
    const t0 = performance.now()
    // bash's `times` prints the user and system time of the finished aria2c (its children line)
    const { stdout } = await execFileP('bash', ['-c', `aria2c -q -i ${list} -d ${out} -j 4 -x 1 --file-allocation=none --allow-overwrite=true --auto-file-renaming=false; times`], { maxBuffer: 1 << 20 })
    const seconds = (performance.now() - t0) / 1000
    const children = stdout.trim().split('\n').pop()!.split(/\s+/).map(t => { const m = /(\d+)m([\d.]+)s/.exec(t)!; return Number(m[1]) * 60 + Number(m[2]) })
    const aria2 = { path: 'aria2', doneMBps: round(size / 1e6 / seconds), labCpuPerGiB: round((children[0] + children[1]) / (size / GIB)), seconds: round(seconds) }
    log(`aria2: ${JSON.stringify(aria2)}`)
    results.push(aria2)
    const by = Object.fromEntries(results.map(r => [r.path, r]))
    const ratios = {
      httpCpuOverAria2: round(by.http.labCpuPerGiB / by.aria2.labCpuPerGiB),
      httpThroughputOverLibp2p: round(by.http.doneMBps / by.libp2p.doneMBps),
      httpCpuOverLibp2p: round(by.http.labCpuPerGiB / by.libp2p.labCpuPerGiB)
    }
    log(`HTTP path vs aria2: lab CPU ${ratios.httpCpuOverAria2}×; HTTP vs libp2p: throughput ${ratios.httpThroughputOverLibp2p}×, lab CPU ${ratios.httpCpuOverLibp2p}×`)
    console.log(JSON.stringify({ releaseBytes: size, chunks: pub.chunks, results, ratios }))
  } finally {
    if (nginx != null && nginx.child.exitCode == null) nginx.child.kill('SIGTERM')
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    if (values.keep !== true) await rm(dir, { recursive: true, force: true })
  }
}

function round (x: number): number { return Math.round(x * 100) / 100 }

main().catch(err => { console.error(err); process.exit(1) })
