// Typed errors of the store. Each has a stable `code` shared with the API and the CLI.
import { CodedError } from '../protocol/errors.js'

export class StoreLockedError extends CodedError {
  static name = 'StoreLockedError'
  constructor (dir: string, options?: ErrorOptions) { super('STORE_LOCKED', 'StoreLockedError', `another heraldd is using this data directory (${dir})`, options) }
}

export class SchemaVersionError extends CodedError {
  static name = 'SchemaVersionError'
  constructor (message: string) { super('SCHEMA_VERSION', 'SchemaVersionError', message) }
}

export class StoreCorruptError extends CodedError {
  static name = 'StoreCorruptError'
  constructor (message: string, options?: ErrorOptions) { super('STORE_CORRUPT', 'StoreCorruptError', message, options) }
}

export class DiskFullError extends CodedError {
  static name = 'DiskFullError'
  /** bytes the operation needed and bytes free, when known (the free-space check before a fetch) */
  readonly needed?: number
  readonly available?: number
  constructor (message: string, options?: ErrorOptions & { needed?: number, available?: number }) {
    super('DISK_FULL', 'DiskFullError', message, options)
    this.needed = options?.needed
    this.available = options?.available
  }
}

export class StoreClosedError extends CodedError {
  static name = 'StoreClosedError'
  constructor () { super('STORE_CLOSED', 'StoreClosedError', 'the store is closed') }
}

export class MissingChunkError extends CodedError {
  static name = 'MissingChunkError'
  constructor (message: string) { super('NOT_FOUND', 'MissingChunkError', message) }
}
