// Garbage collection: delete every chunk no pin references (with its features and its have-bitmap bits, in
// the same batches), then reclaim disk: drop packs with nothing live, rewrite packs that are mostly dead.
// Runs under the store's write lock (the caller's), so no GC lease is held meanwhile.
import { statsOp, type StoreContext } from './context.js'
import { enc, key, P, upperBound, type BatchOp } from './keys.js'
import { decodeLocation, encodeLocation, type PackSet } from './packs.js'
import type { GcResult } from './interface.js'

/** GC rewrites a pack whose dead share is above this */
const GC_REWRITE_THRESHOLD = 0.5
/** index deletions per batch */
const BATCH = 4096

export async function collect (ctx: StoreContext, packs: PackSet): Promise<GcResult> {
  const started = performance.now()
  let chunksFreed = 0
  let bytesFreed = 0
  const live = new Map<number, number>()
  const dead: Uint8Array[] = []
  for await (const [k, v] of ctx.db.entries({ gte: key(P.chunk, ''), lt: upperBound(P.chunk) })) {
    const digest = k.subarray(P.chunk.length)
    const loc = decodeLocation(v)
    if ((await ctx.db.get(key(P.ref, digest))) === undefined) {
      dead.push(digest)
      chunksFreed++
      bytesFreed += loc.rawSize
    } else {
      live.set(loc.pack, (live.get(loc.pack) ?? 0) + loc.length)
    }
  }
  ctx.stats.chunks -= chunksFreed
  ctx.stats.bytes -= bytesFreed
  for (let s = 0; s < dead.length; s += BATCH) {
    const batch = dead.slice(s, s + BATCH)
    await ctx.have.update(batch, false, async haveOps => {
      await ctx.db.batch([
        ...batch.map(d => ({ type: 'del' as const, key: key(P.chunk, d) })),
        ...batch.map(d => ({ type: 'del' as const, key: key(P.features, d) })),
        ...haveOps,
        statsOp(ctx)
      ])
    })
  }
  // reclaim disk: drop empty packs, rewrite mostly-dead ones into a fresh pack
  await packs.rotate()
  for (const [id, size] of [...packs.sizes]) {
    if (id === packs.activeId) continue
    const liveBytes = live.get(id) ?? 0
    if (liveBytes === 0) {
      await ctx.db.del(key(P.packEnd, String(id)), { sync: true })
      await packs.remove(id)
    } else if (size > 0 && 1 - liveBytes / size > GC_REWRITE_THRESHOLD) {
      await rewritePack(ctx, packs, id)
    }
  }
  return { chunksFreed, bytesFreed, seconds: (performance.now() - started) / 1000 }
}

async function rewritePack (ctx: StoreContext, packs: PackSet, id: number): Promise<void> {
  // the moved bytes are made durable before any index entry points at them, and the old pack is removed
  // only once the new entries are synced to disk
  const moves: BatchOp[] = []
  const ends = new Map<number, number>()
  for await (const [k, v] of ctx.db.entries({ gte: key(P.chunk, ''), lt: upperBound(P.chunk) })) {
    const loc = decodeLocation(v)
    if (loc.pack !== id) continue
    const bytes = await packs.read(loc)
    const moved = await packs.append(bytes)
    moves.push({ type: 'put', key: k, value: encodeLocation({ ...loc, ...moved }) })
    ends.set(moved.pack, Math.max(ends.get(moved.pack) ?? 0, moved.offset + moved.length))
  }
  await packs.sync()
  for (let s = 0; s < moves.length; s += BATCH) await ctx.db.batch(moves.slice(s, s + BATCH))
  const tail: BatchOp[] = [...ends].map(([pack, end]) => ({ type: 'put', key: key(P.packEnd, String(pack)), value: enc.encode(String(end)) }))
  tail.push({ type: 'del', key: key(P.packEnd, String(id)) })
  await ctx.db.batch(tail, { sync: true })
  await packs.remove(id)
}
