// Shared pieces of the fault suite: trial counts from the environment, a tally printed per scenario
// (trials / held / failed) and kept in a JSON file for docs/RELIABILITY.md, a cluster of real heraldd
// processes on loopback, and tree comparison.
import { execFile } from 'node:child_process'
import { appendFile, mkdir, readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { DaemonProcess, type DaemonOptions } from '../helpers/daemon-process.js'

export const execFileP = promisify(execFile)

/** Trials of a scenario: FAULT_TRIALS_<NAME> (e.g. FAULT_TRIALS_KILL_FETCH), else FAULT_TRIALS, else its default. */
export function trials (name: string, fallback: number): number {
  const v = process.env[`FAULT_TRIALS_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] ?? process.env.FAULT_TRIALS
  const n = v == null || v === '' ? fallback : Number(v)
  if (!Number.isInteger(n) || n < 1) throw new Error(`trial count for ${name} is not a positive integer: ${v}`)
  return n
}

export class Tally {
  readonly name: string
  held = 0
  failed = 0
  readonly failures: string[] = []
  readonly figures: Record<string, number | string> = {}
  constructor (name: string) { this.name = name }
  get trials (): number { return this.held + this.failed }
  ok (): void { this.held++ }
  fail (trial: number, why: unknown): void {
    this.failed++
    this.failures.push(`trial ${trial}: ${why instanceof Error ? why.message.split('\n')[0] : String(why)}`)
  }

  /** Print the counts and append them to FAULT_RESULTS (default build/fault-results.jsonl). */
  async report (): Promise<void> {
    const extra = Object.entries(this.figures).map(([k, v]) => `${k}=${v}`).join(' ')
    console.log(`    fault ${this.name}: trials ${this.trials} / held ${this.held} / failed ${this.failed}${extra === '' ? '' : ' · ' + extra}`)
    for (const f of this.failures) console.log(`      ${f}`)
    const file = process.env.FAULT_RESULTS ?? 'build/fault-results.jsonl'
    await appendFile(file, JSON.stringify({ at: new Date().toISOString(), scenario: this.name, trials: this.trials, held: this.held, failed: this.failed, figures: this.figures, failures: this.failures }) + '\n').catch(() => {})
  }
}

export async function listFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  async function walk (d: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else out.push(relative(dir, p))
    }
  }
  await walk(dir)
  return out.sort()
}

/** Throws unless `materialized` holds exactly the files of `published`, byte for byte. */
export async function expectSameTree (published: string, materialized: string): Promise<void> {
  const files = await listFiles(published)
  const got = await listFiles(materialized)
  if (JSON.stringify(got) !== JSON.stringify(files)) throw new Error(`files differ: ${got.join(',')} vs ${files.join(',')}`)
  for (const f of files) {
    const [a, b] = await Promise.all([readFile(join(published, f)), readFile(join(materialized, f))])
    if (!a.equals(b)) throw new Error(`${f} differs`)
  }
}

export async function sleep (ms: number): Promise<void> { await new Promise(resolve => setTimeout(resolve, ms)) }

/** A seed and labs on loopback under one directory; everything started is killed by `close`. */
export class Cluster {
  readonly dir: string
  readonly daemons: DaemonProcess[] = []
  seed!: DaemonProcess
  constructor (dir: string) { this.dir = dir }

  async startSeed (opts: Partial<DaemonOptions> = {}): Promise<DaemonProcess> {
    this.seed = await DaemonProcess.start({ dataDir: join(this.dir, 'seed'), seed: true, ...opts })
    this.daemons.push(this.seed)
    return this.seed
  }

  async startLab (name: string, opts: Partial<DaemonOptions> = {}): Promise<DaemonProcess> {
    await mkdir(join(this.dir, name), { recursive: true })
    const lab = await DaemonProcess.start({ dataDir: join(this.dir, name), bootstrap: this.seed.listen, trust: [await this.seed.publisherKey()], ...opts })
    this.daemons.push(lab)
    return lab
  }

  async close (): Promise<void> {
    for (const d of this.daemons) { try { if (d.child?.pid != null) process.kill(d.child.pid, 'SIGCONT') } catch {} }
    await Promise.allSettled(this.daemons.map(async d => await d.kill()))
    this.daemons.length = 0
  }
}

/** Wait until `cond` holds, polling every `everyMs`, at most `timeoutMs`. */
export async function until (cond: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return true
    await sleep(everyMs)
  }
  return false
}

/** Mount a tmpfs of `mb` MiB at `dir` (root only). */
export async function mountTmpfs (dir: string, mb: number): Promise<void> {
  await mkdir(dir, { recursive: true })
  await execFileP('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir])
}

export async function resizeTmpfs (dir: string, mb: number): Promise<void> {
  await execFileP('mount', ['-o', `remount,size=${mb}m`, dir])
}

export async function unmount (dir: string): Promise<void> {
  await execFileP('umount', [dir]).catch(async () => await execFileP('umount', ['-l', dir]))
}

/** Root can mount a tmpfs; without root the disk-full scenarios skip, except under CI where they fail. */
export function requireRoot (ctx: Mocha.Context): void {
  if (process.getuid?.() === 0) return
  if (process.env.CI != null && process.env.CI !== '' && process.env.CI !== '0') throw new Error('the disk-full scenarios need root (to mount a tmpfs) under CI')
  console.log('      (skipped: mounting a small tmpfs needs root; run as root or under CI=1)')
  ctx.skip()
}
