// Wire messages of Herald's protocols: small fixed binary layouts inside length-prefixed (unsigned
// varint) frames. Every decoder takes untrusted bytes, checks every length against the frame, and throws
// MalformedMessageError; fields may only be added at the end of a message (older decoders ignore them).
// Layouts and golden bytes: docs/PROTOCOL.md and test/protocol/exchange/messages.spec.ts.
import { Uint8ArrayList } from 'uint8arraylist'
import { MalformedMessageError } from './errors.js'

export enum Status { OK = 0, NOT_FOUND = 1, RATE_LIMITED = 2, ERROR = 3, BAD_REQUEST = 4, TOO_LARGE = 5 }
export enum Encoding { RAW = 0, ZSTD = 1, DELTA = 2 }

export const DIGEST_BYTES = 32
/** most digests one chunk request may name */
export const MAX_BATCH = 64
/** a chunk frame: 38-byte header + up to 4 MiB of data */
export const MAX_CHUNK_FRAME = 4 * 1024 * 1024 + 64
/** the most chunks one have-bitmap may describe */
export const MAX_HAVE_CHUNKS = 4_000_000
export const MAX_HAVE_FRAME = 5 + Math.ceil(MAX_HAVE_CHUNKS / 8)
export const MANIFEST_FRAME_BYTES = 1024 * 1024

function flat (b: Uint8Array | Uint8ArrayList): Uint8Array {
  return b instanceof Uint8Array ? b : b.subarray()
}

function need (buf: Uint8Array, n: number, what: string): void {
  if (buf.byteLength < n) throw new MalformedMessageError(`${what}: frame of ${buf.byteLength} bytes, need ${n}`)
}

function status (v: number): Status {
  if (!(v in Status)) throw new MalformedMessageError(`unknown status ${v}`)
  return v as Status
}

// ---- /herald/chunk/1.0.0 ---------------------------------------------------------------------------

/** encodings a client accepts, as a bitmask in the request's trailing byte */
export const ACCEPT_ZSTD = 0x01

/** ChunkRequest: u8 version (1) | u16 count (BE) | count × 32-byte digest | [u8 accept bitmask] */
export function encodeChunkRequest (digests: Uint8Array[], accept = 0): Uint8Array {
  if (digests.length === 0 || digests.length > MAX_BATCH) throw new RangeError(`a chunk request names 1–${MAX_BATCH} digests`)
  const out = new Uint8Array(3 + digests.length * DIGEST_BYTES + (accept !== 0 ? 1 : 0))
  if (accept !== 0) out[out.byteLength - 1] = accept
  out[0] = 1
  new DataView(out.buffer).setUint16(1, digests.length)
  digests.forEach((d, i) => {
    if (d.byteLength !== DIGEST_BYTES) throw new RangeError('digest must be 32 bytes')
    out.set(d, 3 + i * DIGEST_BYTES)
  })
  return out
}

export function decodeChunkRequest (frame: Uint8Array | Uint8ArrayList): Uint8Array[] {
  return decodeChunkRequestFull(frame).digests
}

export function decodeChunkRequestFull (frame: Uint8Array | Uint8ArrayList): { digests: Uint8Array[], accept: number } {
  const buf = flat(frame)
  const digests = decodeDigests(buf)
  const end = 3 + digests.length * DIGEST_BYTES
  return { digests, accept: buf.byteLength > end ? buf[end] : 0 }
}

function decodeDigests (frame: Uint8Array): Uint8Array[] {
  const buf = flat(frame)
  need(buf, 3, 'chunk request')
  if (buf[0] !== 1) throw new MalformedMessageError(`chunk request version ${buf[0]}`)
  const count = new DataView(buf.buffer, buf.byteOffset).getUint16(1)
  if (count === 0 || count > MAX_BATCH) throw new MalformedMessageError(`chunk request names ${count} digests (1–${MAX_BATCH})`)
  need(buf, 3 + count * DIGEST_BYTES, 'chunk request')
  return Array.from({ length: count }, (_, i) => buf.slice(3 + i * DIGEST_BYTES, 3 + (i + 1) * DIGEST_BYTES))
}

export interface ChunkResponse {
  status: Status
  encoding: Encoding
  digest: Uint8Array
  data: Uint8Array
  /** size of the chunk once decoded (ZSTD only) */
  rawSize?: number
}

/** ChunkResponse: u8 status | u8 encoding | 32-byte digest | u32 length (BE) | data | [u32 raw size, ZSTD only] */
export function encodeChunkResponseHeader (r: Omit<ChunkResponse, 'data'>, dataLength: number): Uint8Array {
  const out = new Uint8Array(38)
  out[0] = r.status
  out[1] = r.encoding
  out.set(r.digest, 2)
  new DataView(out.buffer).setUint32(34, dataLength)
  return out
}

/** The response as parts (header, the data itself, trailer): serving sends the stored bytes without copying them. */
export function encodeChunkResponseList (r: ChunkResponse): Uint8ArrayList {
  const out = new Uint8ArrayList(encodeChunkResponseHeader(r, r.data.byteLength))
  if (r.data.byteLength > 0) out.append(r.data)
  if (r.encoding === Encoding.ZSTD) {
    const trailer = new Uint8Array(4)
    new DataView(trailer.buffer).setUint32(0, r.rawSize ?? 0)
    out.append(trailer)
  }
  return out
}

export function encodeChunkResponse (r: ChunkResponse): Uint8Array {
  return encodeChunkResponseList(r).subarray()
}

export function decodeChunkResponse (frame: Uint8Array | Uint8ArrayList): ChunkResponse {
  const buf = flat(frame)
  need(buf, 38, 'chunk response')
  const s = status(buf[0])
  const encoding = buf[1]
  if (!(encoding in Encoding)) throw new MalformedMessageError(`unknown encoding ${encoding}`)
  const length = new DataView(buf.buffer, buf.byteOffset).getUint32(34)
  need(buf, 38 + length, 'chunk response')
  if (s !== Status.OK && length !== 0) throw new MalformedMessageError('a non-OK chunk response carries no data')
  const out: ChunkResponse = { status: s, encoding, digest: buf.subarray(2, 34), data: buf.subarray(38, 38 + length) }
  if (encoding === Encoding.ZSTD) {
    need(buf, 42 + length, 'compressed chunk response')
    out.rawSize = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(38 + length)
  }
  return out
}

// ---- /herald/have/1.0.0 ----------------------------------------------------------------------------

/** HaveRequest: u8 version (1) | CID bytes of the manifest */
export function encodeHaveRequest (cidBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + cidBytes.byteLength)
  out[0] = 1
  out.set(cidBytes, 1)
  return out
}

export function decodeHaveRequest (frame: Uint8Array | Uint8ArrayList): Uint8Array {
  const buf = flat(frame)
  need(buf, 2, 'have request')
  if (buf[0] !== 1) throw new MalformedMessageError(`have request version ${buf[0]}`)
  if (buf.byteLength > 128) throw new MalformedMessageError('have request CID too long')
  return buf.slice(1)
}

export type HaveMessage =
  | { type: 'bitmap', status: Status, count: number, bitmap: Uint8Array }
  | { type: 'update', complete: boolean, indices: number[] }

/**
 * Bitmap: u8 type (1) | u8 status | u32 count (BE) | ceil(count/8) bytes, MSB first (protocol/bitmap.ts)
 * Update: u8 type (2) | u8 complete (0/1) | u32 n (BE) | n × u32 index (BE)
 */
export function encodeHaveMessage (m: HaveMessage): Uint8Array {
  if (m.type === 'bitmap') {
    const len = m.status === Status.OK ? Math.ceil(m.count / 8) : 0
    const out = new Uint8Array(6 + len)
    out[0] = 1
    out[1] = m.status
    new DataView(out.buffer).setUint32(2, m.status === Status.OK ? m.count : 0)
    if (len > 0) out.set(m.bitmap.subarray(0, len), 6)
    return out
  }
  const out = new Uint8Array(6 + 4 * m.indices.length)
  const dv = new DataView(out.buffer)
  out[0] = 2
  out[1] = m.complete ? 1 : 0
  dv.setUint32(2, m.indices.length)
  m.indices.forEach((v, i) => dv.setUint32(6 + 4 * i, v))
  return out
}

export function decodeHaveMessage (frame: Uint8Array | Uint8ArrayList): HaveMessage {
  const buf = flat(frame)
  need(buf, 6, 'have message')
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const n = dv.getUint32(2)
  if (buf[0] === 1) {
    const s = status(buf[1])
    if (n > MAX_HAVE_CHUNKS) throw new MalformedMessageError(`have bitmap of ${n} chunks is over the limit`)
    const len = s === Status.OK ? Math.ceil(n / 8) : 0
    need(buf, 6 + len, 'have bitmap')
    return { type: 'bitmap', status: s, count: n, bitmap: buf.slice(6, 6 + len) }
  }
  if (buf[0] === 2) {
    if (buf[1] > 1) throw new MalformedMessageError('have update complete flag must be 0 or 1')
    if (n > MAX_HAVE_CHUNKS) throw new MalformedMessageError(`have update of ${n} indices is over the limit`)
    need(buf, 6 + 4 * n, 'have update')
    return { type: 'update', complete: buf[1] === 1, indices: Array.from({ length: n }, (_, i) => dv.getUint32(6 + 4 * i)) }
  }
  throw new MalformedMessageError(`unknown have message type ${buf[0]}`)
}

// ---- /herald/release/1.0.0 and /herald/manifest/1.0.0 ------------------------------------------------

/** ReleaseRequest: u8 version (1) | u8 dataset length | dataset | u8 version length | version (UTF-8) */
export function encodeReleaseRequest (dataset: string, version: string): Uint8Array {
  const d = new TextEncoder().encode(dataset)
  const v = new TextEncoder().encode(version)
  if (d.byteLength > 255 || v.byteLength > 255) throw new RangeError('release name too long')
  const out = new Uint8Array(3 + d.byteLength + v.byteLength)
  out[0] = 1
  out[1] = d.byteLength
  out.set(d, 2)
  out[2 + d.byteLength] = v.byteLength
  out.set(v, 3 + d.byteLength)
  return out
}

export function decodeReleaseRequest (frame: Uint8Array | Uint8ArrayList): { dataset: string, version: string } {
  const buf = flat(frame)
  need(buf, 3, 'release request')
  if (buf[0] !== 1) throw new MalformedMessageError(`release request version ${buf[0]}`)
  const dl = buf[1]
  need(buf, 3 + dl, 'release request')
  const vl = buf[2 + dl]
  need(buf, 3 + dl + vl, 'release request')
  const td = new TextDecoder('utf-8', { fatal: true })
  try {
    return { dataset: td.decode(buf.subarray(2, 2 + dl)), version: td.decode(buf.subarray(3 + dl, 3 + dl + vl)) }
  } catch (err) {
    throw new MalformedMessageError('release request name is not UTF-8', { cause: err })
  }
}

/** ReleaseResponse: u8 status | signed record envelope (OK only) */
export function encodeReleaseResponse (s: Status, record?: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + (record?.byteLength ?? 0))
  out[0] = s
  if (record != null) out.set(record, 1)
  return out
}

export function decodeReleaseResponse (frame: Uint8Array | Uint8ArrayList): { status: Status, record: Uint8Array } {
  const buf = flat(frame)
  need(buf, 1, 'release response')
  return { status: status(buf[0]), record: buf.slice(1) }
}

/** ManifestRequest: u8 version (1) | CID bytes */
export const encodeManifestRequest = encodeHaveRequest
export const decodeManifestRequest = decodeHaveRequest

/**
 * ManifestRequest v2 (/herald/manifest/1.1.0): u8 version (2) | u8 n | n bytes: CID | CID bytes of a base
 * manifest the asker holds (may be empty): the answer may be a delta against it.
 */
export function encodeManifestRequestV2 (cidBytes: Uint8Array, baseBytes?: Uint8Array): Uint8Array {
  if (cidBytes.byteLength > 126 || (baseBytes?.byteLength ?? 0) > 126) throw new RangeError('CID too long')
  const out = new Uint8Array(2 + cidBytes.byteLength + (baseBytes?.byteLength ?? 0))
  out[0] = 2
  out[1] = cidBytes.byteLength
  out.set(cidBytes, 2)
  if (baseBytes != null) out.set(baseBytes, 2 + cidBytes.byteLength)
  return out
}

export function decodeManifestRequestV2 (frame: Uint8Array | Uint8ArrayList): { cid: Uint8Array, base?: Uint8Array } {
  const buf = flat(frame)
  need(buf, 3, 'manifest request')
  if (buf[0] !== 2) throw new MalformedMessageError(`manifest request version ${buf[0]}`)
  const n = buf[1]
  if (n === 0 || n > 126 || buf.byteLength < 2 + n) throw new MalformedMessageError('manifest request CID length')
  if (buf.byteLength - 2 - n > 126) throw new MalformedMessageError('manifest request base CID too long')
  const base = buf.byteLength > 2 + n ? buf.slice(2 + n) : undefined
  return { cid: buf.slice(2, 2 + n), base }
}

/** ManifestHeader v2: u8 status | u32 total size (BE) | u8 encoding (0 raw, 1 delta against the base) | u32 bytes that follow (BE) */
export function encodeManifestHeaderV2 (s: Status, total: number, delta: boolean, wire: number): Uint8Array {
  const out = new Uint8Array(10)
  out[0] = s
  const view = new DataView(out.buffer)
  view.setUint32(1, total)
  out[5] = delta ? 1 : 0
  view.setUint32(6, wire)
  return out
}

export function decodeManifestHeaderV2 (frame: Uint8Array | Uint8ArrayList): { status: Status, total: number, delta: boolean, wire: number } {
  const buf = flat(frame)
  need(buf, 10, 'manifest header')
  if (buf.byteLength !== 10) throw new MalformedMessageError('manifest header length')
  const s = status(buf[0])
  const view = new DataView(buf.buffer, buf.byteOffset)
  const total = view.getUint32(1)
  if (buf[5] > 1) throw new MalformedMessageError(`manifest encoding ${buf[5]}`)
  const delta = buf[5] === 1
  const wire = view.getUint32(6)
  if (s !== Status.OK && (total !== 0 || wire !== 0)) throw new MalformedMessageError('a non-OK manifest header announces no bytes')
  if (!delta && wire !== total) throw new MalformedMessageError('a raw manifest announces its size twice, differently')
  if (delta && wire > total + 1024) throw new MalformedMessageError('a manifest delta larger than its manifest')
  return { status: s, total, delta, wire }
}

/** ManifestHeader: u8 status | u32 total size (BE); then ceil(total / 1 MiB) data frames */
export function encodeManifestHeader (s: Status, total: number): Uint8Array {
  const out = new Uint8Array(5)
  out[0] = s
  new DataView(out.buffer).setUint32(1, total)
  return out
}

export function decodeManifestHeader (frame: Uint8Array | Uint8ArrayList): { status: Status, total: number } {
  const buf = flat(frame)
  need(buf, 5, 'manifest header')
  const s = status(buf[0])
  const total = new DataView(buf.buffer, buf.byteOffset).getUint32(1)
  if (s !== Status.OK && total !== 0) throw new MalformedMessageError('a non-OK manifest header announces no bytes')
  return { status: s, total }
}

// ---- /herald/pex/1.0.0 -----------------------------------------------------------------------------

/** peers in one PEX answer, addresses per peer, bytes per address: the bounds a receiver enforces */
export const PEX_MAX_PEERS = 32
export const PEX_MAX_ADDRS = 4
const PEX_MAX_ADDR_BYTES = 200

export interface PexEntry { id: Uint8Array, addrs: Uint8Array[] }

/** PexResponse: u8 version (1) | u8 n | n × (u8 idLen | id | u8 m | m × (u8 len | multiaddr bytes)) */
export function encodePexResponse (entries: PexEntry[]): Uint8Array {
  const list = entries.slice(0, PEX_MAX_PEERS).map(e => ({ id: e.id, addrs: e.addrs.filter(a => a.byteLength <= PEX_MAX_ADDR_BYTES).slice(0, PEX_MAX_ADDRS) }))
  let size = 2
  for (const e of list) { size += 2 + e.id.byteLength; for (const a of e.addrs) size += 1 + a.byteLength }
  const out = new Uint8Array(size)
  out[0] = 1
  out[1] = list.length
  let at = 2
  for (const e of list) {
    out[at++] = e.id.byteLength
    out.set(e.id, at); at += e.id.byteLength
    out[at++] = e.addrs.length
    for (const a of e.addrs) { out[at++] = a.byteLength; out.set(a, at); at += a.byteLength }
  }
  return out
}

export function decodePexResponse (frame: Uint8Array | Uint8ArrayList): PexEntry[] {
  const buf = flat(frame)
  need(buf, 2, 'pex response')
  if (buf[0] !== 1) throw new MalformedMessageError(`pex response version ${buf[0]}`)
  const n = buf[1]
  if (n > PEX_MAX_PEERS) throw new MalformedMessageError(`pex response of ${n} peers (at most ${PEX_MAX_PEERS})`)
  const out: PexEntry[] = []
  let at = 2
  const take = (len: number, what: string): Uint8Array => {
    if (at + len > buf.byteLength) throw new MalformedMessageError(`pex response truncated in ${what}`)
    const v = buf.slice(at, at + len)
    at += len
    return v
  }
  for (let i = 0; i < n; i++) {
    const idLen = take(1, 'id length')[0]
    if (idLen === 0 || idLen > 64) throw new MalformedMessageError('pex peer id length')
    const id = take(idLen, 'id')
    const m = take(1, 'address count')[0]
    if (m > PEX_MAX_ADDRS) throw new MalformedMessageError(`pex peer with ${m} addresses (at most ${PEX_MAX_ADDRS})`)
    const addrs: Uint8Array[] = []
    for (let k = 0; k < m; k++) {
      const len = take(1, 'address length')[0]
      if (len === 0 || len > PEX_MAX_ADDR_BYTES) throw new MalformedMessageError('pex address length')
      addrs.push(take(len, 'address'))
    }
    out.push({ id, addrs })
  }
  if (at !== buf.byteLength) throw new MalformedMessageError('bytes after the pex response')
  return out
}
