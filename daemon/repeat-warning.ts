// A warning that repeats for the same key (a bootstrap address that keeps failing) is logged the first
// time and then at most once per interval, with the number of failures since the last line, so that an
// operator sees every problem without a line every 10 s.
import type { Log } from './log.js'

/** a key's warning is repeated at most this often, ms: a few lines an hour for an address that stays down */
export const REPEAT_WARNING_INTERVAL_MS = 10 * 60_000

export class RepeatWarning {
  readonly #log: Log
  readonly #intervalMs: number
  readonly #last = new Map<string, { at: number, suppressed: number }>()

  constructor (log: Log, intervalMs = REPEAT_WARNING_INTERVAL_MS) {
    this.#log = log
    this.#intervalMs = intervalMs
  }

  /** Log `msg` at warn for `key` unless it was logged less than the interval ago (then at debug). */
  warn (key: string, fields: Record<string, unknown>, msg: string, now = Date.now()): boolean {
    const last = this.#last.get(key)
    if (last != null && now - last.at < this.#intervalMs) {
      last.suppressed++
      this.#log.debug(fields, msg)
      return false
    }
    const repeated = last?.suppressed ?? 0
    this.#last.set(key, { at: now, suppressed: 0 })
    this.#log.warn(repeated > 0 ? { ...fields, repeatedSinceLastWarning: repeated } : fields, msg)
    return true
  }
}
