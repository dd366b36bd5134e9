// Starts real heraldd processes on loopback, each with its own data directory, for integration tests,
// the demo and the swarm benchmark.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { ApiClient } from '../../daemon/api/client.js'
import { HEAP_FLAGS } from '../../daemon/runtime.js'
import type { FetchProgress } from '../../daemon/types.js'

const execFileP = promisify(execFile)
/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat, 100 on Linux */
const CLOCK_TICKS = 100
const here = dirname(fileURLToPath(import.meta.url))
export const HERALDD = resolve(here, '../../cli/heraldd.js')
export const HERALD = resolve(here, '../../cli/herald.js')

export interface DaemonOptions {
  dataDir: string
  seed?: boolean
  host?: string
  bootstrap?: string[]
  trust?: string[]
  uploadBytesPerSecond?: number
  /** merged into the config file */
  config?: Record<string, any>
  env?: Record<string, string>
  logLevel?: string
  /** a command the daemon runs under, e.g. ['ip', 'netns', 'exec', 'hw-lab0'] (it must exec, keeping the PID) */
  wrap?: string[]
  /** run heraldd inside this network namespace (test/helpers/netns.ts); its API host must be reachable */
  netns?: string
}

export class DaemonProcess {
  readonly opts: DaemonOptions
  child?: ChildProcess
  apiUrl = ''
  metricsUrl = ''
  /** the chunk HTTP listener ('' when http.enabled is off) */
  httpUrl = ''
  peerId = ''
  listen: string[] = []
  token = ''
  client!: ApiClient
  output = ''
  #exited?: Promise<number | null>

  private constructor (opts: DaemonOptions) {
    this.opts = opts
  }

  static async start (opts: DaemonOptions): Promise<DaemonProcess> {
    const d = new DaemonProcess(opts)
    await d.#writeConfig()
    if (opts.seed === true) {
      await execFileP(process.execPath, [HERALDD, 'init', '--seed', '--data-dir', opts.dataDir])
    }
    await d.launch()
    return d
  }

  async #writeConfig (): Promise<void> {
    const o = this.opts
    const host = o.host ?? '127.0.0.1'
    await mkdir(o.dataDir, { recursive: true })
    const config = {
      dataDir: o.dataDir,
      seed: o.seed === true,
      listen: [`/ip4/${host}/tcp/0`],
      bootstrap: o.bootstrap ?? [],
      trustedPublishers: o.trust ?? [],
      api: { host: '127.0.0.1', port: 0 },
      metrics: { host: '127.0.0.1', port: 0, enabled: true },
      limits: { uploadBytesPerSecond: o.uploadBytesPerSecond ?? 0, ...(o.config?.limits ?? {}) },
      fetch: { seedDeadlineMs: 1_000, hedgeAfterMs: 3_000, stallTimeoutMs: 30_000, ...(o.config?.fetch ?? {}) },
      log: { level: o.logLevel ?? 'warn' },
      ...Object.fromEntries(Object.entries(o.config ?? {}).filter(([k]) => k !== 'limits' && k !== 'fetch'))
    }
    await writeFile(join(o.dataDir, 'config.json'), JSON.stringify(config, null, 2))
  }

  /** Start (or restart) the process and wait for its ready banner. */
  async launch (): Promise<void> {
    const env = { ...process.env, ...this.opts.env }
    for (const k of Object.keys(env)) if (k.startsWith('HERALD_')) delete env[k]
    // the heap flags the heraldd executable's #! line gives (BENCH_HEAP_FLAGS=default runs V8's defaults)
    const heapFlags = process.env.BENCH_HEAP_FLAGS === 'default' ? [] : HEAP_FLAGS
    const nodeArgs = [...heapFlags, ...process.env.BENCH_NODE_ARGS?.split(' ').filter(a => a !== '') ?? []]
    // `ip netns exec` execs the command in place: the child's pid is heraldd's
    const wrap = this.opts.netns != null ? ['ip', 'netns', 'exec', this.opts.netns] : this.opts.wrap ?? []
    const argv = [...wrap, process.execPath, ...nodeArgs, HERALDD, 'start', '--data-dir', this.opts.dataDir]
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    this.output = ''
    this.#exited = new Promise(resolve => child.once('exit', code => { resolve(code) }))
    // BENCH_DAEMON_LOG_DIR: each daemon's output (with BENCH_NODE_ARGS such as --trace-gc) copied to <dir>/<pid>.log
    const logDir = process.env.BENCH_DAEMON_LOG_DIR
    if (logDir != null && logDir !== '') {
      const copy = createWriteStream(join(logDir, `${child.pid ?? 0}.log`))
      child.stdout?.pipe(copy)
      child.stderr?.pipe(copy)
    }
    const banner = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`heraldd did not start in 30 s:\n${this.output}`)) }, 30_000)
      const onData = (buf: Buffer): void => {
        this.output += buf.toString()
        const line = this.output.split('\n').find(l => l.startsWith('heraldd ') && l.includes(' ready '))
        if (line != null) { clearTimeout(timer); resolve(line) }
      }
      child.stdout?.on('data', onData)
      child.stderr?.on('data', (buf: Buffer) => { this.output += buf.toString() })
      child.once('exit', code => { clearTimeout(timer); reject(new Error(`heraldd exited with ${String(code)}:\n${this.output}`)) })
    })
    const field = (name: string): string => banner.match(new RegExp(`${name}=(\\S+)`))?.[1] ?? ''
    this.peerId = field('peer')
    this.apiUrl = field('api')
    this.metricsUrl = field('metrics')
    this.httpUrl = field('http') === 'off' ? '' : field('http')
    this.listen = field('listen').split(',').filter(s => s !== '').map(a => a.includes('/p2p/') ? a : `${a}/p2p/${this.peerId}`)
    this.token = (await readFile(join(this.opts.dataDir, 'api.token'), 'utf8')).trim()
    this.client = new ApiClient({ url: this.apiUrl, token: this.token })
  }

  /** CPU seconds (user + system) the daemon process has used so far, from /proc (Linux). */
  async cpuSeconds (): Promise<number> {
    const stat = await readFile(`/proc/${this.child?.pid ?? 0}/stat`, 'utf8')
    // fields after the command name (which may contain spaces): utime and stime are the 12th and 13th
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  }

  /** Peak resident memory of the process so far (VmHWM), in bytes. */
  async peakRssBytes (): Promise<number> {
    const status = await readFile(`/proc/${this.child?.pid ?? 0}/status`, 'utf8')
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024
  }

  async publisherKey (): Promise<string> {
    return (await readFile(join(this.opts.dataDir, 'publisher.pub'), 'utf8')).trim()
  }

  /** SIGTERM and wait for a clean exit. */
  async stop (): Promise<number | null> {
    if (this.child == null || this.child.exitCode != null) return this.child?.exitCode ?? null
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 15_000)
    const code = await this.#exited!
    clearTimeout(timer)
    return code
  }

  async kill (): Promise<void> {
    if (this.child == null || this.child.exitCode != null) return
    this.child.kill('SIGKILL')
    await this.#exited
  }

  /** Start a fetch and wait until it is done or failed. */
  async fetch (name: string, timeoutMs = 120_000): Promise<FetchProgress> {
    const started = await this.client.startFetch({ name })
    return await this.waitFetch(started.id, timeoutMs)
  }

  async waitFetch (id: string, timeoutMs = 120_000): Promise<FetchProgress> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const p = await this.client.getFetch(id)
      if (p.state === 'done' || p.state === 'failed') return p
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    throw new Error(`fetch ${id} did not finish in ${timeoutMs} ms`)
  }
}

/**
 * For a mocha describe block: a temporary directory per test, and `start(name)` for daemons with their data
 * under it. After each test every daemon started is resumed (if a test froze it), killed, and the directory
 * removed.
 */
export function daemonFixture (prefix: string): { readonly dir: string, start: (name: string, opts?: Partial<DaemonOptions>) => Promise<DaemonProcess> } {
  let dir = ''
  const daemons: DaemonProcess[] = []
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), prefix)) })
  afterEach(async () => {
    for (const d of daemons) if (d.child?.pid != null && d.child.exitCode == null) d.child.kill('SIGCONT')
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })
  return {
    get dir () { return dir },
    async start (name, opts = {}) {
      const d = await DaemonProcess.start({ dataDir: join(dir, name), ...opts })
      daemons.push(d)
      return d
    }
  }
}
