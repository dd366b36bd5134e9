// heraldd refuses a configuration that would fail later, at start, with one line and exit status 2; and
// warns about bootstrap peers it cannot reach.
import { expect } from 'chai'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonProcess, HERALDD } from '../helpers/daemon-process.js'

interface Run { code: number | null, stdout: string, stderr: string }

/** Run heraldd with a clean HERALD_* environment; bounded by a timeout. */
async function heraldd (args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Run> {
  const clean: NodeJS.ProcessEnv = { ...process.env }
  for (const k of Object.keys(clean)) if (k.startsWith('HERALD_')) delete clean[k]
  const child = spawn(process.execPath, [HERALDD, ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString() })
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

function expectConfigError (r: Run, pattern: RegExp): void {
  expect(r.code, r.stderr + r.stdout).to.equal(2)
  const lines = r.stderr.trim().split('\n')
  expect(lines, r.stderr).to.have.length(1)
  expect(lines[0]).to.match(/^heraldd: /).and.match(pattern)
  expect(r.stderr).to.not.match(/\n\s+at /)
}

describe('heraldd start with a bad configuration', function () {
  this.timeout(60_000)
  let dir: string

  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-cfg-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should refuse a --config file that does not exist, exit 2 and create nothing', async () => {
    const data = join(dir, 'data')
    const r = await heraldd(['start', '--config', join(dir, 'cfg', 'nope.json'), '--data-dir', data, '--api-port', '0', '--metrics-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0'])
    expectConfigError(r, /config file .*cfg\/nope\.json \(--config\) does not exist/)
    expect(existsSync(data)).to.equal(false)
    const byEnv = await heraldd(['start', '--data-dir', data], { HERALD_CONFIG: join(dir, 'nope.json') })
    expectConfigError(byEnv, /\(HERALD_CONFIG\) does not exist/)
    expect(existsSync(data)).to.equal(false)
  })

  it('should refuse a trusted key or key file that does not parse', async () => {
    const data = join(dir, 'data')
    expectConfigError(await heraldd(['start', '--data-dir', data, '--trust', 'ed25519:notakey']), /trustedPublishers\.0: "ed25519:notakey" is not a publisher key/)
    await writeFile(join(dir, 'garbage.pub'), 'ssh-ed25519 AAAAC3Nza\n')
    expectConfigError(await heraldd(['start', '--data-dir', data, '--trust', join(dir, 'garbage.pub')]), /key file .*garbage\.pub does not hold a publisher key/)
    expect(existsSync(data)).to.equal(false)
  })

  it('should refuse a bootstrap or listen address that is not a multiaddr, without a stack trace', async () => {
    const data = join(dir, 'data')
    expectConfigError(await heraldd(['start', '--data-dir', data, '--bootstrap', 'seed.example.org:4480']), /bootstrap\.0: "seed\.example\.org:4480" is not a multiaddr.*\(write \/dns4\/seed\.example\.org\/tcp\/4480\)/)
    expectConfigError(await heraldd(['start', '--data-dir', data, '--listen', '127.0.3.4:23031']), /listen\.0: "127\.0\.3\.4:23031" is not a multiaddr.*\(write \/ip4\/127\.0\.3\.4\/tcp\/23031\)/)
  })

  it('should exit 2 on a flag value commander refuses', async () => {
    const r = await heraldd(['start', '--data-dir', join(dir, 'data'), '--api-port', 'eighty'])
    expect(r.code).to.equal(2)
    expect(r.stderr).to.match(/--api-port <port>' argument 'eighty' is invalid/)
    expect(existsSync(join(dir, 'data'))).to.equal(false)
  })

  it('should name every unknown HERALD_ variable', async () => {
    const r = await heraldd(['start', '--data-dir', join(dir, 'data')], { HERALD_APIPORT: '1', HERALD_TRUSTED_PUBLISHER: 'x' })
    expectConfigError(r, /unknown environment variables HERALD_APIPORT, HERALD_TRUSTED_PUBLISHER \(known:/)
  })

  it('should warn, with the address and the reason, when a bootstrap peer cannot be dialled', async () => {
    // a port that was just free: nothing listens there
    const server = createServer()
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    await new Promise<void>(resolve => server.close(() => { resolve() }))
    const addr = `/ip4/127.0.0.1/tcp/${port}`
    const lab = await DaemonProcess.start({ dataDir: join(dir, 'lab'), bootstrap: [addr], logLevel: 'warn' })
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const find = (): string | undefined => lab.output.split('\n').find(l => l.includes('bootstrap dial failed'))
        const timer = setTimeout(() => { reject(new Error(`no bootstrap warning in 20 s:\n${lab.output}`)) }, 20_000)
        const check = (): void => {
          const l = find()
          if (l != null) { clearTimeout(timer); resolve(l) }
        }
        lab.child?.stdout?.on('data', check)
        check()
      })
      const entry = JSON.parse(line)
      expect(entry.level).to.equal(40) // pino's warn
      expect(entry.addr).to.equal(addr)
      expect(entry.err).to.be.a('string').and.not.equal('')
    } finally {
      await lab.stop()
    }
  })

  it('should warn at start when the API or metrics listener is reachable from other hosts, and not on loopback', async () => {
    const open = await DaemonProcess.start({ dataDir: join(dir, 'open'), logLevel: 'warn', config: { api: { host: '0.0.0.0', port: 0 }, metrics: { host: '0.0.0.0', port: 0, enabled: true } } })
    const closed = await DaemonProcess.start({ dataDir: join(dir, 'closed'), logLevel: 'warn' })
    try {
      const warnings = open.output.split('\n').filter(l => l.includes('reachable from other hosts')).map(l => JSON.parse(l))
      expect(warnings.map(w => [w.level, w.api ?? w.metrics])).to.deep.equal([[40, '0.0.0.0'], [40, '0.0.0.0']])
      expect(warnings[0].msg).to.match(/^the api listener is bound to 0\.0\.0\.0.*GET routes answer without the token/)
      expect(closed.output).to.not.include('reachable from other hosts')
    } finally {
      await open.stop()
      await closed.stop()
    }
  })
})
