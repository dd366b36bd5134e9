// Group commit of chunk index entries: pack bytes are made durable (one fsync) before the LevelDB batch
// that indexes them, and every chunk stored meanwhile joins the next group, so concurrent puts (a fetch
// or a publish stores many at once) share one fsync and one batch instead of paying one each. The bits of
// the tracked have-bitmaps that the group sets ride in the same batch (have.ts).
import { DiskFullError } from './errors.js'
import { encodeLocation, type Location, type PackSet } from './packs.js'
import { enc, isDiskFull, key, P, type BatchOp } from './keys.js'
import { statsOp, type StoreContext } from './context.js'

interface Waiting {
  digest: Uint8Array
  loc: Location
  resolve: () => void
  reject: (err: unknown) => void
}

export class ChunkCommitter {
  readonly #ctx: StoreContext
  readonly #packs: PackSet
  #queue: Waiting[] = []
  #running = false
  /** groups committed so far (each: one fsync at most, one LevelDB batch) */
  groups = 0

  constructor (ctx: StoreContext, packs: PackSet) {
    this.#ctx = ctx
    this.#packs = packs
  }

  /** Index a chunk whose bytes were appended at `loc`; resolves once the entry is written after its bytes are durable. */
  async commit (digest: Uint8Array, loc: Location): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ digest, loc, resolve, reject })
      this.#kick()
    })
  }

  #kick (): void {
    if (this.#running || this.#queue.length === 0) return
    this.#running = true
    const group = this.#queue
    this.#queue = []
    this.#run(group).finally(() => {
      this.#running = false
      this.#kick()
    })
  }

  async #run (group: Waiting[]): Promise<void> {
    const stats = this.#ctx.stats
    let bytes = 0
    try {
      await this.#packs.sync()
      const ends = new Map<number, number>()
      const ops: BatchOp[] = []
      for (const w of group) {
        ops.push({ type: 'put', key: key(P.chunk, w.digest), value: encodeLocation(w.loc) })
        ends.set(w.loc.pack, Math.max(ends.get(w.loc.pack) ?? 0, w.loc.offset + w.loc.length))
        bytes += w.loc.rawSize
      }
      for (const [pack, end] of ends) ops.push({ type: 'put', key: key(P.packEnd, String(pack)), value: enc.encode(String(end)) })
      stats.chunks += group.length
      stats.bytes += bytes
      ops.push(statsOp(this.#ctx))
      try {
        await this.#ctx.have.update(group.map(w => w.digest), true, async haveOps => { await this.#ctx.db.batch([...ops, ...haveOps]) })
      } catch (err) {
        stats.chunks -= group.length
        stats.bytes -= bytes
        throw err
      }
      this.groups++
      for (const w of group) w.resolve()
    } catch (err: any) {
      const out = isDiskFull(err) && err?.code !== 'DISK_FULL' ? new DiskFullError('disk full writing the chunk index', { cause: err }) : err
      for (const w of group) w.reject(out)
    }
  }
}
