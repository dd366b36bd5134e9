// A manifest as a delta against an older manifest the receiver holds (zstd with the older manifest as its
// dictionary, the `--patch-from` idea). Two manifests of one dataset share almost every chunk digest, so an
// update's manifest travels as a few percent of its size. The receiver rebuilds the bytes and checks them
// against the manifest CID as always: the delta is only a transfer encoding.
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

/** fast enough to encode a 40 MB manifest per request on release day, and cached by the server */
export const MANIFEST_DELTA_LEVEL = 6
/** zstd decoders refuse windows over 2^27 by default: base + manifest beyond it lose matches, not correctness */
const WINDOW_LOG_MAX = 27

let dctx: DCtx | undefined

/** Encode `target` against `base`. */
export function encodeManifestDelta (target: Uint8Array, base: Uint8Array, level = MANIFEST_DELTA_LEVEL): Uint8Array {
  const c = new zstd.Compressor()
  const windowLog = Math.min(WINDOW_LOG_MAX, Math.max(20, Math.ceil(Math.log2(base.byteLength + target.byteLength + 1))))
  c.setParameters({ compressionLevel: level, contentSizeFlag: true, checksumFlag: false, dictIDFlag: false, windowLog, hashLog: Math.min(24, windowLog - 1), chainLog: Math.min(24, windowLog) })
  c.loadDictionary(base)
  const out = c.compress(target)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * Rebuild a manifest of `size` bytes (announced by the sender, at most `max`) from its delta against
 * `base`: exactly one zstd frame declaring exactly `size` bytes, decoded into a buffer of that size, so a
 * bad delta cannot make the receiver inflate without limit. The caller verifies the result's CID.
 */
export function decodeManifestDelta (object: Uint8Array, base: Uint8Array, size: number, max: number): Uint8Array {
  if (size > max) throw new MalformedMessageError(`manifest of ${size} bytes is over the ${max}-byte limit`)
  let declared: number | null
  let length: number
  try {
    declared = binding.getFrameContentSize(object)
    length = binding.findFrameCompressedSize(object)
  } catch (err) {
    throw new MalformedMessageError('manifest delta is not a zstd frame', { cause: err })
  }
  if (declared == null || declared !== size) throw new MalformedMessageError('manifest delta does not declare the announced size')
  if (length !== object.byteLength) throw new MalformedMessageError(`${object.byteLength - length} bytes after the manifest delta's frame`)
  const out = Buffer.allocUnsafe(size)
  let n: number
  try {
    dctx ??= new binding.DCtx()
    n = dctx.decompressUsingDict(out, object, base)
  } catch (err) {
    throw new MalformedMessageError('corrupt manifest delta', { cause: err })
  }
  if (n !== size) throw new MalformedMessageError('manifest delta rebuilt another size than declared')
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}
