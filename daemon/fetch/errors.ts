// Errors of the fetch folder, each with a stable code.

/** no source delivered anything for the stall timeout */
export class NoSourceError extends Error {
  static name = 'NoSourceError'
  readonly code = 'NO_SOURCE'
  constructor (message: string) {
    super(message)
    this.name = 'NoSourceError'
  }
}

/** thrown by the scheduler's `store` when a delta object arrived intact but does not rebuild its chunk */
export class DeltaFailedError extends Error {
  static name = 'DeltaFailedError'
  readonly code = 'DELTA_FAILED'
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DeltaFailedError'
  }
}

/**
 * A source broke the protocol: bytes that do not match their CID, a body over its bound, a frame that does
 * not decode. The scheduler penalises the source as it does a peer whose bytes fail the store's CID check.
 */
export class SourceMisbehavedError extends Error {
  static name = 'SourceMisbehavedError'
  readonly code = 'SOURCE_MISBEHAVED'
  /** a metric label: bad_hash, too_large, bad_compression, short_body, bad_response */
  readonly reason: string
  constructor (reason: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'SourceMisbehavedError'
    this.reason = reason
  }
}
