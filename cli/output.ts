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

/** A progress bar on a terminal; periodic plain lines otherwise. */
export function progressReporter (tty: boolean): { update: (p: FetchProgress) => void, stop: () => void } {
  if (!tty) {
    let last = 0
    return {
      update: (p) => {
        if (Date.now() - last < 2_000 && p.state !== 'done' && p.state !== 'failed') return
        last = Date.now()
        const need = Math.max(1, p.totalBytes - p.reusedBytes)
        process.stderr.write(`${p.name} ${p.state} ${bytes(p.doneBytes)}/${bytes(need)} peers ${bytes(p.wireBytes.peer)} seed ${bytes(p.wireBytes.seed)}\n`)
      },
      stop: () => {}
    }
  }
  const bar = new cliProgress.SingleBar({
    format: '{name} {bar} {percentage}% | {done}/{total} | {rate}/s | ETA {eta_formatted} | peers {peer} seed {seed} | {state}',
    hideCursor: true,
    stream: process.stderr
  }, cliProgress.Presets.shades_classic)
  let started = false
  const t0 = Date.now()
  return {
    update: (p) => {
      const need = Math.max(1, p.totalBytes - p.reusedBytes)
      const payload = {
        name: p.name,
        done: bytes(p.doneBytes),
        total: bytes(need),
        rate: bytes(p.doneBytes / Math.max(0.001, (Date.now() - t0) / 1000)),
        peer: bytes(p.wireBytes.peer),
        seed: bytes(p.wireBytes.seed),
        state: p.state
      }
      if (!started) { bar.start(need, p.doneBytes, payload); started = true }
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
