// Waits for a daemon's structured log line (pino JSON on stdout) that matches: a test awaits the
// daemon's own event instead of polling or sleeping.
import type { DaemonProcess } from './daemon-process.js'

export type LogLine = Record<string, any> & { msg?: string, time?: string }

/** The first log line (already printed or printed later) for which `match` is true. */
export async function waitForLog (d: DaemonProcess, match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
  const child = d.child
  if (child?.stdout == null) throw new Error('daemon not running')
  const parse = (text: string): LogLine | undefined => {
    try { return JSON.parse(text) } catch { return undefined }
  }
  for (const text of d.output.split('\n')) {
    const line = parse(text)
    if (line != null && match(line)) return line
  }
  return await new Promise<LogLine>((resolve, reject) => {
    let partial = ''
    const onData = (buf: Buffer): void => {
      const lines = (partial + buf.toString()).split('\n')
      partial = lines.pop() ?? ''
      for (const text of lines) {
        const line = parse(text)
        if (line != null && match(line)) { done(); resolve(line); return }
      }
    }
    const timer = setTimeout(() => { done(); reject(new Error(`no matching log line in ${timeoutMs} ms`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); child.stdout?.off('data', onData) }
    child.stdout?.on('data', onData)
  })
}
