// Delta chunks: a new chunk encoded against similar chunks of an earlier release the receiver already holds.
//
// Kind `zstd-dict/1`: the delta object is one zstd frame (content size declared) compressed with a raw-content
// dictionary made of one zero byte followed by the base chunks' bytes in the order the manifest lists them
// (the leading zero keeps the dictionary from ever starting with zstd's dictionary magic). The receiver
// rebuilds the chunk with the same dictionary, bounded by the chunk size the manifest declares, and verifies
// the result against the chunk's digest like any other chunk.
//
// Bases are chosen by resemblance, not position: every chunk gets three super-features (each a hash of four
// min-wise features over content-sampled positions of a 32-byte rolling hash); chunks sharing a super-feature
// are very likely to share most of their bytes, wherever they sit in the release.
import { createRequire } from 'node:module'
import { MalformedMessageError } from './exchange/errors.js'

const require = createRequire(import.meta.url)
interface ZstdCompressor { setParameters: (p: Record<string, unknown>) => void, loadDictionary: (d: Uint8Array) => void, compress: (d: Uint8Array) => Buffer }
interface ZstdDecompressor { setParameters: (p: Record<string, unknown>) => void, loadDictionary: (d: Uint8Array) => void, decompress: (d: Uint8Array) => Buffer }
const zstd = require('zstd-napi') as { Compressor: new () => ZstdCompressor, Decompressor: new () => ZstdDecompressor }
const binding = require('zstd-napi/binding.js') as { getFrameContentSize: (frame: Uint8Array) => number | null }

export const DELTA_KIND = 'zstd-dict/1'
/** compression level of delta objects: computed once by the publisher, fetched by many */
export const DELTA_LEVEL = 6
/** the most base bytes one delta may need (the receiver holds them all in memory while rebuilding) */
export const MAX_DELTA_BASE_BYTES = 16 * 1024 * 1024
export const MAX_DELTA_BASES = 16
export const SUPER_FEATURES = 3
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

/** Encode `target` against `bases` (order matters: the receiver concatenates them the same way). */
export function encodeDelta (target: Uint8Array, bases: Uint8Array[], level = DELTA_LEVEL): Uint8Array {
  const c = new zstd.Compressor()
  c.setParameters({ compressionLevel: level, contentSizeFlag: true, checksumFlag: false, dictIDFlag: false })
  c.loadDictionary(dictionary(bases))
  const out = c.compress(target)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * Rebuild a chunk from its delta object and its bases. The frame must declare exactly `size` bytes (the
 * chunk size the manifest gives), so a bad object cannot make the receiver inflate without limit. The caller
 * verifies the result against the chunk digest.
 */
export function decodeDelta (object: Uint8Array, bases: Uint8Array[], size: number, max = 4 * 1024 * 1024): Uint8Array {
  if (size > max) throw new MalformedMessageError(`delta target of ${size} bytes is over the ${max}-byte limit`)
  let declared: number | null
  try {
    declared = binding.getFrameContentSize(object)
  } catch (err) {
    throw new MalformedMessageError('delta object is not a zstd frame', { cause: err })
  }
  if (declared == null || declared !== size) throw new MalformedMessageError('delta object does not declare the chunk size')
  const d = new zstd.Decompressor()
  d.setParameters({ windowLogMax: 27 })
  d.loadDictionary(dictionary(bases))
  let out: Buffer
  try {
    out = d.decompress(object)
  } catch (err) {
    throw new MalformedMessageError('corrupt delta object', { cause: err })
  }
  if (out.byteLength !== size) throw new MalformedMessageError('delta object rebuilt another size than declared')
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}
