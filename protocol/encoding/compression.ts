// The zstd content encoding of chunks (level 3, kept when it makes a chunk at least 1/16 smaller): how the
// store keeps a chunk and how the chunk protocol and the HTTP path may send it.
//
// Decompression takes untrusted bytes and is strict, so that a peer can neither make a receiver inflate
// without limit nor slip extra bytes into what the receiver stores and serves on:
// - exactly one zstd frame, nothing before or after it: no skippable frames (magic 0x184D2A50–5F), no second
//   frame, no trailing bytes (zstd itself would decode concatenated frames one after another);
// - the frame header declares its content size, equal to the size the response announces, which equals the
//   chunk's size from the manifest when the caller knows it, and is at most the largest chunk (4 MiB);
// - no dictionary, no reserved bits, a frame no larger than the chunk it encodes;
// - the output buffer is allocated at the declared size and zstd writes into it and nowhere else, so the
//   work of one call is bounded by one chunk (a few milliseconds on the event loop, never more).
// The receiver still verifies the decompressed bytes against the chunk's digest.
import { createRequire } from 'node:module'
import { MalformedMessageError } from '../exchange/errors.js'

const require = createRequire(import.meta.url)
const zstd = require('zstd-napi') as {
  compress: (data: Uint8Array, parameters?: { compressionLevel?: number }) => Buffer
}
const binding = require('zstd-napi/binding.js') as {
  decompress: (dst: Uint8Array, src: Uint8Array) => number
  findFrameCompressedSize: (frame: Uint8Array) => number
}

/** zstd level 3: 3–6× on sequence/annotation text at a few hundred MB/s per core */
export const ZSTD_LEVEL = 3
/** the largest chunk any manifest may declare (protocol/chunker.ts MAX_CHUNK_SIZE) */
export const MAX_DECOMPRESSED = 4 * 1024 * 1024
export const ZSTD_MAGIC = 0xFD2FB528
/** skippable frames: 0x184D2A50 to 0x184D2A5F */
export const ZSTD_SKIPPABLE_MAGIC = 0x184D2A50
const SKIPPABLE_MASK = 0xFFFFFFF0
/** a window larger than this (zstd's largest for a 4 MiB chunk at any level is 4 MiB) is refused */
const MAX_WINDOW = 8 * 1024 * 1024

/** The zstd form of a chunk, or undefined when compression saves less than 1/16. */
export function compressChunk (data: Uint8Array): Uint8Array | undefined {
  const c = zstd.compress(data, { compressionLevel: ZSTD_LEVEL })
  return c.byteLength <= data.byteLength - (data.byteLength >> 4) ? c : undefined
}

export interface FrameHeader {
  contentSize: number
  windowSize: number
  headerBytes: number
  checksum: boolean
}

/**
 * Parse the header of a zstd frame (RFC 8878 §3.1.1) and check it is one Herald accepts: zstd magic (a
 * skippable frame is refused), no reserved bit, no dictionary, a declared content size.
 */
export function parseFrameHeader (frame: Uint8Array): FrameHeader {
  if (frame.byteLength < 6) throw new MalformedMessageError(`zstd frame of ${frame.byteLength} bytes is too short`)
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const magic = dv.getUint32(0, true)
  if (((magic & SKIPPABLE_MASK) >>> 0) === ZSTD_SKIPPABLE_MAGIC) throw new MalformedMessageError('skippable zstd frame refused')
  if (magic !== ZSTD_MAGIC) throw new MalformedMessageError('not a zstd frame')
  const fhd = frame[4]
  const fcsFlag = fhd >> 6
  const singleSegment = (fhd & 0x20) !== 0
  if ((fhd & 0x08) !== 0) throw new MalformedMessageError('zstd frame header has its reserved bit set')
  if ((fhd & 0x03) !== 0) throw new MalformedMessageError('zstd frame names a dictionary')
  const checksum = (fhd & 0x04) !== 0
  let at = 5
  let windowSize = 0
  if (!singleSegment) {
    const wd = frame[at++]
    const exponent = wd >> 3
    const base = 2 ** (10 + exponent)
    windowSize = base + (base / 8) * (wd & 7)
  }
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag
  if (fcsBytes === 0) throw new MalformedMessageError('zstd frame does not declare its content size')
  if (frame.byteLength < at + fcsBytes + 3) throw new MalformedMessageError('zstd frame header is cut short')
  let contentSize: number
  switch (fcsBytes) {
    case 1: contentSize = frame[at]; break
    case 2: contentSize = dv.getUint16(at, true) + 256; break
    case 4: contentSize = dv.getUint32(at, true); break
    default: {
      const hi = dv.getUint32(at + 4, true)
      if (hi !== 0) throw new MalformedMessageError('zstd frame declares a content size over 4 GiB')
      contentSize = dv.getUint32(at, true)
    }
  }
  at += fcsBytes
  if (singleSegment) windowSize = contentSize
  if (windowSize > MAX_WINDOW) throw new MalformedMessageError(`zstd frame window of ${windowSize} bytes is over the ${MAX_WINDOW}-byte limit`)
  return { contentSize, windowSize, headerBytes: at, checksum }
}

/**
 * Decompress one chunk's zstd frame, strictly (see the top of this file). `rawSize` is the size the reply
 * announces; `expected`, when given, is the chunk's size from the manifest and must be the same.
 */
export function decompressChunk (frame: Uint8Array, rawSize: number, max = MAX_DECOMPRESSED, expected?: number): Uint8Array {
  if (expected != null && rawSize !== expected) throw new MalformedMessageError(`compressed chunk announces ${rawSize} bytes, the manifest says ${expected}`)
  if (rawSize > max) throw new MalformedMessageError(`compressed chunk announces ${rawSize} bytes (limit ${max})`)
  if (rawSize === 0) throw new MalformedMessageError('compressed chunk announces 0 bytes')
  if (frame.byteLength > rawSize) throw new MalformedMessageError(`zstd frame of ${frame.byteLength} bytes is larger than the ${rawSize}-byte chunk`)
  const header = parseFrameHeader(frame)
  if (header.contentSize !== rawSize) throw new MalformedMessageError(`zstd frame declares ${header.contentSize} bytes, the reply announces ${rawSize}`)
  let length: number
  try {
    length = binding.findFrameCompressedSize(frame)
  } catch (err) {
    throw new MalformedMessageError('corrupt zstd frame', { cause: err })
  }
  if (length !== frame.byteLength) throw new MalformedMessageError(`${frame.byteLength - length} bytes after the zstd frame`)
  const out = Buffer.allocUnsafe(rawSize)
  let n: number
  try {
    n = binding.decompress(out, frame)
  } catch (err) {
    throw new MalformedMessageError('corrupt zstd frame', { cause: err })
  }
  if (n !== rawSize) throw new MalformedMessageError('zstd frame inflated to another size than announced')
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}
