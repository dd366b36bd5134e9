// Errors that cross the process boundary carry a stable `code`; the API maps it to an HTTP status, the
// CLI to an exit status, metrics use it as a label. Codes are shared with protocol/ and store/ errors,
// which carry the same `code` property.

/**
 * Every stable error code, and what it becomes at each boundary: the API's HTTP status, the CLI's exit
 * status (2 usage, 3 not found, 4 trust/verification, 5 network and peers, 6 local resources, 1 anything
 * else) and — the code itself — the metric label. One table, so that a new code cannot fall through to
 * 500 "internal error" at one boundary and mean something else at another (test/daemon/errors.spec.ts
 * checks that every code raised in the source tree is listed).
 */
export const ERROR_CODES: Record<string, { http: number, exit: number }> = {
  BAD_REQUEST: { http: 400, exit: 2 },
  INVALID_ARGUMENT: { http: 400, exit: 2 },
  INVALID_NAME: { http: 400, exit: 2 },
  INVALID_PATH: { http: 400, exit: 2 },
  INVALID_CID: { http: 400, exit: 2 },
  INVALID_CONFIG: { http: 400, exit: 2 },
  /** a desired-state (DatabaseSync) document that does not parse or validate */
  INVALID_SYNC_DOCUMENT: { http: 400, exit: 2 },
  UNAUTHORIZED: { http: 401, exit: 1 },
  OUT_NOT_ALLOWED: { http: 403, exit: 2 },
  NOT_FOUND: { http: 404, exit: 3 },
  METHOD_NOT_ALLOWED: { http: 405, exit: 2 },
  RELEASE_NOT_FOUND: { http: 404, exit: 3 },
  FETCH_NOT_FOUND: { http: 404, exit: 3 },
  PUBLISH_NOT_FOUND: { http: 404, exit: 3 },
  INPUT_NOT_FOUND: { http: 422, exit: 3 },
  INPUT_UNREADABLE: { http: 422, exit: 6 },
  EMPTY_RELEASE: { http: 422, exit: 2 },
  PATH_COLLISION: { http: 422, exit: 2 },
  INPUT_CHANGED: { http: 409, exit: 1 },
  /** a publish job ended by a daemon stop: nothing was signed */
  INTERRUPTED: { http: 503, exit: 5 },
  PUBLISH_FAILED: { http: 500, exit: 1 },
  VERSION_EXISTS: { http: 409, exit: 2 },
  CONFLICT: { http: 409, exit: 1 },
  GC_BUSY: { http: 409, exit: 6 },
  TARGET_NOT_EMPTY: { http: 409, exit: 2 },
  MISDIRECTED_HOST: { http: 421, exit: 1 },
  NOT_PUBLISHER: { http: 409, exit: 2 },
  UNTRUSTED_PUBLISHER: { http: 422, exit: 4 },
  BAD_SIGNATURE: { http: 422, exit: 4 },
  RELEASE_REPLAY: { http: 422, exit: 4 },
  INVALID_MANIFEST: { http: 422, exit: 4 },
  INVALID_RECORD: { http: 422, exit: 4 },
  HASH_MISMATCH: { http: 422, exit: 4 },
  /** a release signed for another manifest than the one a fetch (a desired-state entry) pinned */
  MANIFEST_MISMATCH: { http: 422, exit: 4 },
  PATH_ESCAPE: { http: 422, exit: 4 },
  NO_SOURCE: { http: 502, exit: 5 },
  FETCH_FAILED: { http: 502, exit: 5 },
  /** a peer sent a frame that does not decode */
  MALFORMED_MESSAGE: { http: 502, exit: 5 },
  /** a delta object could not be applied (peer data or a base chunk gone) */
  DELTA_FAILED: { http: 502, exit: 5 },
  UNREACHABLE: { http: 502, exit: 5 },
  STORE_LOCKED: { http: 503, exit: 6 },
  STORE_CLOSED: { http: 503, exit: 6 },
  SHUTTING_DOWN: { http: 503, exit: 5 },
  NOT_READY: { http: 503, exit: 5 },
  STORE_CORRUPT: { http: 500, exit: 6 },
  SCHEMA_VERSION: { http: 500, exit: 6 },
  DISK_FULL: { http: 507, exit: 6 },
  /** asked of a feature this build does not have (a desired-state entry's `version: latest`) */
  UNSUPPORTED: { http: 501, exit: 2 },
  /** a programming error inside the daemon: the message is logged, not sent */
  INTERNAL: { http: 500, exit: 1 }
}

export const HTTP_STATUS_BY_CODE: Record<string, number> = Object.fromEntries(Object.entries(ERROR_CODES).map(([code, m]) => [code, m.http]))

/** Exit status of the CLI for an error code (see ERROR_CODES). */
export function exitCodeFor (code: string | undefined): number {
  return (code != null ? ERROR_CODES[code]?.exit : undefined) ?? 1
}

/** An error with a stable code, for errors the daemon itself raises. */
export class HeraldError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'HeraldError'
  }
}

export function codeOf (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
