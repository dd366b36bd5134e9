// The schedule window of an update policy: changes (fetch, switch, unpin, gc) are made only while it is
// open. A window opens at each time the cron expression names and stays open `windowMinutes`.
import { Cron } from 'croner'
import { DEFAULT_WINDOW_MINUTES } from './constants.js'

export interface WindowState {
  open: boolean
  /** when the open window closes, or when the next one opens (ms since the epoch) */
  closesAt?: number
  opensAt?: number
}

export function windowAt (schedule: string | undefined, now: number, windowMinutes = DEFAULT_WINDOW_MINUTES, timezone?: string): WindowState {
  if (schedule == null) return { open: true }
  const cron = new Cron(schedule, { paused: true, timezone })
  try {
    const span = windowMinutes * 60_000
    const last = cron.previousRuns(1, new Date(now))[0]
    if (last != null && now - last.getTime() < span) return { open: true, closesAt: last.getTime() + span }
    const next = cron.nextRun(new Date(now))
    return { open: false, opensAt: next?.getTime() }
  } finally {
    cron.stop()
  }
}
