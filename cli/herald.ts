#!/usr/bin/env node
// `herald`: a thin client of the local heraldd API.
import '../protocol/polyfill.js'
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { Command } from 'commander'
import { ApiClient, ApiError } from '../daemon/api/client.js'
import { DEFAULT_API_PORT } from '../daemon/config.js'
import { exitCodeFor } from '../daemon/errors.js'
import { VERSION } from '../daemon/node/libp2p.js'
import { bytes, pct, progressReporter, seconds, summary, table } from './output.js'

interface Globals { api?: string, token?: string, json?: boolean, progress?: boolean }

function findToken (): string | undefined {
  const dirs = [process.env.HERALD_DATA_DIR, '/var/lib/herald', join(homedir(), '.herald')].filter((d): d is string => d != null && d !== '')
  for (const d of dirs) {
    const p = join(d, 'api.token')
    try {
      if (existsSync(p)) return readFileSync(p, 'utf8').trim()
    } catch {}
  }
  return undefined
}

const program = new Command()
  .name('herald')
  .description('Fetch, publish and manage versioned datasets through the local heraldd')
  .version(VERSION)
  .option('--api <url>', 'heraldd API URL (env HERALD_API)', process.env.HERALD_API ?? `http://127.0.0.1:${DEFAULT_API_PORT}`)
  .option('--token <token>', 'API token (env HERALD_API_TOKEN, else <data dir>/api.token)')
  .option('--json', 'machine-readable output: one JSON document on stdout')
  .option('--no-progress', 'no progress bar')

function client (): ApiClient {
  const g = program.opts<Globals>()
  return new ApiClient({ url: g.api!, token: g.token ?? process.env.HERALD_API_TOKEN ?? findToken() })
}

function json (): boolean { return program.opts<Globals>().json === true }

function out (value: unknown, human: () => string): void {
  console.log(json() ? JSON.stringify(value, null, 2) : human())
}

function run (fn: (...args: any[]) => Promise<void>): (...args: any[]) => Promise<void> {
  return async (...args) => {
    try {
      await fn(...args)
    } catch (err: any) {
      if (err instanceof ApiError || typeof err?.code === 'string') {
        if (json()) console.log(JSON.stringify({ error: { code: err.code, message: err.message } }))
        console.error(`herald: ${err.message as string}`)
        process.exit(exitCodeFor(err.code))
      }
      console.error(err)
      process.exit(1)
    }
  }
}

program.command('publish <name> <dir>')
  .description('publish a directory as a release (on the seed): chunk, sign, announce')
  .option('--base <name>', 'the release to encode delta chunks against (default: the newest one of the dataset held)')
  .option('--no-delta', 'do not encode delta chunks for this release')
  .action(run(async (name: string, dir: string, opts: { base?: string, delta: boolean }) => {
    const r = await client().publish({ name, dir: resolve(dir), base: opts.base, delta: opts.delta })
    out(r, () => {
      const lines = [`published ${r.name} seq ${r.seq}: ${r.files} files, ${bytes(r.bytes)}, ${r.chunks} chunks (${r.newChunks} new) in ${seconds(r.seconds)}`, `manifest ${r.manifestCid}`]
      for (const d of [...(r.delta != null ? [r.delta] : []), ...(r.olderDeltas ?? [])]) {
        lines.push(`delta against ${d.base}: ${d.encoded} of ${d.candidates} new chunks as deltas (${bytes(d.deltaBytes)} for ${bytes(d.candidateBytes)}); an update from ${d.base} moves ${bytes(d.movedBytes)} in ${seconds(d.seconds)}`)
      }
      return lines.join('\n')
    })
  }))

program.command('fetch <name>')
  .description('fetch a release (only what the local store lacks) and switch it into place')
  .option('--out <dir>', 'materialize under this directory instead of the daemon\'s releases dir')
  .option('--detach', 'start the fetch and return at once')
  .action(run(async (name: string, opts: { out?: string, detach?: boolean }) => {
    const api = client()
    const started = await api.startFetch({ name, out: opts.out != null ? resolve(opts.out) : undefined })
    if (opts.detach === true) { out(started, () => `fetch ${started.id} started for ${name}`); return }
    const showBar = !json() && program.opts<Globals>().progress !== false
    const reporter = showBar ? progressReporter(process.stderr.isTTY === true) : undefined
    const controller = new AbortController()
    let interrupts = 0
    process.on('SIGINT', () => {
      if (++interrupts > 1) process.exit(130)
      reporter?.stop()
      console.error(`\nherald: detached; heraldd keeps fetching ${name} (herald status shows it). Ctrl-C again to exit now.`)
      controller.abort()
      process.exit(130)
    })
    const final = await api.followFetch(started.id, p => reporter?.update(p), controller.signal)
    reporter?.stop()
    out(final, () => summary(final))
    if (final.state === 'failed') process.exit(exitCodeFor(final.error?.code))
  }))

program.command('plan <name>')
  .description('show what fetching a release would move, before fetching it')
  .action(run(async (name: string) => {
    const p = await client().plan(name)
    out(p, () => [`${p.name}: release ${bytes(p.releaseBytes)} in ${p.releaseChunks} chunks`,
      `  already held locally: ${bytes(p.reusedBytes)} (${p.reusedChunks} chunks)`,
      `  to move: ${bytes(p.toMove.total)} (${pct(p.toMove.total, p.releaseBytes)} of the release)`,
      `    delta objects ${bytes(p.toMove.delta)} for ${p.deltaChunks} chunks, compressed chunks ${bytes(p.toMove.compressed)}, raw chunks ${bytes(p.toMove.raw)}, manifest ${bytes(p.toMove.manifest)}`].join('\n'))
  }))

program.command('ls').description('list releases in the local store').action(run(async () => {
  const rs = await client().listReleases()
  out(rs, () => rs.length === 0 ? 'no releases' : table(rs.map(r => ({ release: r.name, seq: r.seq, size: r.bytes != null ? bytes(r.bytes) : '', complete: r.complete, pinned: r.pinned, current: r.current ? '*' : '' })), ['release', 'seq', 'size', 'complete', 'pinned', 'current']))
}))

program.command('status').description('daemon status: peers, store, bytes by source, fetches').action(run(async () => {
  const s = await client().status()
  out(s, () => {
    const lines = [
      `peer ${s.peerId}${s.seed ? ' (seed)' : ''}, heraldd ${s.version}, up ${seconds(s.uptimeSeconds)}`,
      `listening ${s.listenAddrs.join(' ')}`,
      `peers ${s.peers}, DHT routing table ${s.dhtRoutingTableSize}, provide backlog ${s.provideBacklog}`,
      `store ${s.store.chunks} chunks, ${bytes(s.store.bytes)} (${bytes(s.store.diskBytes)} on disk), ${s.store.releases} releases, ${s.store.pins} pinned`,
      `received ${bytes(s.received.peer)} from peers, ${bytes(s.received.seed)} from the seed; served ${bytes(s.served)}`
    ]
    for (const f of s.fetches) lines.push(`fetch ${f.name}: ${f.state} ${bytes(f.doneBytes)}/${bytes(f.totalBytes - f.reusedBytes)}`)
    return lines.join('\n')
  })
}))

program.command('peers').description('connected peers with RTT and throughput').action(run(async () => {
  const ps = await client().peers()
  out(ps, () => ps.length === 0 ? 'no peers' : table(ps.map(p => ({ peer: p.peerId, seed: p.seed ? 'yes' : '', rtt: p.rttMs != null ? `${p.rttMs.toFixed(0)} ms` : '', throughput: p.throughput != null ? `${bytes(p.throughput)}/s` : '', received: bytes(p.bytesReceived), sent: bytes(p.bytesSent), penalties: p.penalties })), ['peer', 'seed', 'rtt', 'throughput', 'received', 'sent', 'penalties']))
}))

program.command('pin <name>').description('keep a release (its chunks survive gc)').action(run(async (name: string) => {
  const r = await client().pin(name)
  out(r, () => `pinned ${r.name}`)
}))

program.command('unpin <name>').description('release a pin; gc may then remove its chunks and directory (refused for the current release)')
  .option('--force', 'unpin even the release `current` points to')
  .action(run(async (name: string, opts: { force?: boolean }) => {
    const r = await client().unpin(name, { force: opts.force })
    out(r, () => `unpinned ${r.name}`)
  }))

program.command('gc').description('delete chunks no pinned release references, and the directories of releases neither pinned nor current').action(run(async () => {
  const r = await client().gc()
  out(r, () => `freed ${r.chunksFreed} chunks, ${bytes(r.bytesFreed)} in ${seconds(r.seconds)}` +
    ((r.releasesRemoved ?? []).length > 0 ? `; removed the directories of ${(r.releasesRemoved ?? []).join(', ')}` : ''))
}))

program.command('verify <name>').description('re-hash every chunk of a release and its materialized files').action(run(async (name: string) => {
  const r = await client().verify(name)
  out(r, () => `${r.name}: ${r.ok ? 'OK' : 'FAILED'} — ${r.chunksChecked} chunks (${r.bad.length} bad, ${r.missing} missing), ${r.filesChecked} files (${r.badFiles.length} bad)`)
  if (!r.ok) process.exit(4)
}))

program.command('rollback <dataset>').description('switch `current` one step back: to the newest complete, pinned release older than it')
  .option('--to <version>', 'a specific version')
  .action(run(async (dataset: string, opts: { to?: string }) => {
    const r = await client().rollback(dataset, opts.to)
    out(r, () => `${r.dataset}: current ${r.from ?? '(none)'} → ${r.to}`)
  }))

program.command('export <name> <dir>')
  .description('write a release\'s chunks, delta objects, manifest and signed record into DIR in the HTTP URL layout (DIR/ipfs/<cid>, DIR/herald/releases/<dataset>/<version>), for any static web server')
  .action(run(async (name: string, dir: string) => {
    const r = await client().exportRelease(name, resolve(dir))
    out(r, () => `${r.name} → ${r.dir}: ${r.chunks} chunks, ${r.deltaObjects} delta objects` +
      (r.deltaObjectsMissing > 0 ? ` (${r.deltaObjectsMissing} not held here, left out)` : '') +
      `, manifest ${r.manifestCid}; ${r.written} files written (${bytes(r.bytesWritten)}), ${r.kept} already there, in ${seconds(r.seconds)}`)
  }))

program.parseAsync().catch(err => { console.error(err); process.exit(1) })
