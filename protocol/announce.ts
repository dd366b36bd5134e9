// The release announcement: the message a publisher (or any node that verified a record) sends on the
// release pubsub topic. It carries the signed release record exactly as the release-record protocol
// serves it, so a lab checks it with the same code as a fetched record: the channel carries no trust.
//
// Encoding: DAG-CBOR `{ at: <sender's time, ms>, record: <signed release envelope bytes>, v: 1 }`. `at`
// is not trusted for anything: it makes a re-announce of the same record a new pubsub message (pubsub
// drops repeats of identical bytes), so that peers that joined late receive it. New fields may be added
// as optional keys; a decoder ignores keys it does not know and refuses another `v`.
import * as dagCbor from '@ipld/dag-cbor'
import { InvalidRecordError } from './errors.js'
import { decodeSignedRelease, MAX_RECORD_BYTES, type SignedRelease } from './release.js'

export const ANNOUNCE_VERSION = 1
/** the gossipsub topic every heraldd joins; one topic for all datasets (a lab filters by trust) */
export const RELEASE_TOPIC = '/herald/releases/1.0.0'
/** a record (at most MAX_RECORD_BYTES) and the few bytes of the envelope around it */
export const MAX_ANNOUNCE_BYTES = MAX_RECORD_BYTES + 64

export function encodeAnnouncement (signedRecord: Uint8Array, at: number): Uint8Array {
  if (signedRecord.byteLength > MAX_RECORD_BYTES) throw new InvalidRecordError(`release record of ${signedRecord.byteLength} bytes is over the ${MAX_RECORD_BYTES}-byte limit`)
  if (!Number.isSafeInteger(at) || at < 0) throw new InvalidRecordError('announcement time must be a non-negative integer')
  return dagCbor.encode({ v: ANNOUNCE_VERSION, record: signedRecord, at })
}

/** Decode an announcement and the record in it (not yet verified: see protocol/release.ts verifyRelease). */
export function decodeAnnouncement (bytes: Uint8Array): SignedRelease {
  if (bytes.byteLength > MAX_ANNOUNCE_BYTES) throw new InvalidRecordError(`announcement of ${bytes.byteLength} bytes is over the ${MAX_ANNOUNCE_BYTES}-byte limit`)
  let raw: any
  try {
    raw = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidRecordError('announcement is not DAG-CBOR', { cause: err })
  }
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw) || raw.v !== ANNOUNCE_VERSION) throw new InvalidRecordError('unsupported announcement')
  if (!(raw.record instanceof Uint8Array)) throw new InvalidRecordError('announcement carries no record')
  return decodeSignedRelease(raw.record)
}

/**
 * The order of "latest" within one dataset: the publisher's signed time first, then the record's seq
 * (a re-publish of one version under the same millisecond), then the version string. Positive when `a`
 * is newer than `b`.
 */
export function compareReleases (a: { publishedAt: number, seq: number, version: string }, b: { publishedAt: number, seq: number, version: string }): number {
  if (a.publishedAt !== b.publishedAt) return a.publishedAt - b.publishedAt
  if (a.seq !== b.seq) return a.seq - b.seq
  return a.version < b.version ? -1 : a.version > b.version ? 1 : 0
}
