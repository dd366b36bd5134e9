// The BitTorrent baseline of the release-day benchmarks: ../shared/bench/bt-swarm.sh (aria2 leechers and
// seed, a local opentracker) run on the same shape in the same invocation, its results.tsv read back.
import { execFile } from 'node:child_process'
import { access, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

export interface BtBaseline {
  engine: string
  allDoneSeconds: number
  firstDoneSeconds: number
  seedShare: number
  seedCpuSeconds: number
  /** CPU seconds of the first leecher (the script measures one) */
  peerCpuSeconds: number
  peerPeakRssMiB: number
  verified: boolean
}

/** The script beside the project (../shared/bench/bt-swarm.sh from the repository root), or BT_SWARM_SH. */
export async function findBtSwarm (): Promise<string | undefined> {
  const candidates = [process.env.BT_SWARM_SH, resolve(here, '../../../../shared/bench/bt-swarm.sh'), resolve(here, '../../../shared/bench/bt-swarm.sh')]
  for (const c of candidates) {
    if (c == null || c === '') continue
    try { await access(c); return c } catch {}
  }
  return undefined
}

export async function runBtBaseline (opts: { script: string, sizeMiB: number, leechers: number, capMBps: number, engine?: string, timeoutS?: number, log?: (s: string) => void }): Promise<BtBaseline> {
  const work = await mkdtemp(join(tmpdir(), 'herald-bt-'))
  const engine = opts.engine ?? 'aria2'
  try {
    const env = {
      ...process.env,
      SWARM_DIR: work,
      ENGINE: engine,
      SIZE_MIB: String(opts.sizeMiB),
      LEECHERS: String(opts.leechers),
      CAPS: String(opts.capMBps),
      PIECES: 'auto',
      REPS: '1',
      RUN_TIMEOUT: String(opts.timeoutS ?? 300)
    }
    await new Promise<void>((resolve, reject) => {
      const child = execFile('bash', [opts.script], { env, maxBuffer: 64 * 1024 * 1024, timeout: ((opts.timeoutS ?? 300) + 120) * 1000 }, (err) => { if (err != null) reject(err); else resolve() })
      child.stderr?.on('data', (b: Buffer) => { for (const l of b.toString().split('\n')) if (l.trim() !== '') opts.log?.(`  [${engine}] ${l}`) })
    })
    const lines = (await readFile(join(work, 'results.tsv'), 'utf8')).trim().split('\n')
    const head = lines[0].split('\t')
    const row = lines[lines.length - 1].split('\t')
    const col = (name: string): string => {
      const i = head.indexOf(name)
      if (i < 0) throw new Error(`bt-swarm.sh results.tsv has no column ${name}`)
      return row[i]
    }
    return {
      engine,
      allDoneSeconds: Number(col('t_last_s')),
      firstDoneSeconds: Number(col('t_first_s')),
      seedShare: Number(col('seed_share')),
      seedCpuSeconds: Number(col('seed_cpu_s')),
      peerCpuSeconds: Number(col('leech1_cpu_s')),
      peerPeakRssMiB: Math.round(Number(col('leech1_hwm_KiB')) / 1024),
      verified: col('verified') === 'ok'
    }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}
