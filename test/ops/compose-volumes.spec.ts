// The compose demo's volumes, without a Docker engine: the entry-point scripts run as the image's numeric
// user (10001, via setpriv) against directories with the ownership Docker would give them, and a seed
// and a lab started that way must hand over the publisher key through the shared directory.
import { expect } from 'chai'
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const UID = 10001

/** The uid:gid the image runs as, read from the Dockerfile's USER line. */
async function imageUser (): Promise<{ uid: number, gid: number }> {
  const line = (await readFile(join(root, 'Dockerfile'), 'utf8')).split('\n').find(l => l.startsWith('USER '))
  const m = line?.match(/^USER (\d+):(\d+)\s*$/)
  if (m == null) throw new Error(`Dockerfile USER is not numeric uid:gid: ${String(line)}`)
  return { uid: Number(m[1]), gid: Number(m[2]) }
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

interface Run { child: ChildProcess, output: () => string, exited: Promise<number | null> }

describe('compose demo volumes', function () {
  this.timeout(90_000)
  let dir: string
  let env: NodeJS.ProcessEnv
  const running: ChildProcess[] = []

  before(function () {
    if (process.getuid?.() !== 0) {
      // switching to the image's uid needs root; CI runs as root
      if (process.env.CI != null) throw new Error('this test must run as root (it switches to uid 10001)')
      this.skip()
    }
  })

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-compose-'))
    await chmod(dir, 0o755)
    const bin = join(dir, 'bin')
    await mkdir(bin)
    for (const name of ['heraldd', 'herald']) {
      await chmod(join(root, `build/cli/${name}.js`), 0o755)
      await symlink(join(root, `build/cli/${name}.js`), join(bin, name))
    }
    env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_'))), PATH: `${bin}:${process.env.PATH ?? ''}`, HERALD_LOG_LEVEL: 'warn' }
  })

  afterEach(async () => {
    for (const c of running) c.kill('SIGKILL')
    running.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  /** A data directory as the image creates it: owned by the image user, mode 0700. */
  async function dataDir (name: string): Promise<string> {
    const d = join(dir, name)
    await mkdir(d, { mode: 0o700 })
    await chown(d, UID, UID)
    return d
  }

  function asImageUser (args: string[], extraEnv: NodeJS.ProcessEnv): Run {
    const child = spawn('setpriv', [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', 'sh', join(root, 'deploy/docker/entrypoint.sh'), ...args], { env: { ...env, ...extraEnv } })
    running.push(child)
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { out += b.toString() })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    return { child, output: () => out, exited }
  }

  /** Resolve with the ready banner, or reject with the output when the process exits first. */
  async function ready (run: Run): Promise<string> {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no ready banner in 30 s:\n${run.output()}`)) }, 30_000)
      const check = (): void => {
        const line = run.output().split('\n').find(l => l.startsWith('heraldd ') && l.includes(' ready '))
        if (line != null) { clearTimeout(timer); resolve(line) }
      }
      run.child.stdout?.on('data', check)
      void run.exited.then(code => { clearTimeout(timer); reject(new Error(`exited ${String(code)} before ready:\n${run.output()}`)) })
    })
  }

  const listenArgs = ['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--metrics-port', '0']

  it('should run as the numeric user the compose file and chart expect', async () => {
    expect(await imageUser()).to.deep.equal({ uid: UID, gid: UID })
    const compose = YAML.parse(await readFile(join(root, 'docker-compose.yml'), 'utf8'))
    const init = compose.services['shared-init']
    expect(init.user).to.equal('0:0')
    expect(init.entrypoint).to.deep.equal(['init-shared.sh', '/shared', `${UID}:${UID}`])
    expect(compose.services.seed.depends_on['shared-init'].condition).to.equal('service_completed_successfully')
    expect(compose.services.seed.environment.EXPORT_PUBLISHER_KEY_TO).to.equal(compose.services['lab-a'].environment.HERALD_TRUSTED_PUBLISHERS)
    const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8')
    expect(dockerfile).to.match(/chown 10001:10001 [^\n]*\/shared/)
    expect(dockerfile).to.include('deploy/docker/init-shared.sh')
  })

  it('should refuse to start a seed that cannot export its key, naming the fix', async () => {
    // a volume left root-owned (0755) by an older run: the image user cannot write it
    const shared = join(dir, 'shared')
    await mkdir(shared, { mode: 0o755 })
    const seed = asImageUser(listenArgs, { HERALD_SEED: 'true', HERALD_DATA_DIR: await dataDir('seed'), EXPORT_PUBLISHER_KEY_TO: join(shared, 'publisher.pub') })
    expect(await seed.exited).to.equal(2)
    expect(seed.output()).to.include(`${shared} must be writable by uid ${UID}`).and.include('init-shared.sh')
  })

  it('should stop the demo seed on SIGTERM to its PID-1 shell with heraldd\'s own exit status', async () => {
    const data = await dataDir('seed')
    const port = await freePort()
    const child = spawn('setpriv', [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', 'sh', join(root, 'deploy/docker/seed-demo.sh'), '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-port', '0'], {
      env: { ...env, HERALD_SEED: 'true', HERALD_DATA_DIR: data, HERALD_API_PORT: String(port), HERALD_API: `http://127.0.0.1:${port}`, APP_DIR: root, SAMPLE_DIR: join(data, 'sample'), SAMPLE_ENTRIES: '300' }
    })
    running.push(child)
    let out = ''
    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`sample not published in 60 s:\n${out}`)) }, 60_000)
      const onData = (b: Buffer): void => {
        out += b.toString()
        if (out.includes('published sample@v2')) { clearTimeout(timer); resolve() }
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      void exited.then(code => { clearTimeout(timer); reject(new Error(`exited ${String(code)}:\n${out}`)) })
    })
    // docker stop: SIGTERM to PID 1 (the shell) only
    child.kill('SIGTERM')
    expect(await exited, out).to.equal(0)
    // heraldd went with it: its API port is free again
    await new Promise<void>((resolve, reject) => {
      const s = createServer()
      s.once('error', reject)
      s.listen(port, '127.0.0.1', () => { s.close(() => { resolve() }) })
    })
  })

  it('should copy the seed key to a root-owned shared volume after the init step, and a lab should trust it', async () => {
    const shared = join(dir, 'shared')
    await mkdir(shared, { mode: 0o755 }) // a fresh Docker volume: root:root 0755
    // the shared-init service: the script, as root, exactly as compose runs it
    const init = spawn('sh', [join(root, 'deploy/docker/init-shared.sh'), shared, `${UID}:${UID}`], { stdio: 'inherit' })
    expect(await new Promise(resolve => init.once('exit', resolve))).to.equal(0)
    expect((await stat(shared)).uid).to.equal(UID)

    const seedData = await dataDir('seed')
    const key = join(shared, 'publisher.pub')
    const seed = asImageUser(listenArgs, { HERALD_SEED: 'true', HERALD_DATA_DIR: seedData, EXPORT_PUBLISHER_KEY_TO: key })
    const banner = await ready(seed)
    const exported = await readFile(key, 'utf8')
    expect(exported).to.equal(await readFile(join(seedData, 'publisher.pub'), 'utf8'))
    expect((await stat(key)).mode & 0o777).to.equal(0o644)

    // the lab: same uid, the key read from the shared directory (read-only in compose)
    const peerId = banner.match(/peer=(\S+)/)?.[1] ?? ''
    const seedAddr = (banner.match(/listen=(\S+)/)?.[1] ?? '').split(',')[0]
    const lab = asImageUser(listenArgs, { HERALD_DATA_DIR: await dataDir('lab'), HERALD_TRUSTED_PUBLISHERS: key, HERALD_BOOTSTRAP: `${seedAddr}/p2p/${peerId}` })
    const labBanner = await ready(lab)
    expect(labBanner).to.include('seed=false')
    for (const run of [lab, seed]) {
      run.child.kill('SIGTERM')
      expect(await run.exited).to.equal(0)
    }
  })
})
