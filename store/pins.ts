// Pins: a release pinned gives each of its distinct chunks one reference (`f/<digest>` → count); gc keeps
// exactly the chunks with a reference. The pin record keeps the release's distinct digests, packed, so that
// unpin takes back exactly what pin gave.
import { digestHex } from '../protocol/cid.js'
import { statsOp, type StoreContext } from './context.js'
import { dec, enc, key, P, upperBound, type BatchOp } from './keys.js'

/** refcount reads per getMany: bounded so a 10^6-chunk release does not build one huge request */
const BATCH = 4096

export function uniqueDigests (chunks: Uint8Array): Uint8Array[] {
  const seen = new Set<string>()
  const out: Uint8Array[] = []
  for (let i = 0; i < chunks.byteLength / 32; i++) {
    const d = chunks.subarray(i * 32, i * 32 + 32)
    const h = digestHex(d)
    if (seen.has(h)) continue
    seen.add(h)
    out.push(d)
  }
  return out
}

function pinKey (dataset: string, version: string): Uint8Array {
  return key(P.pin, `${dataset}@${version}`)
}

/** Add `delta` to the refcount of each digest; ops for the new counts (a count reaching 0 is deleted). */
async function refOps (ctx: StoreContext, digests: Uint8Array[], delta: 1 | -1): Promise<BatchOp[]> {
  const ops: BatchOp[] = []
  for (let s = 0; s < digests.length; s += BATCH) {
    const ks = digests.slice(s, s + BATCH).map(d => key(P.ref, d))
    const vals = await ctx.db.getMany(ks)
    vals.forEach((v, j) => {
      const count = (v === undefined ? 0 : Number(dec.decode(v))) + delta
      ops.push(count > 0 ? { type: 'put', key: ks[j], value: enc.encode(String(count)) } : { type: 'del', key: ks[j] })
    })
  }
  return ops
}

export async function pin (ctx: StoreContext, dataset: string, version: string, chunks: Uint8Array): Promise<void> {
  const pk = pinKey(dataset, version)
  if ((await ctx.db.get(pk)) !== undefined) return
  const unique = uniqueDigests(chunks)
  const ops = await refOps(ctx, unique, 1)
  const packed = new Uint8Array(unique.length * 32)
  unique.forEach((d, i) => packed.set(d, i * 32))
  ops.push({ type: 'put', key: pk, value: packed })
  ctx.stats.pins++
  ops.push(statsOp(ctx))
  await ctx.db.batch(ops)
}

export async function unpin (ctx: StoreContext, dataset: string, version: string): Promise<boolean> {
  const pk = pinKey(dataset, version)
  const packed = await ctx.db.get(pk)
  if (packed === undefined) return false
  const n = packed.byteLength / 32
  const ops = await refOps(ctx, Array.from({ length: n }, (_, i) => packed.subarray(i * 32, i * 32 + 32)), -1)
  ops.push({ type: 'del', key: pk })
  ctx.stats.pins--
  ops.push(statsOp(ctx))
  await ctx.db.batch(ops)
  return true
}

export async function isPinned (ctx: StoreContext, dataset: string, version: string): Promise<boolean> {
  return (await ctx.db.get(pinKey(dataset, version))) !== undefined
}

export async function listPins (ctx: StoreContext): Promise<Array<{ dataset: string, version: string }>> {
  const out: Array<{ dataset: string, version: string }> = []
  for await (const k of ctx.db.keys({ gte: key(P.pin, ''), lt: upperBound(P.pin) })) {
    const name = dec.decode(k.subarray(P.pin.length))
    const at = name.indexOf('@')
    out.push({ dataset: name.slice(0, at), version: name.slice(at + 1) })
  }
  return out
}

export async function refcount (ctx: StoreContext, digest: Uint8Array): Promise<number> {
  const v = await ctx.db.get(key(P.ref, digest))
  return v === undefined ? 0 : Number(dec.decode(v))
}
