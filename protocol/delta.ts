// Delta chunks: a new chunk encoded against similar chunks of an earlier release the receiver already holds.
//
// Kind `zstd-dict/1`: the delta object is one zstd frame (content size declared) compressed with a raw-content
// dictionary made of one zero byte followed by the base chunks' bytes in the order the manifest lists them
// (the leading zero keeps the dictionary from ever starting with zstd's dictionary magic). Its content is a
// run of target chunks, concatenated in the order the manifest lists them (consecutive new chunks of one
// file: one frame lets zstd use what they share, and loads the dictionary once for all of them). The
// receiver rebuilds the run with the same dictionary, bounded by the sizes the manifest declares, splits it
// and verifies each chunk against its digest like any other chunk.
//
// Bases are chosen by resemblance, not position: every chunk gets three super-features (each a hash of four
// min-wise features over content-sampled positions of a 32-byte rolling hash); chunks sharing a super-feature
// are very likely to share most of their bytes, wherever they sit in the release.
import { createRequire } from 'node:module'
import { MalformedMessageError } from './exchange/errors.js'

const require = createRequire(import.meta.url)
interface ZstdCompressor { setParameters: (p: Record<string, unknown>) => void, loadDictionary: (d: Uint8Array) => void, compress: (d: Uint8Array) => Buffer }
const zstd = require('zstd-napi') as { Compressor: new () => ZstdCompressor }
interface DCtx { decompressUsingDict: (dst: Uint8Array, src: Uint8Array, dict: Uint8Array) => number }
const binding = require('zstd-napi/binding.js') as {
  getFrameContentSize: (frame: Uint8Array) => number | null
  findFrameCompressedSize: (frame: Uint8Array) => number
  DCtx: new () => DCtx
}
/**
 * One decompression context for the thread, reused: a context per call is freed only when the garbage
 * collector gets to it, and 10^5 decodes grew the process by 1.3 GB of native memory before it did.
 */
let dctx: DCtx | undefined

export const DELTA_KIND = 'zstd-dict/1'
/** compression level of delta objects: computed once by the publisher, fetched by many */
export const DELTA_LEVEL = 9
/** the most base bytes one delta may need (the receiver holds them all in memory while rebuilding) */
export const MAX_DELTA_BASE_BYTES = 16 * 1024 * 1024
export const MAX_DELTA_BASES = 64
/** the most target chunks one delta object rebuilds, and the most bytes it may rebuild */
export const MAX_DELTA_TARGETS = 32
export const MAX_DELTA_TARGET_BYTES = 8 * 1024 * 1024
export const SUPER_FEATURES = 3
/** the largest window a delta frame may use (dictionary and content, at most 24 MiB, fit in it) */
const WINDOW_LOG_MAX = 25
const FEATURES_PER_SF = 4
const FEATURES = SUPER_FEATURES * FEATURES_PER_SF
/** a rolling-hash position is sampled when its top 5 bits (which depend on the whole 32-byte window) are zero: 1 in 32 */
const SAMPLE_SHIFT = 27

/** Gear-style rolling hash table (independent of the chunker's): 256 32-bit values from a fixed PRNG. */
const TABLE = (() => {
  const t = new Uint32Array(256)
  let s = 0x9e3779b9
  for (let i = 0; i < 256; i++) {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    t[i] = (x ^ (x >>> 14)) >>> 0
  }
  return t
})()
const MULT = Uint32Array.from({ length: FEATURES }, (_, k) => (TABLE[(k * 37 + 11) & 255] | 1) >>> 0)
const ADD = Uint32Array.from({ length: FEATURES }, (_, k) => TABLE[(k * 91 + 5) & 255])

/**
 * Three super-features of a chunk. Two chunks that share one are near-duplicates with high probability.
 * Computed from positions chosen by content (1 in 32), so inserts and deletes leave the others unchanged.
 */
export function superFeatures (data: Uint8Array): Uint32Array {
  const min = new Uint32Array(FEATURES).fill(0xffffffff)
  let fp = 0
  for (let i = 0; i < data.length; i++) {
    fp = ((fp << 1) + TABLE[data[i]]) >>> 0
    if ((fp >>> SAMPLE_SHIFT) !== 0) continue
    for (let k = 0; k < FEATURES; k++) {
      const v = (Math.imul(fp, MULT[k]) + ADD[k]) >>> 0
      if (v < min[k]) min[k] = v
    }
  }
  const out = new Uint32Array(SUPER_FEATURES)
  for (let j = 0; j < SUPER_FEATURES; j++) {
    let h = 0x811c9dc5 ^ j
    for (let k = 0; k < FEATURES_PER_SF; k++) {
      h = Math.imul(h ^ min[j * FEATURES_PER_SF + k], 0x01000193) >>> 0
      h ^= h >>> 13
    }
    out[j] = h >>> 0
  }
  return out
}

function dictionary (bases: Uint8Array[]): Uint8Array {
  let total = 1
  for (const b of bases) total += b.byteLength
  if (total - 1 > MAX_DELTA_BASE_BYTES) throw new RangeError(`delta bases of ${total - 1} bytes exceed ${MAX_DELTA_BASE_BYTES}`)
  const dict = new Uint8Array(total)
  let at = 1
  for (const b of bases) { dict.set(b, at); at += b.byteLength }
  return dict
}

function concat (parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]
  let total = 0
  for (const p of parts) total += p.byteLength
  const out = new Uint8Array(total)
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

/**
 * Match-finder sizes for a frame that must find matches anywhere in its dictionary: the window spans the
 * dictionary and the content, and the hash and chain tables grow with it (the level's defaults assume the
 * content alone and miss most of a multi-megabyte dictionary: 2.8 MB instead of 0.16 MB on a 5 MB run).
 */
function matchParameters (span: number): { windowLog: number, hashLog: number, chainLog: number } {
  const windowLog = Math.min(WINDOW_LOG_MAX, Math.max(20, Math.ceil(Math.log2(span))))
  return { windowLog, hashLog: Math.min(23, windowLog - 1), chainLog: Math.min(24, windowLog) }
}

/** Encode the run `targets` against `bases` (order matters: the receiver concatenates both the same way). */
export function encodeDelta (targets: Uint8Array[], bases: Uint8Array[], level = DELTA_LEVEL): Uint8Array {
  const content = concat(targets)
  if (targets.length > MAX_DELTA_TARGETS || content.byteLength > MAX_DELTA_TARGET_BYTES) throw new RangeError(`a delta object rebuilds at most ${MAX_DELTA_TARGETS} chunks and ${MAX_DELTA_TARGET_BYTES} bytes`)
  const c = new zstd.Compressor()
  const dict = dictionary(bases)
  c.setParameters({ compressionLevel: level, contentSizeFlag: true, checksumFlag: false, dictIDFlag: false, ...matchParameters(dict.byteLength + content.byteLength) })
  c.loadDictionary(dict)
  const out = c.compress(content)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * Rebuild a run of chunks from its delta object and its bases. The frame must declare exactly `size` bytes
 * (the sum of the chunk sizes the manifest gives), so a bad object cannot make the receiver inflate without
 * limit. The caller splits the result and verifies each chunk against its digest.
 */
export function decodeDelta (object: Uint8Array, bases: Uint8Array[], size: number, max = MAX_DELTA_TARGET_BYTES): Uint8Array {
  if (size > max) throw new MalformedMessageError(`delta target of ${size} bytes is over the ${max}-byte limit`)
  let declared: number | null
  let length: number
  try {
    declared = binding.getFrameContentSize(object)
    length = binding.findFrameCompressedSize(object)
  } catch (err) {
    throw new MalformedMessageError('delta object is not a zstd frame', { cause: err })
  }
  if (declared == null || declared !== size) throw new MalformedMessageError('delta object does not declare the chunk size')
  // one frame and nothing after it (zstd would decode a second frame, or skip a skippable one)
  if (length !== object.byteLength) throw new MalformedMessageError(`${object.byteLength - length} bytes after the delta object's frame`)
  // one-shot into a buffer of exactly the declared size: zstd cannot write more, whatever the frame says
  const out = Buffer.allocUnsafe(size)
  let n: number
  try {
    dctx ??= new binding.DCtx()
    n = dctx.decompressUsingDict(out, object, dictionary(bases))
  } catch (err) {
    throw new MalformedMessageError('corrupt delta object', { cause: err })
  }
  if (n !== size) throw new MalformedMessageError('delta object rebuilt another size than declared')
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}
