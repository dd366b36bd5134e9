// Typed errors of the content format. Each has a stable `code` shared with the API and the CLI.

/** An error with a stable code; the base of the typed errors of protocol/ and store/. */
export class CodedError extends Error {
  readonly code: string
  constructor (code: string, name: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = name
  }
}

export class InvalidChunkerError extends CodedError {
  static name = 'InvalidChunkerError'
  constructor (message: string, options?: ErrorOptions) { super('INVALID_MANIFEST', 'InvalidChunkerError', message, options) }
}

export class InvalidNameError extends CodedError {
  static name = 'InvalidNameError'
  constructor (message: string, options?: ErrorOptions) { super('INVALID_NAME', 'InvalidNameError', message, options) }
}

export class InvalidPathError extends CodedError {
  static name = 'InvalidPathError'
  constructor (message: string, options?: ErrorOptions) { super('INVALID_PATH', 'InvalidPathError', message, options) }
}

export class PathEscapeError extends CodedError {
  static name = 'PathEscapeError'
  constructor (message: string, options?: ErrorOptions) { super('PATH_ESCAPE', 'PathEscapeError', message, options) }
}

export class InvalidManifestError extends CodedError {
  static name = 'InvalidManifestError'
  constructor (message: string, options?: ErrorOptions) { super('INVALID_MANIFEST', 'InvalidManifestError', message, options) }
}

export class HashMismatchError extends CodedError {
  static name = 'HashMismatchError'
  constructor (message: string, options?: ErrorOptions) { super('HASH_MISMATCH', 'HashMismatchError', message, options) }
}

export class InvalidRecordError extends CodedError {
  static name = 'InvalidRecordError'
  constructor (message: string, options?: ErrorOptions) { super('INVALID_RECORD', 'InvalidRecordError', message, options) }
}

export class UntrustedPublisherError extends CodedError {
  static name = 'UntrustedPublisherError'
  constructor (message: string, options?: ErrorOptions) { super('UNTRUSTED_PUBLISHER', 'UntrustedPublisherError', message, options) }
}

export class BadSignatureError extends CodedError {
  static name = 'BadSignatureError'
  constructor (message: string, options?: ErrorOptions) { super('BAD_SIGNATURE', 'BadSignatureError', message, options) }
}

export class ReleaseReplayError extends CodedError {
  static name = 'ReleaseReplayError'
  constructor (message: string, options?: ErrorOptions) { super('RELEASE_REPLAY', 'ReleaseReplayError', message, options) }
}

export class InvalidInputError extends CodedError {
  static name = 'InvalidInputError'
  constructor (message: string, options?: ErrorOptions) { super('INVALID_ARGUMENT', 'InvalidInputError', message, options) }
}

/** The publish input (directory or file) does not exist. */
export class InputNotFoundError extends CodedError {
  static name = 'InputNotFoundError'
  constructor (message: string, options?: ErrorOptions) { super('INPUT_NOT_FOUND', 'InputNotFoundError', message, options) }
}

/** The publish input, or something in it, cannot be read (permissions, I/O error). */
export class InputUnreadableError extends CodedError {
  static name = 'InputUnreadableError'
  constructor (message: string, options?: ErrorOptions) { super('INPUT_UNREADABLE', 'InputUnreadableError', message, options) }
}

/** The publish input holds no file and no symlink (an unmounted mount point looks like this). */
export class EmptyReleaseError extends CodedError {
  static name = 'EmptyReleaseError'
  constructor (message: string, options?: ErrorOptions) { super('EMPTY_RELEASE', 'EmptyReleaseError', message, options) }
}

/** An input file changed while the release was being read (a mirror sync still running). */
export class InputChangedError extends CodedError {
  static name = 'InputChangedError'
  constructor (message: string, options?: ErrorOptions) { super('INPUT_CHANGED', 'InputChangedError', message, options) }
}

/** Two inputs would land at one path of the release (e.g. `README` and `README.gz`). */
export class PathCollisionError extends CodedError {
  static name = 'PathCollisionError'
  constructor (message: string, options?: ErrorOptions) { super('PATH_COLLISION', 'PathCollisionError', message, options) }
}
