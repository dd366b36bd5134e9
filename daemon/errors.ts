// Errors that cross the process boundary carry a stable `code`; the API maps it to an HTTP status, the
// CLI to an exit status, metrics use it as a label. Codes are shared with protocol/ and store/ errors,
// which carry the same `code` property.

export const HTTP_STATUS_BY_CODE: Record<string, number> = {
  BAD_REQUEST: 400,
  INVALID_ARGUMENT: 400,
  INVALID_NAME: 400,
  INVALID_PATH: 400,
  INVALID_CID: 400,
  INVALID_CONFIG: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  RELEASE_NOT_FOUND: 404,
  FETCH_NOT_FOUND: 404,
  PUBLISH_NOT_FOUND: 404,
  INPUT_NOT_FOUND: 422,
  INPUT_UNREADABLE: 422,
  EMPTY_RELEASE: 422,
  PATH_COLLISION: 422,
  INPUT_CHANGED: 409,
  VERSION_EXISTS: 409,
  CONFLICT: 409,
  GC_BUSY: 409,
  NOT_PUBLISHER: 409,
  UNTRUSTED_PUBLISHER: 422,
  BAD_SIGNATURE: 422,
  RELEASE_REPLAY: 422,
  INVALID_MANIFEST: 422,
  INVALID_RECORD: 422,
  HASH_MISMATCH: 422,
  PATH_ESCAPE: 422,
  NO_SOURCE: 502,
  FETCH_FAILED: 502,
  STORE_LOCKED: 503,
  NOT_READY: 503,
  SHUTTING_DOWN: 503,
  DISK_FULL: 507
}

/** Exit status of the CLI for an error code: 2 usage, 3 not found, 4 trust/verification, 5 network, 6 local resources, 1 anything else. */
export function exitCodeFor (code: string | undefined): number {
  switch (code) {
    case 'BAD_REQUEST': case 'INVALID_ARGUMENT': case 'INVALID_NAME': case 'INVALID_PATH': case 'INVALID_CID': case 'INVALID_CONFIG':
      return 2
    case 'EMPTY_RELEASE': case 'VERSION_EXISTS': case 'PATH_COLLISION':
      return 2
    case 'NOT_FOUND': case 'RELEASE_NOT_FOUND': case 'FETCH_NOT_FOUND': case 'PUBLISH_NOT_FOUND': case 'INPUT_NOT_FOUND':
      return 3
    case 'UNTRUSTED_PUBLISHER': case 'BAD_SIGNATURE': case 'RELEASE_REPLAY': case 'INVALID_MANIFEST': case 'INVALID_RECORD': case 'HASH_MISMATCH': case 'PATH_ESCAPE':
      return 4
    case 'NO_SOURCE': case 'FETCH_FAILED': case 'UNREACHABLE':
      return 5
    case 'STORE_LOCKED': case 'DISK_FULL': case 'GC_BUSY': case 'INPUT_UNREADABLE':
      return 6
    default:
      return 1
  }
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
