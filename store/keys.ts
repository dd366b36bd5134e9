// The store's LevelDB key layout: one prefix per bucket (docs/STORAGE.md lists them).
export const enc = new TextEncoder()
export const dec = new TextDecoder()

export const P = {
  chunk: 'c/',
  ref: 'f/',
  manifest: 'm/',
  release: 'r/',
  pin: 'p/',
  current: 'cur/',
  progress: 'g/',
  packEnd: 'k/',
  features: 's/',
  /** have-bitmaps (have.ts): state per manifest, bitmap segments, digest → positions */
  have: 'h/',
  haveSeg: 'hb/',
  haveRef: 'hr/',
  meta: 'meta/'
}

/** prefixes encoded once: key() runs once per chunk in the hot paths (hasChunks, tracking, commits) */
const encoded = new Map<string, Uint8Array>()

export function key (prefix: string, rest: string | Uint8Array): Uint8Array {
  let p = encoded.get(prefix)
  if (p === undefined) { p = enc.encode(prefix); encoded.set(prefix, p) }
  const r = typeof rest === 'string' ? enc.encode(rest) : rest
  const out = new Uint8Array(p.byteLength + r.byteLength)
  out.set(p)
  out.set(r, p.byteLength)
  return out
}

export function upperBound (prefix: string): Uint8Array {
  const p = enc.encode(prefix)
  p[p.byteLength - 1]++
  return p
}

export interface Counters { chunks: number, bytes: number, manifests: number, releases: number, pins: number }

export type BatchOp = { type: 'put', key: Uint8Array, value: Uint8Array } | { type: 'del', key: Uint8Array }

/** A LevelDB write failed for want of space (classic-level reports it in the message). */
export function isDiskFull (err: any): boolean {
  return err?.code === 'ENOSPC' || err?.code === 'EDQUOT' || err?.code === 'DISK_FULL' || /No space left|ENOSPC/.test(String(err?.message)) || /No space left/.test(String(err?.cause?.message))
}
