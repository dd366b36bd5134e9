#!/usr/bin/env node
// `herald`: a thin client of the local heraldd API.
import '../protocol/polyfill.js'
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { Command } from 'commander'
import { ApiClient, ApiError } from '../daemon/api/client.js'
import { DEFAULT_API_PORT, unknownEnv } from '../daemon/config.js'
import { exitCodeFor } from '../daemon/errors.js'
import { VERSION } from '../daemon/version.js'
import { bytes, pct, progressReporter, publishReporter, seconds, summary, table } from './output.js'
import { parseChunkSize } from '../protocol/chunker.js'
import { registerSync } from './sync/command.js'

interface Globals { api?: string, token?: string, dataDir?: string, json?: boolean, progress?: boolean }

/** The data directories whose api.token the CLI reads: --data-dir, else HERALD_DATA_DIR, else the defaults. */
function tokenDirs (dataDir: string | undefined): string[] {
  if (dataDir != null && dataDir !== '') return [resolve(dataDir)]
  const env = process.env.HERALD_DATA_DIR
  if (env != null && env !== '') return [resolve(env)]
  return ['/var/lib/herald', join(homedir(), '.herald')]
}

/** The API token and where it came from, or the paths looked at and why each failed. */
function findToken (dataDir: string | undefined): { token?: string, tried: string[] } {
  const tried: string[] = []
  for (const d of tokenDirs(dataDir)) {
    const p = join(d, 'api.token')
    try {
      return { token: readFileSync(p, 'utf8').trim(), tried }
    } catch (err: any) {
      tried.push(`${p} (${err.code === 'ENOENT' ? 'not found' : err.code === 'EACCES' ? 'permission denied' : String(err.code ?? err.message)})`)
    }
  }
  return { tried }
}

const EPILOG = `
Environment:
  HERALD_API        heraldd API URL (default http://127.0.0.1:${DEFAULT_API_PORT}); --api overrides it
  HERALD_API_TOKEN  API token; --token overrides it
  HERALD_DATA_DIR   data directory whose api.token is read when no token is given; --data-dir overrides it
                    (default /var/lib/herald, then ~/.herald)

Exit status:
  0  success
  1  other errors (including a missing or wrong API token)
  2  bad usage or input: invalid name, path or argument, an --out the daemon may not write, configuration
  3  not found: no such release or fetch
  4  trust or verification failed: untrusted publisher, bad signature, hash mismatch, verify found damage
  5  network: heraldd unreachable, no peer could provide the release
  6  local resources: store locked by another heraldd, disk full, gc busy
  130 interrupted (Ctrl-C); a fetch goes on in heraldd`

const program = new Command()
  .name('herald')
  .description('Fetch, publish and manage versioned datasets through the local heraldd')
  .version(VERSION)
  .option('--api <url>', 'heraldd API URL (env HERALD_API)', process.env.HERALD_API != null && process.env.HERALD_API !== '' ? process.env.HERALD_API : `http://127.0.0.1:${DEFAULT_API_PORT}`)
  .option('--token <token>', 'API token (env HERALD_API_TOKEN, else <data dir>/api.token)')
  .option('-d, --data-dir <dir>', 'heraldd data directory to read api.token from (env HERALD_DATA_DIR)')
  .option('--json', 'machine-readable output: one JSON document on stdout')
  .option('--no-progress', 'no progress bar')
  .addHelpText('after', EPILOG)
  // a usage error (unknown option, bad value) is exit status 2
  .exitOverride(err => process.exit(err.exitCode === 0 ? 0 : 2))

let tokenSearch: string[] = []

function client (): ApiClient {
  const g = program.opts<Globals>()
  let token = g.token ?? (process.env.HERALD_API_TOKEN !== '' ? process.env.HERALD_API_TOKEN : undefined)
  if (token == null) {
    const found = findToken(g.dataDir)
    token = found.token
    tokenSearch = found.tried
  }
  return new ApiClient({ url: g.api!, token })
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
        if (err.code === 'UNAUTHORIZED' && tokenSearch.length > 0) {
          err.message = `no API token: looked for ${tokenSearch.join(', ')}; give --token, HERALD_API_TOKEN or --data-dir (the daemon's data directory)`
        }
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
  .description('publish a directory as a release (on the seed): chunk, sign, announce; runs as a job in heraldd')
  .option('--base <name>', 'the release to encode delta chunks against (default: the newest one of the dataset held)')
  .option('--no-delta', 'do not encode delta chunks for this release')
  .option('--force', 'replace an existing release of this name whose content differs (versions are immutable otherwise)')
  .option('--allow-empty', 'publish even if the input holds no file')
  .option('--keep-compressed', 'keep every .gz input as it is (byte-identical, same name; chunked compressed)')
  .option('--keep-compressed-glob <glob>', 'keep the .gz inputs matching this glob as they are (repeatable)', (g: string, all: string[] = []) => [...all, g])
  .option('--chunk-size <MIN:AVG:MAX>', 'chunk sizes in bytes (K/M suffixes allowed; AVG a power of two; default 64K:256K:1M or publish.chunkSize)')
  .option('--detach', 'start the publish and return its job id at once')
  .action(run(async (name: string, dir: string, opts: { base?: string, delta: boolean, force?: boolean, allowEmpty?: boolean, keepCompressed?: boolean, keepCompressedGlob?: string[], chunkSize?: string, detach?: boolean }) => {
    if (opts.chunkSize != null) parseChunkSize(opts.chunkSize)
    const api = client()
    const started = await api.startPublish({
      name,
      dir: resolve(dir),
      base: opts.base,
      delta: opts.delta,
      force: opts.force,
      allowEmpty: opts.allowEmpty,
      keepCompressed: opts.keepCompressed === true ? true : opts.keepCompressedGlob,
      chunkSize: opts.chunkSize
    })
    if (opts.detach === true) { out(started, () => `publish ${started.id} started for ${started.name} (follow it: GET /v1/publish/${started.id}/events)`); return }
    const showBar = !json() && program.opts<Globals>().progress !== false
    const reporter = showBar ? publishReporter(process.stderr.isTTY === true) : undefined
    const controller = new AbortController()
    process.on('SIGINT', () => {
      reporter?.stop()
      console.error(`\nherald: detached; heraldd keeps publishing ${name} (job ${started.id}).`)
      controller.abort()
      process.exit(130)
    })
    const final = await api.followPublish(started.id, p => reporter?.update(p), controller.signal)
    reporter?.stop()
    const r = final.result
    if (final.state === 'failed' || r == null) {
      // as for other commands: { error } on stdout with --json, only the message on stderr otherwise
      if (json()) console.log(JSON.stringify({ id: final.id, error: final.error }))
      console.error(`herald: ${final.error?.message ?? `publish ${final.state}`}`)
      process.exit(exitCodeFor(final.error?.code))
    }
    out({ ...r, id: final.id }, () => {
      if (r.unchanged === true) return `${r.name} is already published with this content (seq ${r.seq}): nothing signed\nmanifest ${r.manifestCid}`
      const lines = [`published ${r.name} seq ${r.seq}: ${r.files} files, ${bytes(r.bytes)}, ${r.chunks} chunks (${r.newChunks} new) in ${seconds(r.seconds)}`, `manifest ${r.manifestCid}`]
      for (const d of [...(r.delta != null ? [r.delta] : []), ...(r.olderDeltas ?? [])]) {
        lines.push(`delta against ${d.base}: ${d.encoded} of ${d.candidates} new chunks as deltas (${bytes(d.deltaBytes)} for ${bytes(d.candidateBytes)}); an update from ${d.base} moves ${bytes(d.movedBytes)} in ${seconds(d.seconds)}`)
      }
      return lines.join('\n')
    })
  }))

program.command('fetch <name>')
  .description('fetch a release (only what the local store lacks) and switch it into place')
  .option('--out <dir>', 'materialize under this directory (relative to the current directory) instead of the daemon\'s releases dir; it must be inside the data dir or a root in the daemon\'s fetch.outRoots')
  .option('--force', 'with --out: replace a non-empty <out>/<dataset>/<version> that Herald did not make')
  .option('--detach', 'start the fetch and return at once')
  .option('--manifest <cid>', 'the manifest CID the release must be signed for: anything else is refused (MANIFEST_MISMATCH) before any chunk moves')
  .action(run(async (name: string, opts: { out?: string, force?: boolean, detach?: boolean, manifest?: string }) => {
    const api = client()
    const started = await api.startFetch({ name, out: opts.out != null ? resolve(opts.out) : undefined, force: opts.force === true ? true : undefined, manifestCid: opts.manifest })
    if (opts.detach === true) { out(started, () => `fetch ${started.id} started for ${name}`); return }
    const showBar = !json() && program.opts<Globals>().progress !== false
    const reporter = showBar ? progressReporter(process.stderr.isTTY === true) : undefined
    const controller = new AbortController()
    // Ctrl-C only stops following: the fetch is heraldd's and goes on; `herald fetch <name>` again follows it
    process.once('SIGINT', () => {
      reporter?.stop()
      console.error(`\nherald: stopped following; heraldd goes on fetching ${name} (herald status shows it, herald fetch ${name} follows it again)`)
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
    out(p, () => {
      const chunks = p.toMove.raw + p.toMove.compressed + p.toMove.delta
      // the manifest is not part of the release's bytes: for a tiny release it can be larger than the chunks
      const share = chunks <= p.releaseBytes ? ` (${pct(chunks, p.releaseBytes)} of the release)` : ''
      return [`${p.name}: release ${bytes(p.releaseBytes)} in ${p.releaseChunks} chunks`,
        `  already held locally: ${bytes(p.reusedBytes)} (${p.reusedChunks} chunks)`,
        `  chunks to move: ${bytes(chunks)}${share}: delta objects ${bytes(p.toMove.delta)} for ${p.deltaChunks} chunks, compressed chunks ${bytes(p.toMove.compressed)}, raw chunks ${bytes(p.toMove.raw)}`,
        `  manifest: ${bytes(p.toMove.manifest)}${p.toMove.manifest === 0 ? ' (held locally)' : ''}`,
        `  to move: ${bytes(p.toMove.total)} in all`].join('\n')
    })
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
      `wire bytes since start (as sent, compressed or delta-encoded): received ${bytes(s.received.peer)} from peers, ${bytes(s.received.seed)} from the seed; served ${bytes(s.served)}`
    ]
    for (const f of s.fetches) lines.push(`fetch ${f.name}: ${f.state}, release bytes ${bytes(f.doneBytes)}/${bytes(f.totalBytes - f.reusedBytes)}`)
    return lines.join('\n')
  })
}))

program.command('peers').description('connected peers with RTT and throughput').action(run(async () => {
  const ps = await client().peers()
  out(ps, () => ps.length === 0 ? 'no peers' : table(ps.map(p => ({ peer: p.peerId, seed: p.seed ? 'yes' : '', rtt: p.rttMs != null ? `${p.rttMs.toFixed(0)} ms` : '', throughput: p.throughput != null ? `${bytes(p.throughput)}/s` : '', 'received (decoded)': bytes(p.bytesReceived), 'sent (wire)': bytes(p.bytesSent), penalties: p.penalties })), ['peer', 'seed', 'rtt', 'throughput', 'received (decoded)', 'sent (wire)', 'penalties']) +
    '\nreceived: chunk and delta bytes after decompression; sent: bytes on the wire (compressed when stored so)')
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

program.command('import <name> <dir>').description('chunk files already on disk (a copy of <name>, e.g. from FTP or rsync) into the store, so the next fetch moves only the delta')
  .action(run(async (name: string, dir: string) => {
    const r = await client().importRelease({ name, dir: resolve(dir) })
    out(r, () => `imported ${r.files} files, ${r.chunks} chunks (${r.newChunks} new, ${bytes(r.bytes)}) in ${seconds(r.seconds)}` +
      (r.pinned ? `; ${r.name}: ${r.releaseChunksHeld ?? 0} of ${r.releaseChunks ?? 0} chunks held, pinned` : `; no record of ${r.name} found: chunks unpinned, fetch a release before running gc`))
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

registerSync(program, { client, out, run, json })

// a typo in a variable name would otherwise go unnoticed (heraldd's variables are known too: they often
// share one environment file)
const unknown = unknownEnv(process.env)
if (unknown.length > 0) console.error(`herald: warning: unknown environment variable${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (herald reads HERALD_API, HERALD_API_TOKEN, HERALD_DATA_DIR)`)

program.parseAsync().catch(err => { console.error(err); process.exit(1) })
