// Human output helpers of the `herald` CLI: sizes, durations, aligned tables, the fetch progress bar.
import cliProgress from 'cli-progress'
import type { FetchProgress, PublishProgress } from '../daemon/types.js'

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`
}

export function pct (part: number, whole: number): string {
  return whole > 0 ? `${(100 * part / whole).toFixed(part / whole < 0.1 ? 1 : 0)}%` : '0%'
}

export function seconds (s: number): string {
  if (!Number.isFinite(s)) return '?'
  if (s < 60) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`
}

export function table (rows: Array<Record<string, string | number | boolean | undefined>>, columns: string[]): string {
  const cells = rows.map(r => columns.map(c => r[c] === undefined ? '' : String(r[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map(r => r[i].length)))
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd()
  return [line(columns.map(c => c.toUpperCase())), ...cells.map(line)].join('\n')
}

export function summary (p: FetchProgress): string {
  const wire = p.wireBytes.peer + p.wireBytes.seed
  const took = ((p.finishedAt ?? Date.now()) - p.startedAt) / 1000
  const lines = [
    `${p.name}: ${p.state}${p.path != null ? ` → ${p.path}` : ''}`,
    `  release ${bytes(p.totalBytes)} in ${p.totalChunks} chunks; reused locally ${bytes(p.reusedBytes)} (${p.reusedChunks} chunks)`,
    `  moved ${bytes(wire)}: ${bytes(p.wireBytes.peer)} from peers, ${bytes(p.wireBytes.seed)} from the seed, in ${seconds(took)}`
  ]
  if (p.error != null) lines.push(`  error ${p.error.code}: ${p.error.message}`)
  return lines.join('\n')
}

/** A duration for an ETA: `45s`, `3m05s`, `2h04m`; `--` while unknown. */
export function eta (s: number | undefined): string {
  if (s == null || !Number.isFinite(s) || s < 0) return '--'
  const t = Math.ceil(s)
  if (t < 60) return `${t}s`
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`
}

/** Release bytes per second over the last few seconds of progress; undefined until it can be measured. */
export class RateMeter {
  /** samples older than this are dropped, ms */
  static readonly WINDOW_MS = 5_000
  /** a rate needs this much time between samples, ms */
  static readonly MIN_SPAN_MS = 1_000
  readonly #samples: Array<{ at: number, bytes: number }> = []

  add (bytes: number, at = Date.now()): void {
    this.#samples.push({ at, bytes })
    while (this.#samples.length > 2 && at - this.#samples[1].at >= RateMeter.WINDOW_MS) this.#samples.shift()
  }

  get rate (): number | undefined {
    const first = this.#samples[0]
    const last = this.#samples[this.#samples.length - 1]
    if (first == null || last.at - first.at < RateMeter.MIN_SPAN_MS || last.bytes <= first.bytes) return undefined
    return (last.bytes - first.bytes) / ((last.at - first.at) / 1000)
  }
}

const BAR_MAX = 30
const BAR_MIN = 8

/** Fields of the progress line, richest first: the first that fits the width is used. */
const LAYOUTS: Array<{ bar: boolean, split: 'full' | 'short' | 'none', rate: boolean, eta: boolean, state: boolean }> = [
  { bar: true, split: 'full', rate: true, eta: true, state: true },
  { bar: true, split: 'full', rate: true, eta: true, state: false },
  { bar: true, split: 'short', rate: true, eta: true, state: false },
  { bar: false, split: 'full', rate: true, eta: true, state: false },
  { bar: false, split: 'short', rate: true, eta: true, state: false },
  { bar: false, split: 'none', rate: true, eta: true, state: false },
  { bar: false, split: 'none', rate: false, eta: true, state: false },
  { bar: false, split: 'none', rate: false, eta: false, state: false }
]

/**
 * One progress line that fits `width` columns (one less, so the terminal never wraps it): name, bar,
 * percentage, `done/total` release bytes, rate, ETA, wire bytes by source (`seed N%` when short) and state.
 * Fields are dropped or shortened from the least useful until the line fits, then the name is shortened.
 */
export function progressLine (p: FetchProgress, rate: number | undefined, width: number): string {
  const max = Math.max(20, width - 1)
  const need = Math.max(0, p.totalBytes - p.reusedBytes)
  const done = Math.min(p.doneBytes, need)
  const frac = need > 0 ? done / need : (p.state === 'done' ? 1 : 0)
  const wire = p.wireBytes.peer + p.wireBytes.seed
  const text = {
    percent: `${Math.floor(frac * 100)}%`.padStart(4),
    // before the manifest is in, the size is unknown: say what is happening instead of 0 B/0 B
    amounts: p.totalChunks === 0 && (p.state === 'resolving' || p.state === 'planning') ? `${p.state}…` : `${bytes(done)}/${bytes(need)}`,
    eta: `ETA ${p.state === 'done' ? '0s' : eta(rate != null && rate > 0 ? (need - done) / rate : undefined)}`,
    rate: `${rate != null ? bytes(rate) : '--'}/s`,
    full: `peers ${bytes(p.wireBytes.peer)} seed ${bytes(p.wireBytes.seed)}`,
    short: `seed ${wire > 0 ? pct(p.wireBytes.seed, wire) : '--'}`
  }
  const render = (name: string, l: typeof LAYOUTS[number], barWidth: number): string => {
    const head = barWidth > 0 ? `${name} ${'█'.repeat(Math.round(frac * barWidth)).padEnd(barWidth, '░')}` : name
    const parts = [`${head} ${text.percent}`, text.amounts]
    if (l.rate) parts.push(text.rate)
    if (l.eta) parts.push(text.eta)
    if (l.split !== 'none') parts.push(text[l.split])
    if (l.state) parts.push(p.state)
    return parts.join('  ')
  }
  for (const l of LAYOUTS) {
    const bare = render(p.name, l, 0).length
    if (!l.bar && bare <= max) return render(p.name, l, 0)
    if (l.bar && bare + 1 + BAR_MIN <= max) return render(p.name, l, Math.min(BAR_MAX, max - bare - 1))
  }
  // only the name is left to give
  const last = LAYOUTS[LAYOUTS.length - 1]
  const over = render(p.name, last, 0).length - max
  const name = p.name.length - over - 1 >= 4 ? p.name.slice(0, p.name.length - over - 1) + '…' : p.name.slice(0, 4) + '…'
  return render(name, last, 0).slice(0, max)
}

/** A progress bar on a terminal; periodic plain lines otherwise. */
export function progressReporter (tty: boolean, stream: NodeJS.WriteStream = process.stderr): { update: (p: FetchProgress) => void, stop: () => void } {
  const meter = new RateMeter()
  if (!tty) {
    let last = 0
    return {
      update: (p) => {
        meter.add(p.doneBytes)
        if (Date.now() - last < 2_000 && p.state !== 'done' && p.state !== 'failed') return
        last = Date.now()
        stream.write(progressLine(p, meter.rate, 200) + '\n')
      },
      stop: () => {}
    }
  }
  const bar = new cliProgress.SingleBar({
    format: (_options: unknown, params: { maxWidth: number }, payload: { p: FetchProgress, rate?: number }) => progressLine(payload.p, payload.rate, params.maxWidth),
    hideCursor: true,
    linewrap: false,
    stream
  } as any)
  let started = false
  return {
    update: (p) => {
      meter.add(p.doneBytes)
      const need = Math.max(1, p.totalBytes - p.reusedBytes)
      const payload = { p, rate: meter.rate }
      if (!started) { bar.start(need, Math.min(p.doneBytes, need), payload); started = true }
      bar.setTotal(need)
      bar.update(Math.min(p.doneBytes, need), payload)
    },
    stop: () => { if (started) bar.stop() }
  }
}

/** The publish progress bar on a terminal (input bytes read, rate, ETA, chunks); periodic plain lines otherwise. */
export function publishReporter (tty: boolean): { update: (p: PublishProgress) => void, stop: () => void } {
  const line = (p: PublishProgress): string => `${p.name} ${p.state} ${bytes(p.bytesRead)}/${bytes(p.bytesTotal)} read, ${p.filesRead}/${p.filesTotal} files, ${p.chunks} chunks (${p.newChunks} new, ${bytes(p.newBytes)}), ${bytes(p.bytesPerSecond)}/s${p.etaSeconds != null ? `, ETA ${seconds(p.etaSeconds)}` : ''}`
  if (!tty) {
    let last = 0
    return {
      update: (p) => {
        if (Date.now() - last < 2_000 && p.state !== 'done' && p.state !== 'failed') return
        last = Date.now()
        process.stderr.write(line(p) + '\n')
      },
      stop: () => {}
    }
  }
  const bar = new cliProgress.SingleBar({
    format: '{name} {bar} {percentage}% | {done}/{total} | {rate}/s | ETA {eta} | {chunks} chunks ({fresh} new) | {state}',
    hideCursor: true,
    stream: process.stderr
  }, cliProgress.Presets.shades_classic)
  let started = false
  return {
    update: (p) => {
      const total = Math.max(1, p.bytesTotal)
      const payload = { name: p.name, done: bytes(p.bytesRead), total: bytes(p.bytesTotal), rate: bytes(p.bytesPerSecond), eta: p.etaSeconds != null ? seconds(p.etaSeconds) : '-', chunks: p.chunks, fresh: p.newChunks, state: p.state }
      if (!started) { bar.start(total, 0, payload); started = true }
      bar.setTotal(total)
      bar.update(Math.min(p.bytesRead, total), payload)
    },
    stop: () => { if (started) bar.stop() }
  }
}
