// `herald fetch` in a pseudo-terminal against a real seed and lab, the checks on `--out`, and the API's
// guards (token on plan, Host header, publish input), with real heraldd processes on loopback.
import { expect } from 'chai'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DaemonProcess, HERALD } from '../helpers/daemon-process.js'
import type { FetchProgress } from '../../daemon/types.js'

const execFileP = promisify(execFile)
const MiB = 1024 * 1024

function cleanEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('HERALD_')) delete env[k]
  return { ...env, ...extra }
}

async function herald (args: string[], opts: { cwd?: string, env?: Record<string, string> } = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [HERALD, ...args], { cwd: opts.cwd, env: cleanEnv(opts.env) })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err: any) {
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

/**
 * Terminal output as the lines a user sees: a redraw (cursor restore ESC 8, cursor to column 1 CSI G, or a
 * carriage return) starts a new line; other ANSI sequences are removed.
 */
function screenLines (raw: string): string[] {
  // eslint-disable-next-line no-control-regex
  return raw.replace(/\x1b\[\d*G|\x1b8/g, '\r').replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '').split(/\r\n|\r|\n/).filter(l => l.trim() !== '')
}

/** `herald …` in a pseudo-terminal of `cols` columns (util-linux script); `onOutput` may write to its stdin. */
async function inPty (args: string[], cols: number, onOutput?: (all: string, stdin: NodeJS.WritableStream) => void, timeoutMs = 90_000): Promise<{ code: number | null, output: string }> {
  const cmd = `stty cols ${cols} rows 24; exec ${[process.execPath, HERALD, ...args].map(a => `'${a}'`).join(' ')}`
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: cleanEnv({ TERM: 'xterm' }), stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (b: Buffer) => { output += b.toString(); onOutput?.(output, child.stdin) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, output }
}

/** A raw HTTP GET with a chosen Host header (fetch() does not let one set it). */
async function getWithHost (url: string, host: string, token?: string): Promise<{ status: number, body: any }> {
  const u = new URL(url)
  return await new Promise((resolve, reject) => {
    const headers: Record<string, string> = {}
    headers.host = host
    if (token != null) headers.authorization = `Bearer ${token}`
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers }, res => {
      let text = ''
      res.on('data', (b: Buffer) => { text += b.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }) })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('herald fetch in a terminal, --out and the API guards', function () {
  this.timeout(180_000)
  let dir: string
  let seed: DaemonProcess
  let lab: DaemonProcess

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-clifetch-'))
    // the seed serves 4 MiB/s, so a 12 MiB fetch takes about 3 s: long enough to see the bar move
    seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, uploadBytesPerSecond: 4 * MiB })
    for (const [name, size] of [['v1', 12 * MiB], ['v2', 16 * MiB], ['v3', 4 * MiB]] as const) {
      await mkdir(join(dir, 'in', name), { recursive: true })
      await writeFile(join(dir, 'in', name, 'data.bin'), randomBytes(size))
    }
    await mkdir(join(dir, 'in', 'tiny'), { recursive: true })
    await writeFile(join(dir, 'in', 'tiny', 'README'), 'a tiny release\n')
    for (const [release, input] of [['demo@1', 'v1'], ['demo@2', 'v2'], ['demo@3', 'v3'], ['tiny@1', 'tiny']]) {
      await seed.client.publish({ name: release, dir: join(dir, 'in', input), delta: false })
    }
    await mkdir(join(dir, 'outs'), { recursive: true })
    lab = await DaemonProcess.start({ dataDir: join(dir, 'lab'), bootstrap: seed.listen, trust: [await seed.publisherKey()], config: { fetch: { outRoots: [join(dir, 'outs')] } } })
  })

  after(async () => {
    await lab?.stop()
    await seed?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('should draw a progress line that fits 80 columns, with byte totals, a rate and an ETA of -- until one is known', async () => {
    const { code, output } = await inPty(['--api', lab.apiUrl, '--token', lab.token, 'fetch', 'demo@1'], 80)
    expect(code, output).to.equal(0)
    const lines = screenLines(output)
    for (const l of lines) expect([...l].length, l).to.be.at.most(80)
    const bars = lines.filter(l => l.startsWith('demo@1 '))
    expect(bars.length, output).to.be.greaterThan(1)
    for (const l of bars) {
      if (/(resolving|planning)…/.test(l)) continue
      expect(l).to.match(/ \d+(\.\d)? (B|KiB|MiB)\/12\.0 MiB /)
      expect(l).to.not.match(/NaN|Infinity|NFs|undefined/)
      expect(l).to.match(/ETA (--|\d+s|\d+m\d\ds)/)
      if (l.includes('--/s')) expect(l).to.include('ETA --')
    }
    // the seed is throttled: within 3 s a rate is measured, and the ETA then is a duration
    expect(bars.some(l => /\d+(\.\d)? (KiB|MiB)\/s {2}ETA \d+s/.test(l)), bars.join('\n')).to.equal(true)
    expect(bars.some(l => /seed/.test(l))).to.equal(true)
    expect(output).to.match(/demo@1: done/)
  })

  it('should say on Ctrl-C that heraldd goes on fetching, exit 130, and the fetch should finish', async () => {
    let sent = false
    const { code, output } = await inPty(['--api', lab.apiUrl, '--token', lab.token, 'fetch', 'demo@2'], 100, (all, stdin) => {
      if (!sent && /demo@2 .*\d+(\.\d)? (B|KiB|MiB)\/16\.0 MiB/.test(all)) { sent = true; stdin.write('\x03') }
    })
    expect(sent, output).to.equal(true)
    expect(code, output).to.equal(130)
    expect(output).to.match(/stopped following; heraldd goes on fetching demo@2/)
    expect(output).to.not.match(/Ctrl-C again/i)
    const running = (await lab.client.status()).fetches.find(f => f.name === 'demo@2')
    expect(running, 'the fetch is still known to heraldd').to.not.equal(undefined)
    const done = await lab.waitFetch(running!.id, 60_000)
    expect(done.state).to.equal('done')
  })

  it('should count in progress.peers the sources that sent bytes, not the holders it knows of', async () => {
    expect((await lab.fetch('demo@3')).state).to.equal('done')
    // B knows two holders, the lab and the seed; the seed is not asked while the lab delivers
    const b = await DaemonProcess.start({ dataDir: join(dir, 'b'), bootstrap: [...lab.listen, ...seed.listen], trust: [await seed.publisherKey()], config: { seeds: [seed.peerId], fetch: { seedDeadlineMs: 20_000 } } })
    try {
      const started = await b.client.startFetch({ name: 'demo@3' })
      const events: FetchProgress[] = []
      const final = await b.client.followFetch(started.id, p => events.push(p))
      expect(final.state).to.equal('done')
      expect(final.wireBytes.seed, 'precondition: only the lab sent bytes').to.equal(0)
      const withBytes = events.filter(e => e.wireBytes.seed + e.wireBytes.peer > 0)
      expect(withBytes.length).to.be.greaterThan(0)
      for (const e of withBytes) expect(e.peers, JSON.stringify(e)).to.equal(1)
    } finally {
      await b.stop()
    }
  })

  it('should resolve a relative --out against the CLI\'s directory, and refuse a non-empty target without --force', async () => {
    const outs = join(dir, 'outs')
    const first = await herald(['--api', lab.apiUrl, '--token', lab.token, '--no-progress', 'fetch', '--out', 'rel', 'demo@3'], { cwd: outs })
    expect(first.code, first.stderr).to.equal(0)
    expect(existsSync(join(outs, 'rel', 'demo', '3', 'data.bin'))).to.equal(true)
    // a directory Herald made is replaced without --force
    const again = await herald(['--api', lab.apiUrl, '--token', lab.token, '--no-progress', 'fetch', '--out', 'rel', 'demo@3'], { cwd: outs })
    expect(again.code, again.stderr).to.equal(0)
    await mkdir(join(outs, 'mine', 'demo', '3'), { recursive: true })
    await writeFile(join(outs, 'mine', 'demo', '3', 'notes.txt'), 'my own notes')
    const refused = await herald(['--api', lab.apiUrl, '--token', lab.token, '--no-progress', 'fetch', '--out', 'mine', 'demo@3'], { cwd: outs })
    expect(refused.code).to.equal(2)
    expect(refused.stderr).to.match(/mine\/demo\/3 exists and is not empty.*--force/)
    expect(await readFile(join(outs, 'mine', 'demo', '3', 'notes.txt'), 'utf8')).to.equal('my own notes')
    const forced = await herald(['--api', lab.apiUrl, '--token', lab.token, '--no-progress', 'fetch', '--force', '--out', 'mine', 'demo@3'], { cwd: outs })
    expect(forced.code, forced.stderr).to.equal(0)
    expect(existsSync(join(outs, 'mine', 'demo', '3', 'notes.txt'))).to.equal(false)
    expect(existsSync(join(outs, 'mine', 'demo', '3', 'data.bin'))).to.equal(true)
    const outside = await herald(['--api', lab.apiUrl, '--token', lab.token, '--no-progress', 'fetch', '--out', '../elsewhere', 'demo@3'], { cwd: outs })
    expect(outside.code).to.equal(2)
    expect(outside.stderr).to.match(/elsewhere is outside the directories this daemon may write releases to/)
    expect(existsSync(join(dir, 'elsewhere'))).to.equal(false)
  })

  it('should refuse an out that is relative, has a .. segment, or leaves the allowed roots through a symlink', async () => {
    const post = async (body: unknown): Promise<{ status: number, code: string }> => {
      const res = await fetch(`${lab.apiUrl}/v1/fetch`, { method: 'POST', headers: { authorization: `Bearer ${lab.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
      return { status: res.status, code: ((await res.json()) as any).code }
    }
    expect(await post({ name: 'demo@3', out: 'relative/dir' })).to.deep.equal({ status: 400, code: 'INVALID_PATH' })
    expect(await post({ name: 'demo@3', out: `${dir}/outs/../seed` })).to.deep.equal({ status: 400, code: 'INVALID_PATH' })
    expect(await post({ name: 'demo@3', out: join(dir, 'seed') })).to.deep.equal({ status: 403, code: 'OUT_NOT_ALLOWED' })
    await symlink(join(dir, 'seed'), join(dir, 'outs', 'link'))
    expect(await post({ name: 'demo@3', out: join(dir, 'outs', 'link', 'x') })).to.deep.equal({ status: 403, code: 'OUT_NOT_ALLOWED' })
    expect(existsSync(join(dir, 'seed', 'x'))).to.equal(false)
    // the data dir is an allowed root without configuration
    expect((await post({ name: 'demo@3', out: join(dir, 'lab', 'copies') })).status).to.equal(202)
  })

  it('should answer plan only with the token, and only under a loopback or configured Host name', async () => {
    const port = new URL(lab.apiUrl).port
    expect((await getWithHost(`${lab.apiUrl}/v1/plan/demo@1`, `127.0.0.1:${port}`)).status).to.equal(401)
    expect((await getWithHost(`${lab.apiUrl}/v1/plan/demo@1`, `127.0.0.1:${port}`, lab.token)).status).to.equal(200)
    const rebound = await getWithHost(`${lab.apiUrl}/v1/status`, `attacker.example:${port}`)
    expect(rebound.status).to.equal(421)
    expect(rebound.body.code).to.equal('MISDIRECTED_HOST')
    expect((await getWithHost(`${lab.apiUrl}/v1/status`, `localhost:${port}`)).status).to.equal(200)
    expect((await getWithHost(`${lab.apiUrl}/v1/status`, `127.0.0.1:${port}`)).status).to.equal(200)
    expect((await getWithHost(`${lab.apiUrl}/v1/status`, `[::1]:${port}`)).status).to.equal(200)
    expect((await getWithHost(`${lab.apiUrl}/healthz`, 'attacker.example')).status).to.equal(200)
  })

  it('should answer publish of a device or a FIFO with a typed 400, and of a missing path with INPUT_NOT_FOUND', async () => {
    const publish = async (path: string): Promise<{ status: number, code: string }> => {
      const res = await fetch(`${seed.apiUrl}/v1/publish`, { method: 'POST', headers: { authorization: `Bearer ${seed.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bad@1', dir: path }) })
      return { status: res.status, code: ((await res.json()) as any).code }
    }
    expect(await publish('/dev/zero')).to.deep.equal({ status: 400, code: 'INVALID_ARGUMENT' })
    await execFileP('mkfifo', [join(dir, 'fifo')])
    expect(await publish(join(dir, 'fifo'))).to.deep.equal({ status: 400, code: 'INVALID_ARGUMENT' })
    expect(await publish(join(dir, 'no-such-dir'))).to.deep.equal({ status: 422, code: 'INPUT_NOT_FOUND' })
  })

  it('should print the plan of a tiny release with the manifest apart and no share above 100%', async () => {
    const r = await herald(['--api', lab.apiUrl, '--token', lab.token, 'plan', 'tiny@1'])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/\n {2}manifest: \d+(\.\d)? (B|KiB)\n/)
    for (const m of r.stdout.matchAll(/(\d+(\.\d)?)% of the release/g)) expect(Number(m[1])).to.be.at.most(100)
    expect(r.stdout).to.match(/chunks to move: \d+ B/)
  })

  it('should label the bytes status and peers count', async () => {
    const status = await herald(['--api', lab.apiUrl, '--token', lab.token, 'status'])
    expect(status.stdout).to.match(/wire bytes since start .*received [\d.]+ \w+ from peers, [\d.]+ \w+ from the seed; served/)
    const peers = await herald(['--api', lab.apiUrl, '--token', lab.token, 'peers'])
    expect(peers.stdout).to.match(/RECEIVED \(DECODED\)\s+SENT \(WIRE\)/)
    expect(peers.stdout).to.match(/received: chunk and delta bytes after decompression; sent: bytes on the wire/)
  })

  it('should read the token from --data-dir over HERALD_DATA_DIR, and name the paths it looked at', async () => {
    const viaDir = await herald(['--api', lab.apiUrl, '--data-dir', join(dir, 'lab'), 'plan', 'tiny@1'], { env: { HERALD_DATA_DIR: join(dir, 'nowhere') } })
    expect(viaDir.code, viaDir.stderr).to.equal(0)
    const viaEnv = await herald(['--api', lab.apiUrl, 'gc'], { env: { HERALD_DATA_DIR: join(dir, 'lab') } })
    expect(viaEnv.code, viaEnv.stderr).to.equal(0)
    const typos = await herald(['--api', lab.apiUrl, '--token', lab.token, 'ls'], { env: { HERALD_DATADIR: dir, HERALD_TOKEN: 'x' } })
    expect(typos.code, typos.stderr).to.equal(0)
    expect(typos.stderr).to.match(/^herald: warning: unknown environment variables HERALD_DATADIR, HERALD_TOKEN /)
    const missing = await herald(['--api', lab.apiUrl, 'gc'], { env: { HERALD_DATA_DIR: join(dir, 'nowhere') } })
    expect(missing.code).to.equal(1)
    expect(missing.stderr.trim()).to.equal(`herald: no API token: looked for ${join(dir, 'nowhere', 'api.token')} (not found); give --token, HERALD_API_TOKEN or --data-dir (the daemon's data directory)`)
    const help = await herald(['--help'])
    expect(help.stdout).to.include('--data-dir').and.include('HERALD_DATA_DIR').and.include('HERALD_API_TOKEN').and.include('HERALD_API ')
    expect(help.stdout).to.match(/Exit status:[\s\S]*\n {2}2 {2}bad usage[\s\S]*\n {2}5 {2}network/)
    const usage = await herald(['fetch', '--bogus', 'demo@1'])
    expect(usage.code).to.equal(2)
    expect(usage.stderr).to.match(/unknown option '--bogus'/)
  })
})
