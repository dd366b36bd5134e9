// Persisted have-bitmaps: for each tracked manifest, which of its entries (chunks, then delta objects) the
// index holds, so that a daemon starting up reads one record per release and its bitmap, never the index
// once per chunk. Kept current by every write that adds or removes index entries (group commit, drop, gc,
// recovery at open): the bit flips ride in the same LevelDB batch as the index change, so after a crash the
// bitmap and the index agree exactly — the bitmap can never claim an entry the index lacks.
//
// Layout (keys.ts): `h/<manifest CID>` → the state as JSON, `hb/<id><segment>` → 1 KiB of bitmap per
// 8,192 entries (a group commit rewrites only the segments it touches), `hr/<digest>` → the (id, position)
// pairs where that digest sits in tracked manifests (8 bytes each), which is how a write finds its bits.
import { bitClear, bitGet, bitmapBytes, bitSet, popcount } from '../protocol/bitmap.js'
import { StoreCorruptError } from './errors.js'
import { dec, enc, key, P, upperBound, type BatchOp } from './keys.js'
import type { IndexDb } from './db.js'
import type { HaveState } from './interface.js'

/** entries per bitmap segment (1 KiB): a write rewrites whole segments, start-up reads ~120 per 10^6 entries */
export const SEGMENT_BITS = 8192

interface Meta extends Omit<HaveState, 'complete'> {
  id: number
}

function state (m: Meta): HaveState {
  const { id: _id, ...rest } = m
  return { ...rest, complete: m.heldRequired === m.required && m.tracked === m.entries }
}

function u32 (n: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n)
  return out
}

function segKey (id: number, seg: number): Uint8Array {
  const k = new Uint8Array(8)
  const dv = new DataView(k.buffer)
  dv.setUint32(0, id)
  dv.setUint32(4, seg)
  return key(P.haveSeg, k)
}

function segLength (m: Meta, seg: number): number {
  return bitmapBytes(Math.min(SEGMENT_BITS, m.entries - seg * SEGMENT_BITS))
}

function pairs (v: Uint8Array | undefined): Array<[number, number]> {
  if (v === undefined) return []
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength)
  const out: Array<[number, number]> = []
  for (let o = 0; o + 8 <= v.byteLength; o += 8) out.push([dv.getUint32(o), dv.getUint32(o + 4)])
  return out
}

function packPairs (ps: Array<[number, number]>): Uint8Array {
  const out = new Uint8Array(ps.length * 8)
  const dv = new DataView(out.buffer)
  ps.forEach(([id, pos], i) => { dv.setUint32(i * 8, id); dv.setUint32(i * 8 + 4, pos) })
  return out
}

function metaOp (m: Meta): BatchOp {
  return { type: 'put', key: key(P.have, m.manifestCid), value: enc.encode(JSON.stringify(m)) }
}

export class HaveBitmaps {
  readonly #db: IndexDb
  readonly #byId = new Map<number, Meta>()
  readonly #byCid = new Map<string, Meta>()
  #next: number
  /** every change to bitmaps, and every index write that must move them, runs one at a time */
  #tail: Promise<unknown> = Promise.resolve()

  private constructor (db: IndexDb, metas: Meta[], next: number) {
    this.#db = db
    for (const m of metas) { this.#byId.set(m.id, m); this.#byCid.set(m.manifestCid, m) }
    this.#next = next
  }

  /** Reads one record per tracked manifest. */
  static async load (db: IndexDb): Promise<HaveBitmaps> {
    const metas: Meta[] = []
    for await (const v of db.values({ gte: key(P.have, ''), lt: upperBound(P.have) })) metas.push(JSON.parse(dec.decode(v)))
    const next = await db.get(key(P.meta, 'haveNext'))
    return new HaveBitmaps(db, metas, next === undefined ? 1 : Number(dec.decode(next)))
  }

  async #locked<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn)
    this.#tail = run.catch(() => {})
    return await run
  }

  /**
   * Write an index change that stores (`held` true) or removes (false) these digests: `write` gets the
   * bitmap ops to put in the same batch as the index ops. Nothing in memory changes unless `write` succeeds.
   */
  async update (digests: Uint8Array[], held: boolean, write: (ops: BatchOp[]) => Promise<void>): Promise<void> {
    await this.#locked(async () => {
      if (this.#byId.size === 0 || digests.length === 0) { await write([]); return }
      const refs = await this.#db.getMany(digests.map(d => key(P.haveRef, d)))
      const hits: Array<[Meta, number]> = []
      for (const v of refs) {
        for (const [id, pos] of pairs(v)) {
          const m = this.#byId.get(id)
          if (m !== undefined && pos < m.tracked) hits.push([m, pos])
        }
      }
      if (hits.length === 0) { await write([]); return }
      const segs = new Map<string, { m: Meta, seg: number, bits?: Uint8Array }>()
      for (const [m, pos] of hits) {
        const seg = Math.floor(pos / SEGMENT_BITS)
        segs.set(`${m.id}/${seg}`, { m, seg })
      }
      const list = [...segs.values()]
      const values = await this.#db.getMany(list.map(s => segKey(s.m.id, s.seg)))
      list.forEach((s, i) => {
        const bits = new Uint8Array(segLength(s.m, s.seg))
        if (values[i] !== undefined) bits.set(values[i]!.subarray(0, bits.byteLength))
        s.bits = bits
      })
      const next = new Map<number, Meta>()
      const changed = new Set<string>()
      for (const [m, pos] of hits) {
        const seg = Math.floor(pos / SEGMENT_BITS)
        const s = segs.get(`${m.id}/${seg}`)!
        const bit = pos - seg * SEGMENT_BITS
        if (bitGet(s.bits!, bit) === held) continue
        if (held) bitSet(s.bits!, bit); else bitClear(s.bits!, bit)
        changed.add(`${m.id}/${seg}`)
        const copy = next.get(m.id) ?? { ...m }
        next.set(m.id, copy)
        const d = held ? 1 : -1
        copy.held += d
        if (pos < m.required) copy.heldRequired += d
      }
      const ops: BatchOp[] = []
      for (const k of changed) { const s = segs.get(k)!; ops.push({ type: 'put', key: segKey(s.m.id, s.seg), value: s.bits! }) }
      for (const m of next.values()) ops.push(metaOp(m))
      await write(ops)
      for (const m of next.values()) this.#set(m)
    })
  }

  #set (m: Meta): void {
    this.#byId.set(m.id, m)
    this.#byCid.set(m.manifestCid, m)
  }

  /** See HeraldStore.trackHave: one slice of SEGMENT_BITS entries per atomic batch, resumable. */
  async track (manifestCid: string, entries: Uint8Array, required: number): Promise<HaveState> {
    if (entries.byteLength % 32 !== 0) throw new RangeError('entries must be packed 32-byte digests')
    const n = entries.byteLength / 32
    if (!Number.isInteger(required) || required < 0 || required > n) throw new RangeError(`required ${required} is not within 0..${n}`)
    let m = this.#byCid.get(manifestCid)
    if (m !== undefined && (m.entries !== n || m.required !== required)) throw new RangeError(`${manifestCid} is tracked with ${m.entries} entries (${m.required} required), not ${n} (${required})`)
    if (m === undefined) {
      m = await this.#locked(async () => {
        const fresh: Meta = { id: this.#next, manifestCid, entries: n, required, held: 0, heldRequired: 0, tracked: 0 }
        await this.#db.batch([metaOp(fresh), { type: 'put', key: key(P.meta, 'haveNext'), value: enc.encode(String(fresh.id + 1)) }])
        this.#next++
        this.#set(fresh)
        return fresh
      })
    }
    while (m.tracked < n) {
      m = await this.#locked(async () => await this.#trackSlice(this.#byCid.get(manifestCid)!, entries))
    }
    return state(m)
  }

  async #trackSlice (m: Meta, entries: Uint8Array): Promise<Meta> {
    const start = m.tracked
    const end = Math.min(m.entries, start + SEGMENT_BITS)
    const digests: Uint8Array[] = []
    for (let i = start; i < end; i++) digests.push(entries.subarray(i * 32, i * 32 + 32))
    const present = await this.#db.getMany(digests.map(d => key(P.chunk, d)))
    const refKeys = digests.map(d => key(P.haveRef, d))
    const prior = await this.#db.getMany(refKeys)
    // a digest at several positions of this slice accumulates its pairs in one value: found by its first
    // four bytes (cheap to read, and a match is confirmed on the whole digest)
    const refs: Array<{ key: Uint8Array, pairs: Array<[number, number]> }> = []
    const byHead = new Map<number, number[]>()
    const bits = new Uint8Array(segLength(m, start / SEGMENT_BITS))
    const copy = { ...m, tracked: end }
    for (let j = 0; j < digests.length; j++) {
      const pos = start + j
      if (present[j] !== undefined) {
        bitSet(bits, j)
        copy.held++
        if (pos < m.required) copy.heldRequired++
      }
      const d = digests[j]
      const head = ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0
      const seen = byHead.get(head)
      const at = seen?.find(r => Buffer.from(refs[r].key).equals(Buffer.from(refKeys[j])))
      if (at !== undefined) { refs[at].pairs.push([m.id, pos]); continue }
      const before = prior[j] === undefined ? [] : pairs(prior[j]).filter(([id]) => this.#byId.has(id))
      before.push([m.id, pos])
      refs.push({ key: refKeys[j], pairs: before })
      if (seen !== undefined) seen.push(refs.length - 1); else byHead.set(head, [refs.length - 1])
    }
    const ops: BatchOp[] = refs.map(r => ({ type: 'put', key: r.key, value: packPairs(r.pairs) }))
    ops.push({ type: 'put', key: segKey(m.id, start / SEGMENT_BITS), value: bits }, metaOp(copy))
    await this.#db.batch(ops)
    this.#set(copy)
    return copy
  }

  /** See HeraldStore.untrackHave. */
  async untrack (manifestCid: string, entries: Uint8Array): Promise<boolean> {
    const m = this.#byCid.get(manifestCid)
    if (m === undefined) return false
    await this.#locked(async () => {
      // the state goes first: pairs left behind by a crash name an id nothing tracks, and are skipped
      await this.#db.del(key(P.have, manifestCid))
      this.#byId.delete(m.id)
      this.#byCid.delete(manifestCid)
    })
    const n = Math.min(entries.byteLength / 32, m.tracked)
    for (let start = 0; start < n; start += SEGMENT_BITS) {
      await this.#locked(async () => {
        const keys: Uint8Array[] = []
        for (let i = start; i < Math.min(n, start + SEGMENT_BITS); i++) keys.push(key(P.haveRef, entries.subarray(i * 32, i * 32 + 32)))
        const values = await this.#db.getMany(keys)
        const ops: BatchOp[] = []
        values.forEach((v, j) => {
          if (v === undefined) return
          const kept = pairs(v).filter(([id]) => id !== m.id && this.#byId.has(id))
          ops.push(kept.length > 0 ? { type: 'put', key: keys[j], value: packPairs(kept) } : { type: 'del', key: keys[j] })
        })
        await this.#db.batch(ops)
      })
    }
    await this.#db.clear({ gte: key(P.haveSeg, u32(m.id)), lt: key(P.haveSeg, u32(m.id + 1)) })
    return true
  }

  list (): HaveState[] {
    return [...this.#byId.values()].map(state)
  }

  /** The state and the bitmap, read segment by segment (nothing per entry). */
  async get (manifestCid: string): Promise<{ state: HaveState, bitmap: Uint8Array } | undefined> {
    return await this.#locked(async () => {
      const m = this.#byCid.get(manifestCid)
      if (m === undefined) return undefined
      const bitmap = new Uint8Array(bitmapBytes(m.entries))
      for await (const [k, v] of this.#db.entries({ gte: key(P.haveSeg, u32(m.id)), lt: key(P.haveSeg, u32(m.id + 1)) })) {
        const seg = new DataView(k.buffer, k.byteOffset + P.haveSeg.length + 4, 4).getUint32(0)
        const at = seg * (SEGMENT_BITS / 8)
        if (at < bitmap.byteLength) bitmap.set(v.subarray(0, Math.min(v.byteLength, bitmap.byteLength - at)), at)
      }
      if (popcount(bitmap, m.entries) !== m.held) throw new StoreCorruptError(`have-bitmap of ${manifestCid} holds ${popcount(bitmap, m.entries)} entries, its state says ${m.held}`)
      return { state: state(m), bitmap }
    })
  }
}
