// Typed errors of the HTTP chunk path. A response that breaks a bound or fails its CID check is the
// source's fault (`reason` names what it did, for penalties and metrics); the caller tries another source.
import { CodedError } from '../../protocol/errors.js'

export type HttpSourceFault = 'too_large' | 'short_body' | 'bad_compression' | 'bad_digest' | 'bad_response'

export class HttpSourceError extends CodedError {
  static name = 'HttpSourceError'
  readonly reason: HttpSourceFault
  constructor (reason: HttpSourceFault, message: string, options?: ErrorOptions) {
    super(reason === 'bad_digest' ? 'HASH_MISMATCH' : 'BAD_RESPONSE', 'HttpSourceError', message, options)
    this.reason = reason
  }
}
