// A real Prometheus scrapes real daemons; a fetch's bytes by source read back through Prometheus' API.
import { expect } from 'chai'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { generateRelease } from '../fixtures/release-gen.js'

function which (cmd: string): string | undefined {
  try { return execFileSync('sh', ['-c', `command -v ${cmd}`]).toString().trim() || undefined } catch { return undefined }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
    s.on('error', reject)
  })
}

describe('Prometheus scraping heraldd', function () {
  this.timeout(120_000)
  let dir: string
  const daemons: DaemonProcess[] = []
  let prom: ChildProcess | undefined

  before(function () {
    if (which('prometheus') == null) {
      if (process.env.CI != null) throw new Error('prometheus is not installed (apt-get install prometheus)')
      this.skip()
    }
  })

  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-prom-')) })
  afterEach(async () => {
    prom?.kill('SIGKILL')
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  it('should read a fetch\'s bytes by source back through Prometheus', async () => {
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true })
    daemons.push(seed)
    await generateRelease({ seed: 21, entries: 3_000, dir: join(dir, 'in') })
    await seed.client.publish({ name: 'prom@1', dir: join(dir, 'in') })
    const lab = await DaemonProcess.start({ dataDir: join(dir, 'lab'), bootstrap: seed.listen, trust: [await seed.publisherKey()] })
    daemons.push(lab)
    const done = await lab.fetch('prom@1')
    expect(done.state).to.equal('done')

    const port = await freePort()
    const targets = [seed.metricsUrl, lab.metricsUrl].map(u => new URL(u).host)
    await writeFile(join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: herald\n    static_configs:\n      - targets: [${targets.map(t => `"${t}"`).join(', ')}]\n`)
    prom = spawn(which('prometheus')!, [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`
    ], { stdio: 'ignore' })
    const query = async (q: string): Promise<any[]> => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`)
      return ((await res.json()) as any).data.result
    }
    const labInstance = new URL(lab.metricsUrl).host
    let result: any[] = []
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      try {
        result = await query(`sum by (source) (herald_fetch_received_bytes_total{instance="${labInstance}"})`)
        if (result.length > 0) break
      } catch {}
      await new Promise(resolve => setTimeout(resolve, 500))
    }
    const bySource = Object.fromEntries(result.map(r => [r.metric.source, Number(r.value[1])]))
    expect(bySource.seed).to.equal(done.wireBytes.seed)
    expect(done.wireBytes.seed).to.be.greaterThan(0)
    let up: any[] = []
    while (Date.now() < deadline && up.length < 2) {
      up = await query('up{job="herald"}')
      await new Promise(resolve => setTimeout(resolve, 300))
    }
    expect(up.map(r => r.value[1])).to.deep.equal(['1', '1'])
  })
})
