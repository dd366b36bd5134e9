// Watches a desired-state path: a file, or a directory such as a Kubernetes ConfigMap mount, whose files
// are replaced by renaming a `..data` symlink. The parent directory is watched (a watch on a replaced file
// sees nothing after the first swap), events are debounced, and a periodic re-read covers filesystems
// where inotify says nothing (NFS, some overlay mounts).
import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Log } from '../log.js'

export class PathWatcher {
  readonly #path: string
  readonly #debounceMs: number
  readonly #onChange: () => void
  readonly #log?: Log
  #watcher?: FSWatcher
  #timer?: NodeJS.Timeout

  constructor (path: string, debounceMs: number, onChange: () => void, log?: Log) {
    this.#path = path
    this.#debounceMs = debounceMs
    this.#onChange = onChange
    this.#log = log
  }

  async start (): Promise<void> {
    const isDir = await stat(this.#path).then(s => s.isDirectory(), () => false)
    const target = isDir ? this.#path : dirname(this.#path)
    try {
      this.#watcher = watch(target, { persistent: false }, () => { this.#schedule() })
      this.#watcher.on('error', (err) => { this.#log?.warn({ path: target, err: err.message }, 'desired-state watch failed: re-read on the interval only') })
    } catch (err: any) {
      this.#log?.warn({ path: target, err: err.message }, 'cannot watch the desired-state path: re-read on the interval only')
    }
  }

  #schedule (): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => { this.#onChange() }, this.#debounceMs)
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#watcher?.close()
    this.#watcher = undefined
  }
}
