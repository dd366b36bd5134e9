// Bitmaps over a manifest's entries, as the have protocol sends them and the store keeps them: bit i is
// byte[i >> 3] & (0x80 >> (i & 7)) — most significant bit first. Plain Uint8Arrays, so that a bitmap
// read from the wire or from the store is used as it is, without a copy or an object per bit.

/** bytes a bitmap of `count` bits takes */
export function bitmapBytes (count: number): number {
  return Math.ceil(count / 8)
}

export function bitGet (bitmap: Uint8Array, i: number): boolean {
  return (bitmap[i >> 3] & (0x80 >> (i & 7))) !== 0
}

export function bitSet (bitmap: Uint8Array, i: number): void {
  bitmap[i >> 3] |= (0x80 >> (i & 7))
}

export function bitClear (bitmap: Uint8Array, i: number): void {
  bitmap[i >> 3] &= ~(0x80 >> (i & 7))
}

/** set bits per byte value */
const BYTE_COUNTS = new Uint8Array(256)
for (let b = 1; b < 256; b++) BYTE_COUNTS[b] = (b & 1) + BYTE_COUNTS[b >> 1]

/** Bits set among the first `count` (bits past `count`, and bytes past the bitmap, are not counted). */
export function popcount (bitmap: Uint8Array, count: number = bitmap.byteLength * 8): number {
  const bits = Math.min(count, bitmap.byteLength * 8)
  const whole = bits >> 3
  let n = 0
  for (let i = 0; i < whole; i++) n += BYTE_COUNTS[bitmap[i]]
  const rest = bits & 7
  if (rest > 0) n += BYTE_COUNTS[bitmap[whole] & (0xFF << (8 - rest)) & 0xFF]
  return n
}

/** Indices of the set bits among the first `count`, ascending (whole zero bytes are skipped). */
export function * setBits (bitmap: Uint8Array, count: number = bitmap.byteLength * 8): Generator<number> {
  const bytes = Math.min(bitmapBytes(count), bitmap.byteLength)
  for (let byte = 0; byte < bytes; byte++) {
    const b = bitmap[byte]
    if (b === 0) continue
    for (let bit = 0; bit < 8; bit++) {
      const i = byte * 8 + bit
      if (i >= count) return
      if ((b & (0x80 >> bit)) !== 0) yield i
    }
  }
}

/** Whether each of the first `count` bits is set. */
export function allSet (bitmap: Uint8Array, count: number): boolean {
  return popcount(bitmap, count) === count
}

/**
 * A bitmap of exactly `count` bits from bytes that may be shorter (missing bits read as clear) or longer
 * (bits past `count` are dropped): always a fresh copy, so the source can be reused.
 */
export function bitmapFrom (bytes: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(bitmapBytes(count))
  out.set(bytes.subarray(0, out.byteLength))
  const rest = count & 7
  if (rest > 0 && bytes.byteLength >= out.byteLength) out[out.byteLength - 1] &= (0xFF << (8 - rest)) & 0xFF
  return out
}
