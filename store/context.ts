// What the parts of the LevelDB store share: the index, the counters kept beside it, the have-bitmaps.
import type { IndexDb } from './db.js'
import type { HaveBitmaps } from './have.js'
import { enc, key, P, type BatchOp, type Counters } from './keys.js'

export interface StoreContext {
  db: IndexDb
  stats: Counters
  have: HaveBitmaps
}

/** The counters as they are now, to write in the same batch as the change they count. */
export function statsOp (ctx: { stats: Counters }): BatchOp & { type: 'put' } {
  return { type: 'put', key: key(P.meta, 'stats'), value: enc.encode(JSON.stringify(ctx.stats)) }
}
