// Waiting on a daemon's fetch progress events (the API's progress stream), not on polls or sleeps.
import type { DaemonProcess } from './daemon-process.js'
import type { FetchProgress } from '../../daemon/types.js'

/** Resolve with the first progress event of fetch `id` that satisfies `pred`; reject if the fetch ends first. */
export async function untilProgress (d: DaemonProcess, id: string, pred: (p: FetchProgress) => boolean, timeoutMs = 60_000): Promise<FetchProgress> {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort() }, timeoutMs)
  try {
    return await new Promise<FetchProgress>((resolve, reject) => {
      d.client.followFetch(id, p => { if (pred(p)) resolve(p) }, controller.signal).then(
        last => { if (pred(last)) resolve(last); else reject(new Error(`fetch ended (${last.state}) before the awaited progress`)) },
        err => { reject(controller.signal.aborted ? new Error(`no such progress within ${timeoutMs} ms`) : err) }
      )
    })
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
}

/** The sum of a metric's samples whose labels include every `labels` pair (Prometheus text format). */
export async function metricSum (d: DaemonProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(d.metricsUrl + '/metrics')).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!(line.startsWith(name + ' ') || line.startsWith(name + '{'))) continue
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue
    sum += Number(line.split(' ').pop())
  }
  return sum
}
