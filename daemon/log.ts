// Structured JSON logs on stdout (pino). Secrets never reach a log line: keys, tokens and authorization
// headers are redacted wherever they appear. libp2p's and Herald's component debug logs stay available
// through DEBUG=libp2p:*,herald:* (on stderr).
import { pino, type Logger } from 'pino'

export type { Logger }

/** The logging surface the daemon's parts use (a pino logger satisfies it). */
export interface Log {
  info: (obj: unknown, msg?: string) => void
  warn: (obj: unknown, msg?: string) => void
  error: (obj: unknown, msg?: string) => void
  debug: (obj: unknown, msg?: string) => void
}

export function createLogger (opts: { level?: string, name?: string } = {}): Logger {
  return pino({
    name: opts.name ?? 'heraldd',
    level: opts.level ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['token', '*.token', 'privateKey', '*.privateKey', 'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization'],
      censor: '[redacted]'
    }
  })
}
