// The `herald` CLI and the local API against a real daemon.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DaemonProcess, HERALD } from '../helpers/daemon-process.js'
import { generateNextRelease, generateRelease } from '../fixtures/release-gen.js'

const execFileP = promisify(execFile)

async function herald (d: DaemonProcess, args: string[], token = d.token): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [HERALD, '--api', d.apiUrl, '--token', token, ...args], { env: { ...process.env, HERALD_API: '', HERALD_API_TOKEN: '' } })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err: any) {
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

describe('herald CLI and local API', function () {
  this.timeout(120_000)
  let dir: string
  let seed: DaemonProcess

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-cli-'))
    seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true })
    await generateRelease({ seed: 9, entries: 1_500, dir: join(dir, 'in') })
  })

  after(async () => {
    await seed?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('should publish, list and verify with --json output and exit 0', async () => {
    const pub = await herald(seed, ['--json', 'publish', 'demo@1', join(dir, 'in')])
    expect(pub.code, pub.stderr).to.equal(0)
    expect(JSON.parse(pub.stdout)).to.include({ name: 'demo@1', seq: 1 })
    const ls = await herald(seed, ['--json', 'ls'])
    expect(JSON.parse(ls.stdout).map((r: any) => r.name)).to.deep.equal(['demo@1'])
    const human = await herald(seed, ['ls'])
    expect(human.stdout).to.match(/RELEASE\s+SEQ/).and.match(/demo@1/)
    const verify = await herald(seed, ['verify', 'demo@1'])
    expect(verify.code).to.equal(0)
    expect(verify.stdout).to.match(/OK/)
  })

  it('should publish the next release with delta chunks, or without them on --no-delta, and plan a fetch', async () => {
    await generateNextRelease(join(dir, 'in'), join(dir, 'in2'), { seed: 10, modifyFraction: 0.03 })
    const pub = await herald(seed, ['publish', 'demo@2', join(dir, 'in2')])
    expect(pub.code, pub.stderr).to.equal(0)
    expect(pub.stdout).to.match(/delta against demo@1: \d+ of \d+ new chunks as deltas/)
    const plain = await herald(seed, ['--json', 'publish', '--no-delta', 'plain@2', join(dir, 'in2')])
    expect(plain.code, plain.stderr).to.equal(0)
    expect(JSON.parse(plain.stdout).delta).to.equal(undefined)
    const wrongBase = await herald(seed, ['publish', '--base', 'plain@2', 'demo@3', join(dir, 'in2')])
    expect(wrongBase.code).to.equal(2)
    expect(wrongBase.stderr).to.match(/not a release of demo/)
    // the seed holds everything: nothing to move
    const plan = await herald(seed, ['plan', 'demo@2'])
    expect(plan.code, plan.stderr).to.equal(0)
    expect(plan.stdout).to.match(/to move: 0 B/)
  })

  it('should exit with a meaningful status and only the message on expected errors', async () => {
    const missing = await herald(seed, ['verify', 'nosuch@1'])
    expect(missing.code).to.equal(3)
    expect(missing.stderr.trim()).to.match(/^herald: release nosuch@1 is not in the local store$/)
    const badName = await herald(seed, ['pin', 'NoSuch'])
    expect(badName.code).to.equal(2)
    const noAuth = await herald(seed, ['gc'], 'wrong-token-wrong-token')
    expect(noAuth.code).to.equal(1)
    expect(noAuth.stderr).to.match(/API token/)
    const down = await execFileP(process.execPath, [HERALD, '--api', 'http://127.0.0.1:9', 'status']).catch(e => e)
    expect(down.code).to.equal(5)
    expect(down.stderr).to.match(/cannot reach heraldd/)
  })

  it('should refuse mutating calls without the token and map errors to HTTP statuses', async () => {
    const unauth = await fetch(`${seed.apiUrl}/v1/gc`, { method: 'POST' })
    expect(unauth.status).to.equal(401)
    expect(await unauth.json()).to.include({ code: 'UNAUTHORIZED' })
    const badBody = await fetch(`${seed.apiUrl}/v1/fetch`, { method: 'POST', headers: { authorization: `Bearer ${seed.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ nam: 'x' }) })
    expect(badBody.status).to.equal(400)
    expect(((await badBody.json()) as any).code).to.equal('BAD_REQUEST')
    const notFound = await fetch(`${seed.apiUrl}/v1/fetch/nope`)
    expect(notFound.status).to.equal(404)
    expect(((await notFound.json()) as any).code).to.equal('FETCH_NOT_FOUND')
    const ready = await fetch(`${seed.apiUrl}/readyz`)
    expect(ready.status).to.equal(200)
  })

  it('should expose Prometheus metrics, health and readiness on the metrics listener', async () => {
    const text = await (await fetch(`${seed.metricsUrl}/metrics`)).text()
    for (const name of ['herald_store_chunks', 'herald_fetch_received_bytes_total', 'herald_api_requests_total', 'herald_seed_mode 1', 'process_cpu_seconds_total']) {
      expect(text, name).to.include(name)
    }
    expect((await fetch(`${seed.metricsUrl}/healthz`)).status).to.equal(200)
    expect((await fetch(`${seed.metricsUrl}/nope`)).status).to.equal(404)
  })
})

describe('re-publishing a release', function () {
  this.timeout(120_000)

  it('should pin the new content, so gc keeps it and drops what only the old record used', async () => {
    const { mkdtemp, rm, writeFile, mkdir } = await import('node:fs/promises')
    const dir = await mkdtemp(join(tmpdir(), 'herald-repub-'))
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true })
    try {
      await mkdir(join(dir, 'a'))
      await mkdir(join(dir, 'b'))
      await writeFile(join(dir, 'a', 'f.txt'), 'first content '.repeat(5_000))
      await writeFile(join(dir, 'b', 'f.txt'), 'second content '.repeat(5_000))
      const first = await seed.client.publish({ name: 'rp@1', dir: join(dir, 'a') })
      const second = await seed.client.publish({ name: 'rp@1', dir: join(dir, 'b'), force: true })
      expect(second.seq).to.equal(first.seq + 1)
      const gc = await seed.client.gc()
      expect(gc.chunksFreed).to.equal(first.chunks)
      const verify = await seed.client.verify('rp@1')
      expect(verify.ok).to.equal(true)
      expect(verify.missing).to.equal(0)
    } finally {
      await seed.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
