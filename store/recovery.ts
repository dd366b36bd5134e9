// Recovery at open: a pack shorter than the length the index commits for it (a store written by a build
// that indexed chunks before their bytes were durable, then a power cut; or a disk that lost acknowledged
// writes) loses the index entries of the chunks past its end. They read as missing, so the next fetch of
// a release that needs them fetches them again; every chunk still indexed is whole.
import { logger } from '@libp2p/logger'
import { decodeLocation, packName, type PackSet } from './packs.js'
import { enc, key, P, upperBound, type BatchOp } from './keys.js'
import { statsOp, type StoreContext } from './context.js'

const log = logger('herald:store')

export interface RecoveryReport {
  /** packs found shorter than their committed length: name, bytes on disk, bytes the index committed */
  packs: Array<{ pack: string, found: number, committed: number }>
  /** index entries dropped because their bytes were past a pack's end */
  droppedChunks: number
  /** raw bytes of those chunks */
  droppedBytes: number
}

export async function recoverShortPacks (ctx: StoreContext, packs: PackSet, committed: Map<number, number>): Promise<RecoveryReport> {
  const { db, stats } = ctx
  const report: RecoveryReport = { packs: [], droppedChunks: 0, droppedBytes: 0 }
  if (packs.short.size === 0) return report
  const short = new Map(packs.short)
  /** end of the last chunk still whole in each short pack */
  const kept = new Map<number, number>([...short.keys()].map(id => [id, 0]))
  let ops: BatchOp[] = []
  /** digests whose entries the ops drop: their have-bitmap bits are cleared in the same batch */
  let dropped: Uint8Array[] = []
  const flush = async (): Promise<void> => {
    if (ops.length === 0) return
    const batch = ops
    await ctx.have.update(dropped, false, async haveOps => { await db.batch([...batch, ...haveOps, statsOp(ctx)], { sync: true }) })
    ops = []
    dropped = []
  }
  for await (const [k, v] of db.entries({ gte: key(P.chunk, ''), lt: upperBound(P.chunk) })) {
    const loc = decodeLocation(v)
    const found = short.get(loc.pack)
    if (found === undefined) continue
    const end = loc.offset + loc.length
    if (end <= found) {
      kept.set(loc.pack, Math.max(kept.get(loc.pack)!, end))
      continue
    }
    ops.push({ type: 'del', key: k }, { type: 'del', key: key(P.features, k.subarray(P.chunk.length)) })
    dropped.push(k.subarray(P.chunk.length))
    report.droppedChunks++
    report.droppedBytes += loc.rawSize
    stats.chunks--
    stats.bytes -= loc.rawSize
    if (ops.length >= 8192) await flush()
  }
  for (const [id, end] of kept) {
    report.packs.push({ pack: packName(id), found: short.get(id)!, committed: committed.get(id) ?? 0 })
    ops.push(end === 0 ? { type: 'del', key: key(P.packEnd, String(id)) } : { type: 'put', key: key(P.packEnd, String(id)), value: enc.encode(String(end)) })
  }
  await flush()
  for (const [id, end] of kept) await packs.settle(id, end)
  log('recovered short packs %o: dropped %d index entries (%d bytes)', report.packs, report.droppedChunks, report.droppedBytes)
  return report
}
