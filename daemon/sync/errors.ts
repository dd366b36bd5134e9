// Errors of the desired-state (DatabaseSync) reader and reconciler. Codes are listed in daemon/errors.ts.
import { HeraldError } from '../errors.js'

/** A DatabaseSync document that does not parse or validate: names the file and the path of the bad key. */
export class SyncDocumentError extends HeraldError {
  static name = 'SyncDocumentError'
  readonly file: string
  readonly problems: string[]
  constructor (file: string, problems: string[], options?: ErrorOptions) {
    super('INVALID_SYNC_DOCUMENT', `${file}: ${problems.join('; ')}`, options)
    this.name = 'SyncDocumentError'
    this.file = file
    this.problems = problems
  }
}
