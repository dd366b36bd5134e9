#!/usr/bin/env -S node --max-semi-space-size=32 --initial-old-space-size=512
import '../protocol/polyfill.js'
import { resolve } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { loadConfig, type ConfigFlags } from '../daemon/config.js'
import { codeOf, exitCodeFor } from '../daemon/errors.js'
import { initDataDir, startDaemon } from '../daemon/index.js'
import { VERSION } from '../daemon/version.js'

function port (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('must be a port number (0-65535)')
  return n
}

function nonNegative (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer')
  return n
}

function csv (value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map(s => s.trim()).filter(s => s !== '')]
}

function flagsOf (opts: Record<string, any>): ConfigFlags {
  return {
    config: opts.config,
    dataDir: opts.dataDir,
    seed: opts.seed === true ? true : undefined,
    listen: opts.listen,
    bootstrap: opts.bootstrap,
    trustedPublishers: opts.trust,
    apiHost: opts.apiHost,
    apiPort: opts.apiPort,
    metricsHost: opts.metricsHost,
    metricsPort: opts.metricsPort,
    logLevel: opts.logLevel,
    uploadLimit: opts.uploadLimit,
    syncPath: opts.sync != null ? resolve(opts.sync) : undefined
  }
}

function fail (err: any): never {
  const code = codeOf(err)
  if (code != null) {
    console.error(`heraldd: ${err.message as string}`)
    process.exit(exitCodeFor(code))
  }
  console.error(err)
  process.exit(1)
}

const program = new Command()
  .name('heraldd')
  .description('Herald daemon: fetches, verifies and serves versioned datasets peer to peer')
  .version(VERSION)
  // a usage error (unknown option, bad value) is exit status 2, like a configuration error
  .exitOverride(err => process.exit(err.exitCode === 0 ? 0 : 2))

function common (cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'config file (JSON; default <data dir>/config.json)')
    .option('-d, --data-dir <dir>', 'data directory (default /var/lib/herald as root, else ~/.herald)')
    .option('--seed', 'run as the publisher\'s seed node')
}

common(program.command('init'))
  .description('create the data directory, peer key, API token (and with --seed the publisher key)')
  .action(async (opts) => {
    try {
      const config = loadConfig(flagsOf(opts))
      const result = await initDataDir(config)
      console.log(`data dir:  ${result.dataDir}`)
      console.log(`peer id:   ${result.peerId}`)
      if (result.publisherKey != null) console.log(`publisher: ${result.publisherKey}  (peers list this in trustedPublishers)`)
      console.log(result.created.length > 0 ? `created:   ${result.created.join(', ')}` : 'keys already present: nothing overwritten')
    } catch (err) { fail(err) }
  })

common(program.command('start'))
  .description('run the daemon')
  .option('--listen <multiaddrs>', 'libp2p listen addresses (comma-separated)', csv)
  .option('--bootstrap <multiaddrs>', 'bootstrap peers, e.g. the seed (comma-separated)', csv)
  .option('--trust <[names=]key>', 'a trusted publisher key or key file, optionally scoped to dataset names or patterns (uniprot=keys/uniprot.pub, \'ncbi-*=...\'); repeatable or comma-separated; unscoped = every name', csv)
  .option('--api-host <host>', 'local API host')
  .option('--api-port <port>', 'local API port', port)
  .option('--metrics-host <host>', 'metrics listener host')
  .option('--metrics-port <port>', 'metrics listener port', port)
  .option('--upload-limit <bytesPerSec>', 'cap on bytes/s served to peers (0 = none)', nonNegative)
  .option('--sync <path>', 'apply the DatabaseSync documents of this file or directory (desired state; docs/OPERATIONS.md)')
  .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent')
  .action(async (opts) => {
    // handlers first: a supervisor may signal during startup or the moment it sees the ready line
    let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined
    let signals = 0
    const onSignal = (signal: string): void => {
      signals++
      if (signals > 1) {
        console.error(`heraldd: second ${signal}, exiting now`)
        process.exit(130)
      }
      console.error(`heraldd: ${signal}, stopping (in-flight fetches are checkpointed; send again to force)`)
      // during startup the daemon is stopped as soon as it is up
      daemon?.stop().then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })
    }
    process.on('SIGINT', () => { onSignal('SIGINT') })
    process.on('SIGTERM', () => { onSignal('SIGTERM') })
    try {
      daemon = await startDaemon(loadConfig(flagsOf(opts)))
    } catch (err) { fail(err) }
    if (signals > 0) {
      await daemon.stop()
      process.exit(0)
    }
    const { node } = daemon
    console.log(`heraldd ${VERSION} ready peer=${node.peerId} seed=${String(node.isSeed)} api=${daemon.apiUrl} metrics=${daemon.metricsUrl ?? 'off'} http=${daemon.httpUrl ?? 'off'} listen=${node.listenAddrs().join(',')}`)
  })

program.parseAsync().catch(fail)
