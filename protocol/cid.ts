// Content addressing. A chunk's id is a CIDv1 with codec raw and a sha2-256 multihash: the id IPFS gives
// the same bytes as a raw block. Every chunk in a manifest uses that one hash, so inside the store and on
// the wire a chunk is named by its 32-byte sha256 digest; the CID is the public spelling.
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { equals } from 'multiformats/bytes'

export const RAW_CODEC = 0x55
export const DAG_CBOR_CODEC = 0x71
export const SHA2_256_CODE = 0x12
export const DIGEST_LENGTH = 32

export function sha256 (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

/** The CIDv1 (raw, sha2-256) of a chunk's bytes. */
export function chunkCid (bytes: Uint8Array): CID {
  return cidFromDigest(sha256(bytes))
}

/** The raw/sha2-256 CID named by a 32-byte digest. */
export function cidFromDigest (digest: Uint8Array, codec: number = RAW_CODEC): CID {
  if (digest.byteLength !== DIGEST_LENGTH) throw new RangeError(`sha256 digest must be ${DIGEST_LENGTH} bytes, got ${digest.byteLength}`)
  return CID.createV1(codec, Digest.create(SHA2_256_CODE, digest))
}

/** The 32-byte digest of a sha2-256 CID; throws InvalidCidError for any other hash. */
export function digestOf (cid: CID): Uint8Array {
  if (cid.multihash.code !== SHA2_256_CODE || cid.multihash.digest.byteLength !== DIGEST_LENGTH) {
    throw new InvalidCidError(`expected a sha2-256 CID, got hash code 0x${cid.multihash.code.toString(16)}`)
  }
  return cid.multihash.digest
}

/** True when `bytes` hash to `digest`. */
export function verifyDigest (digest: Uint8Array, bytes: Uint8Array): boolean {
  return equals(sha256(bytes), digest)
}

export function parseCid (text: string): CID {
  try {
    return CID.parse(text)
  } catch (err) {
    throw new InvalidCidError(`not a CID: ${JSON.stringify(text.slice(0, 80))}`, { cause: err })
  }
}

export function decodeCid (bytes: Uint8Array): CID {
  try {
    return CID.decode(bytes)
  } catch (err) {
    throw new InvalidCidError('malformed CID bytes', { cause: err })
  }
}

/** Hex of a digest, for map keys and logs. */
export function digestHex (digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex')
}

export class InvalidCidError extends Error {
  static name = 'InvalidCidError'
  readonly code = 'INVALID_CID'
  constructor (message = 'invalid CID', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InvalidCidError'
  }
}

export { CID }
