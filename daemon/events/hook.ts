// The post-switch hook: a local command run after `current` of a dataset changed (to restart a BLAST
// server, say), with the release in its environment. Time-limited; a failure is logged and counted and
// never fails the fetch or switch that caused it. Runs one at a time, from a bounded queue.
import { execFile } from 'node:child_process'
import PQueue from 'p-queue'
import type { Log } from '../log.js'
import { HOOK_OUTPUT_MAX, HOOK_QUEUE_MAX, HOOK_TIMEOUT_MS } from './constants.js'
import type { EventsMetrics } from './metrics.js'
import type { ReleaseEvent } from './types.js'

export interface PostSwitchHookInit {
  /** argv: the program, then its arguments (no shell; write ["sh", "-c", "..."] for one) */
  command: string[]
  timeoutMs?: number
  log?: Log
  metrics?: EventsMetrics
}

/** The variables a hook finds in its environment, besides heraldd's own. */
export function hookEnv (e: ReleaseEvent): Record<string, string> {
  const env: Record<string, string> = {
    HERALD_EVENT: e.type,
    HERALD_RELEASE: e.release,
    HERALD_DATASET: e.dataset,
    HERALD_VERSION: e.version,
    HERALD_RELEASE_PATH: e.path ?? ''
  }
  if (e.manifestCid != null) env.HERALD_MANIFEST_CID = e.manifestCid
  if (e.previous != null) env.HERALD_PREVIOUS_VERSION = e.previous
  return env
}

export class PostSwitchHook {
  readonly #init: PostSwitchHookInit
  readonly #queue = new PQueue({ concurrency: 1 })
  #stopped = false

  constructor (init: PostSwitchHookInit) {
    this.#init = init
  }

  /** Queue a run for a `release.switched` event; never waits. */
  enqueue (e: ReleaseEvent): void {
    if (this.#stopped || e.type !== 'release.switched') return
    if (this.#queue.size >= HOOK_QUEUE_MAX) {
      this.#init.metrics?.hookRunsTotal.inc({ result: 'dropped' })
      this.#init.log?.warn({ release: e.release }, 'post-switch hook queue full: run dropped')
      return
    }
    this.#queue.add(async () => { await this.#run(e) }).catch(() => {})
  }

  async #run (e: ReleaseEvent): Promise<void> {
    const [file, ...args] = this.#init.command
    const started = performance.now()
    // the API token is not the hook's business
    const { HERALD_API_TOKEN: _token, ...base } = process.env
    const result = await new Promise<{ ok: boolean, timedOut: boolean, message?: string, output: string }>(resolve => {
      execFile(file, args, {
        env: { ...base, ...hookEnv(e) },
        timeout: this.#init.timeoutMs ?? HOOK_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: HOOK_OUTPUT_MAX
      }, (err, stdout, stderr) => {
        const output = (String(stdout) + String(stderr)).slice(-4096)
        if (err == null) { resolve({ ok: true, timedOut: false, output }); return }
        const timedOut = (err as any).killed === true && (err as any).signal === 'SIGKILL'
        resolve({ ok: false, timedOut, message: timedOut ? `killed after ${this.#init.timeoutMs ?? HOOK_TIMEOUT_MS} ms` : err.message, output })
      })
    })
    const seconds = (performance.now() - started) / 1000
    this.#init.metrics?.hookDurationSeconds.observe(seconds)
    const label = result.ok ? 'ok' : result.timedOut ? 'timeout' : 'failed'
    this.#init.metrics?.hookRunsTotal.inc({ result: label })
    if (result.ok) this.#init.log?.info({ release: e.release, seconds }, 'post-switch hook done')
    else this.#init.log?.error({ release: e.release, seconds, err: result.message, output: result.output }, 'post-switch hook failed (the switch stands)')
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#queue.clear()
    await this.#queue.onIdle()
  }
}
