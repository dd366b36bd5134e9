// FastCDC content-defined chunking (gear rolling hash, normalized chunking level 2). Boundaries depend only
// on nearby content, so an edit moves the boundaries around it and leaves the rest of a file's chunks intact.
// Parameters are frozen per manifest format version and recorded in every manifest: if they drifted between
// releases, deduplication would silently drop to zero.
import { createHash } from 'node:crypto'
import { InvalidChunkerError, InvalidInputError } from './errors.js'

export interface ChunkerParams {
  algorithm: 'fastcdc'
  minSize: number
  avgSize: number
  maxSize: number
  /** normalized chunking level: masks are avg-bits ± level */
  normalization: number
  /** id of the gear table; only 'herald-gear-v1' exists */
  gear: string
}

export const GEAR_V1 = 'herald-gear-v1'

/** 256 KiB average: see docs/BENCHMARKS.md ("Chunking and delta") for the measurement behind it. */
export const DEFAULT_CHUNKER: Readonly<ChunkerParams> = Object.freeze({
  algorithm: 'fastcdc',
  minSize: 64 * 1024,
  avgSize: 256 * 1024,
  maxSize: 1024 * 1024,
  normalization: 2,
  gear: GEAR_V1
})

/** The largest chunk any manifest may declare. */
export const MAX_CHUNK_SIZE = 4 * 1024 * 1024

/** Gear table: 256 32-bit values, entry i = first 4 bytes (big-endian) of sha256('herald-gear-v1' || byte i). */
function gearTable (id: string): Uint32Array {
  if (id !== GEAR_V1) throw new InvalidChunkerError(`unknown gear table ${JSON.stringify(id)}`)
  const table = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    const h = createHash('sha256').update(GEAR_V1).update(Uint8Array.of(i)).digest()
    table[i] = h.readUInt32BE(0)
  }
  return table
}

const GEAR = gearTable(GEAR_V1)

export function validateChunkerParams (p: unknown): ChunkerParams {
  const o = p as Partial<ChunkerParams> | null
  if (o == null || typeof o !== 'object') throw new InvalidChunkerError('chunker parameters must be an object')
  if (o.algorithm !== 'fastcdc') throw new InvalidChunkerError(`unknown chunker algorithm ${JSON.stringify(o.algorithm)}`)
  if (o.gear !== GEAR_V1) throw new InvalidChunkerError(`unknown gear table ${JSON.stringify(o.gear)}`)
  for (const k of ['minSize', 'avgSize', 'maxSize', 'normalization'] as const) {
    if (!Number.isSafeInteger(o[k]) || (o[k] as number) < 0) throw new InvalidChunkerError(`chunker ${k} must be a non-negative integer`)
  }
  const { minSize, avgSize, maxSize, normalization } = o as ChunkerParams
  if (!(minSize >= 64 && minSize <= avgSize && avgSize <= maxSize && maxSize <= MAX_CHUNK_SIZE)) {
    throw new InvalidChunkerError(`chunker sizes must satisfy 64 ≤ min ≤ avg ≤ max ≤ ${MAX_CHUNK_SIZE}`)
  }
  if ((avgSize & (avgSize - 1)) !== 0) throw new InvalidChunkerError('chunker avgSize must be a power of two')
  if (normalization > 4) throw new InvalidChunkerError('chunker normalization must be 0–4')
  return { algorithm: 'fastcdc', minSize, avgSize, maxSize, normalization, gear: GEAR_V1 }
}

/**
 * Chunker parameters from `MIN:AVG:MAX` (bytes; a K or M suffix multiplies by 1024 or 1024²), the
 * normalization and gear table of the default. Throws InvalidInputError (INVALID_ARGUMENT) with the rule
 * broken: 64 ≤ MIN ≤ AVG ≤ MAX ≤ 4 MiB, AVG a power of two.
 */
export function parseChunkSize (text: string): ChunkerParams {
  const parts = String(text).trim().split(':')
  const sizes = parts.map(p => {
    const m = /^(\d+)\s*([kKmM](?:i?B)?)?$/.exec(p.trim())
    if (m == null) return NaN
    const unit = m[2]?.[0]?.toLowerCase()
    return Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1)
  })
  if (sizes.length !== 3 || sizes.some(n => !Number.isSafeInteger(n))) {
    throw new InvalidInputError(`chunk size ${JSON.stringify(text)} is not MIN:AVG:MAX in bytes (e.g. 65536:262144:1048576 or 64K:256K:1M)`)
  }
  try {
    return validateChunkerParams({ ...DEFAULT_CHUNKER, minSize: sizes[0], avgSize: sizes[1], maxSize: sizes[2] })
  } catch (err: any) {
    throw new InvalidInputError(`chunk size ${JSON.stringify(text)}: ${err.message as string}`, { cause: err })
  }
}

function mask (bits: number): number {
  // spread bits over the high part of the 32-bit hash (high bits of a gear hash are the best mixed)
  const b = Math.max(1, Math.min(31, bits))
  return ((0xffffffff << (32 - b)) >>> 0)
}

/**
 * Streaming chunker: push buffers of any size, get back the chunks completed so far. Holds at most
 * maxSize bytes of pending input.
 */
export class Chunker {
  readonly params: ChunkerParams
  readonly #maskS: number
  readonly #maskL: number
  #pending: Uint8Array[] = []
  #pendingLength = 0

  constructor (params: ChunkerParams = DEFAULT_CHUNKER) {
    this.params = validateChunkerParams(params)
    const bits = Math.round(Math.log2(this.params.avgSize))
    this.#maskS = mask(bits + this.params.normalization)
    this.#maskL = mask(bits - this.params.normalization)
  }

  /** Find the cut point in buf[0..len): FastCDC with normalized chunking. */
  #cut (buf: Uint8Array, len: number): number {
    const { minSize, avgSize, maxSize } = this.params
    if (len <= minSize) return len
    const end = Math.min(len, maxSize)
    const normal = Math.min(avgSize, end)
    const maskS = this.#maskS
    const maskL = this.#maskL
    let h = 0
    let i = minSize
    for (; i < normal; i++) {
      h = ((h << 1) + GEAR[buf[i]]) >>> 0
      if ((h & maskS) === 0) return i + 1
    }
    for (; i < end; i++) {
      h = ((h << 1) + GEAR[buf[i]]) >>> 0
      if ((h & maskL) === 0) return i + 1
    }
    return end
  }

  push (data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = []
    if (data.byteLength === 0) return out
    let buf: Uint8Array
    if (this.#pendingLength > 0) {
      buf = new Uint8Array(this.#pendingLength + data.byteLength)
      let o = 0
      for (const p of this.#pending) { buf.set(p, o); o += p.byteLength }
      buf.set(data, o)
      this.#pending = []
      this.#pendingLength = 0
    } else {
      buf = data
    }
    let start = 0
    const { maxSize } = this.params
    // only cut where a full max-size window is available; the tail waits for more input
    while (buf.byteLength - start >= maxSize) {
      const view = buf.subarray(start)
      const n = this.#cut(view, view.byteLength)
      out.push(buf.slice(start, start + n))
      start += n
    }
    if (start < buf.byteLength) {
      const rest = buf.slice(start)
      this.#pending.push(rest)
      this.#pendingLength = rest.byteLength
    }
    return out
  }

  end (): Uint8Array[] {
    const out: Uint8Array[] = []
    if (this.#pendingLength === 0) return out
    const buf = this.#pending.length === 1 ? this.#pending[0] : Buffer.concat(this.#pending)
    this.#pending = []
    this.#pendingLength = 0
    let start = 0
    while (start < buf.byteLength) {
      const view = buf.subarray(start)
      const n = this.#cut(view, view.byteLength)
      out.push(buf.slice(start, start + n))
      start += n
    }
    return out
  }
}

export async function * chunkStream (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, params: ChunkerParams = DEFAULT_CHUNKER): AsyncGenerator<Uint8Array> {
  const chunker = new Chunker(params)
  for await (const data of source) {
    for (const c of chunker.push(data)) yield c
  }
  for (const c of chunker.end()) yield c
}

/** Chunk a whole buffer at once (tests, small inputs). */
export function chunkBuffer (data: Uint8Array, params: ChunkerParams = DEFAULT_CHUNKER): Uint8Array[] {
  const c = new Chunker(params)
  return [...c.push(data), ...c.end()]
}
