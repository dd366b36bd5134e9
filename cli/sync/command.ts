// `herald sync status|now|check` (the desired-state reconciler) and `herald events` (release events).
import { resolve } from 'node:path'
import type { Command } from 'commander'
import type { ApiClient } from '../../daemon/api/client.js'
import { loadDesiredState } from '../../daemon/sync/document.js'
import type { SyncStatus } from '../../daemon/sync/types.js'
import { table } from '../output.js'

export interface SyncCommandContext {
  client: () => ApiClient
  out: (value: unknown, human: () => string) => void
  run: (fn: (...args: any[]) => Promise<void>) => (...args: any[]) => Promise<void>
  json: () => boolean
}

function when (ms: number | undefined): string {
  return ms == null ? 'never' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z')
}

export function formatSyncStatus (s: SyncStatus): string {
  if (!s.enabled) return 'desired state: off (heraldd --sync PATH, or sync.path in its config)'
  const lines = [`desired state: ${s.path ?? ''} (${s.files.length} file${s.files.length === 1 ? '' : 's'}), last reconcile ${when(s.lastReconcileAt)}, ${s.reconciles} passes`]
  if (s.window != null) lines.push(s.window.open ? `window open until ${when(s.window.closesAt)}` : `window closed, opens ${when(s.window.opensAt)}`)
  if (s.error != null) lines.push(`error ${s.error.code}: ${s.error.message}`, 'nothing is changed until the documents are valid')
  if (s.entries.length > 0) {
    lines.push(table(s.entries.map(e => ({
      release: e.release,
      state: e.state,
      current: e.current ? '*' : e.wantCurrent ? '(wanted)' : '',
      pinned: e.pinned,
      manifest: e.manifestCid != null ? e.manifestCid.slice(0, 16) + '…' : '',
      detail: e.error != null ? `${e.error.code}: ${e.error.message}${e.retryAt != null ? ` (retry ${when(e.retryAt)})` : ''}` : ''
    })), ['release', 'state', 'current', 'pinned', 'manifest', 'detail']))
  }
  if (s.removed.length > 0) lines.push(`unpinned as no longer listed: ${s.removed.join(', ')}`)
  return lines.join('\n')
}

/** exit status of `sync status` / `sync now`: 0 when every entry is held */
function syncExit (s: SyncStatus): number {
  if (s.error != null) return 2
  return s.entries.every(e => e.state === 'held') ? 0 : 1
}

export function registerSync (program: Command, ctx: SyncCommandContext): void {
  const sync = program.command('sync').description('the desired state (DatabaseSync documents) heraldd applies')
  sync.command('status').description('each listed release: held, fetching, waiting for the window, failed or refused; exit 0 only when all are held')
    .action(ctx.run(async () => {
      const s = await ctx.client().syncStatus()
      ctx.out(s, () => formatSyncStatus(s))
      process.exitCode = syncExit(s)
    }))
  sync.command('now').description('run a reconcile pass now and show the result')
    .action(ctx.run(async () => {
      const s = await ctx.client().syncNow()
      ctx.out(s, () => formatSyncStatus(s))
      process.exitCode = syncExit(s)
    }))
  sync.command('check <path>').description('validate DatabaseSync documents (a file or a directory) without a daemon: for CI of the repository that holds them')
    .action(ctx.run(async (path: string) => {
      const loaded = await loadDesiredState(resolve(path))
      ctx.out(loaded.entries, () => `${loaded.files.length} file(s), ${loaded.documents.length} document(s): ` +
        (loaded.entries.length === 0 ? 'no releases' : loaded.entries.map(e => `${e.dataset}@${e.version}${e.current ? ' (current)' : ''}`).join(', ')))
    }))

  program.command('events').description('follow release events (available, fetched, switched, failed) as JSON lines until interrupted')
    .option('--types <list>', 'comma-separated event types')
    .action(ctx.run(async (opts: { types?: string }) => {
      await ctx.client().followEvents(e => { console.log(JSON.stringify(e)) }, { types: opts.types?.split(',') })
    }))
}
