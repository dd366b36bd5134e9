// Compressed chunk transfer: zstd (level 3) when it makes a chunk at least 1/16 smaller. Decompression is
// bounded: the frame must declare its content size, equal to the size the response announces and no
// larger than the largest chunk a manifest may hold, so a peer cannot make a receiver inflate without
// limit. The receiver still verifies the decompressed bytes against the chunk's digest.
import { createRequire } from 'node:module'
import { MalformedMessageError } from './errors.js'

const require = createRequire(import.meta.url)
const zstd = require('zstd-napi') as {
  compress: (data: Uint8Array, parameters?: { compressionLevel?: number }) => Buffer
  decompress: (data: Uint8Array) => Buffer
}
const binding = require('zstd-napi/binding.js') as { getFrameContentSize: (frame: Uint8Array) => number | null }

/** zstd level 3: 3–6× on sequence/annotation text at a few hundred MB/s per core */
export const ZSTD_LEVEL = 3
/** the largest chunk any manifest may declare (protocol/chunker.ts MAX_CHUNK_SIZE) */
export const MAX_DECOMPRESSED = 4 * 1024 * 1024

/** The zstd form of a chunk, or undefined when compression saves less than 1/16. */
export function compressChunk (data: Uint8Array): Uint8Array | undefined {
  const c = zstd.compress(data, { compressionLevel: ZSTD_LEVEL })
  return c.byteLength <= data.byteLength - (data.byteLength >> 4) ? c : undefined
}

export function decompressChunk (frame: Uint8Array, rawSize: number, max = MAX_DECOMPRESSED): Uint8Array {
  if (rawSize > max) throw new MalformedMessageError(`compressed chunk announces ${rawSize} bytes (limit ${max})`)
  let declared: number | null
  try {
    declared = binding.getFrameContentSize(frame)
  } catch (err) {
    throw new MalformedMessageError('not a zstd frame', { cause: err })
  }
  if (declared == null || declared !== rawSize) throw new MalformedMessageError('zstd frame size missing or not the announced size')
  let out: Buffer
  try {
    out = zstd.decompress(frame)
  } catch (err) {
    throw new MalformedMessageError('corrupt zstd frame', { cause: err })
  }
  if (out.byteLength !== rawSize) throw new MalformedMessageError('zstd frame inflated to another size than announced')
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}
