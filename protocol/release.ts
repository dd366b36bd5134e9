// Release records: the publisher's ed25519 signature binding `dataset@version`, a sequence number and a
// time to a manifest CID. The envelope is DAG-CBOR { record, publicKey, signature }; the signature covers
// a domain-separated encoding of the record ("herald-release-v1\n" || DAG-CBOR(record)), so it can never be
// mistaken for a signature over anything else.
import * as dagCbor from '@ipld/dag-cbor'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { CID } from 'multiformats/cid'
import { BadSignatureError, InvalidRecordError, ReleaseReplayError, UntrustedPublisherError } from './errors.js'
import { validDataset, validVersion } from './names.js'
import type { PrivateKey } from '@libp2p/interface'

export const RECORD_VERSION = 1
export const MAX_RECORD_BYTES = 4096
const DOMAIN = new TextEncoder().encode('herald-release-v1\n')
const KEY_PREFIX = 'ed25519:'

export interface ReleaseRecord {
  dataset: string
  version: string
  manifestCid: CID
  seq: number
  /** ms since the epoch */
  publishedAt: number
}

export interface SignedRelease {
  record: ReleaseRecord
  /** raw 32-byte ed25519 public key */
  publicKey: Uint8Array
  signature: Uint8Array
  /** the encoded envelope */
  bytes: Uint8Array
}

function payload (r: ReleaseRecord): Uint8Array {
  const body = dagCbor.encode({ v: RECORD_VERSION, dataset: r.dataset, version: r.version, manifest: r.manifestCid, seq: r.seq, publishedAt: r.publishedAt })
  const out = new Uint8Array(DOMAIN.byteLength + body.byteLength)
  out.set(DOMAIN)
  out.set(body, DOMAIN.byteLength)
  return out
}

function checkRecord (r: ReleaseRecord): void {
  if (!validDataset(r.dataset) || !validVersion(r.version)) throw new InvalidRecordError('invalid release name in record')
  if (!Number.isSafeInteger(r.seq) || r.seq < 0) throw new InvalidRecordError('record seq must be a non-negative integer')
  if (!Number.isSafeInteger(r.publishedAt) || r.publishedAt < 0) throw new InvalidRecordError('record publishedAt must be a non-negative integer')
}

export async function signRelease (record: ReleaseRecord, key: PrivateKey): Promise<Uint8Array> {
  if (key.type !== 'Ed25519') throw new InvalidRecordError('release records are signed with an Ed25519 key')
  checkRecord(record)
  const signature = await key.sign(payload(record))
  return dagCbor.encode({
    record: { v: RECORD_VERSION, dataset: record.dataset, version: record.version, manifest: record.manifestCid, seq: record.seq, publishedAt: record.publishedAt },
    publicKey: key.publicKey.raw,
    signature
  })
}

export function decodeSignedRelease (bytes: Uint8Array): SignedRelease {
  if (bytes.byteLength > MAX_RECORD_BYTES) throw new InvalidRecordError(`release record of ${bytes.byteLength} bytes is over the ${MAX_RECORD_BYTES}-byte limit`)
  let raw: any
  try {
    raw = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidRecordError('release record is not DAG-CBOR', { cause: err })
  }
  const r = raw?.record
  if (r == null || typeof r !== 'object' || r.v !== RECORD_VERSION) throw new InvalidRecordError('unsupported release record')
  const manifestCid = CID.asCID(r.manifest)
  if (manifestCid == null) throw new InvalidRecordError('release record has no manifest CID')
  if (typeof r.dataset !== 'string' || typeof r.version !== 'string') throw new InvalidRecordError('release record has no name')
  const record: ReleaseRecord = { dataset: r.dataset, version: r.version, manifestCid, seq: r.seq, publishedAt: r.publishedAt }
  checkRecord(record)
  if (!(raw.publicKey instanceof Uint8Array) || raw.publicKey.byteLength !== 32) throw new InvalidRecordError('release record public key must be 32 bytes')
  if (!(raw.signature instanceof Uint8Array) || raw.signature.byteLength !== 64) throw new InvalidRecordError('release record signature must be 64 bytes')
  return { record, publicKey: raw.publicKey, signature: raw.signature, bytes }
}

/** The text form of a publisher key operators put in `trustedPublishers`: `ed25519:<base64url>`. */
export function publisherKeyText (publicKey: Uint8Array): string {
  return KEY_PREFIX + Buffer.from(publicKey).toString('base64url')
}

export function parsePublisherKey (text: string): Uint8Array {
  const t = text.trim()
  if (!t.startsWith(KEY_PREFIX)) throw new UntrustedPublisherError(`publisher key must start with ${KEY_PREFIX}`)
  const raw = new Uint8Array(Buffer.from(t.slice(KEY_PREFIX.length), 'base64url'))
  if (raw.byteLength !== 32) throw new UntrustedPublisherError('publisher key must be 32 bytes')
  return raw
}

/**
 * A publisher key and the dataset names it is trusted for (TUF-style delegations scoped to names).
 * `names` holds exact names or patterns with `*` (any run of characters); undefined means every name.
 */
export interface TrustedKey {
  key: Uint8Array
  names?: string[]
}

/** Does a name pattern (`uniprot`, `ncbi-*`, `*`) cover this dataset? */
export function nameMatches (pattern: string, dataset: string): boolean {
  if (!pattern.includes('*')) return pattern === dataset
  const re = new RegExp('^' + pattern.split('*').map(p => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')
  return re.test(dataset)
}

function toTrustedKey (k: Uint8Array | string | TrustedKey): TrustedKey {
  if (typeof k === 'string') return { key: parsePublisherKey(k) }
  if (k instanceof Uint8Array) return { key: k }
  return k
}

/**
 * Accept a record only when its signer is trusted for the record's dataset and the signature is good.
 * A bare key (bytes or text) is trusted for every name.
 */
export async function verifyRelease (signed: SignedRelease, trusted: Array<Uint8Array | string | TrustedKey>): Promise<void> {
  const { dataset, version } = signed.record
  const signer = Buffer.from(signed.publicKey)
  const matching = trusted.map(toTrustedKey).filter(t => signer.equals(Buffer.from(t.key)))
  if (matching.length === 0) throw new UntrustedPublisherError(`release ${dataset}@${version} is signed by ${publisherKeyText(signed.publicKey)}, which is not a trusted publisher`)
  if (!matching.some(t => t.names == null || t.names.some(p => nameMatches(p, dataset)))) {
    const scopes = matching.flatMap(t => t.names ?? []).join(', ')
    throw new UntrustedPublisherError(`release ${dataset}@${version} is signed by ${publisherKeyText(signed.publicKey)}, which is trusted only for ${scopes}`)
  }
  let ok = false
  try {
    ok = await publicKeyFromRaw(signed.publicKey).verify(payload(signed.record), signed.signature)
  } catch (err) {
    throw new BadSignatureError('release record signature could not be checked', { cause: err })
  }
  if (!ok) throw new BadSignatureError(`release record for ${dataset}@${version} has a bad signature`)
}

/** A record with a lower seq than one already accepted for the same release is a replay. */
export function checkNotReplay (prev: { seq: number } | undefined, next: { seq: number, dataset: string, version: string }): void {
  if (prev != null && next.seq < prev.seq) {
    throw new ReleaseReplayError(`refusing record seq ${next.seq} for ${next.dataset}@${next.version}: seq ${prev.seq} is already accepted`)
  }
}
