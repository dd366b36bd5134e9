// The store's LevelDB index behind the few calls the store makes, counting every key it reads: a test can
// then assert that an operation (the daemon's start-up, say) does work proportional to what it should,
// without timing it. Range reads are async generators that close their iterator however the loop ends.
import { Level } from 'level'
import { StoreLockedError } from './errors.js'
import type { BatchOp } from './keys.js'

export interface Range { gte: Uint8Array, lt: Uint8Array }

export class IndexDb {
  readonly #db: Level<Uint8Array, Uint8Array>
  /** keys read so far: one per get, one per key of a getMany, one per entry a range read yields */
  reads = 0

  private constructor (db: Level<Uint8Array, Uint8Array>) {
    this.#db = db
  }

  static async open (path: string, dir: string): Promise<IndexDb> {
    const db = new Level<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err: any) {
      if (err.code === 'LEVEL_LOCKED' || err.cause?.code === 'LEVEL_LOCKED') throw new StoreLockedError(dir, { cause: err })
      throw err
    }
    return new IndexDb(db)
  }

  async close (): Promise<void> { await this.#db.close() }

  async get (key: Uint8Array): Promise<Uint8Array | undefined> {
    this.reads++
    return await this.#db.get(key)
  }

  async getMany (keys: Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    this.reads += keys.length
    return keys.length === 0 ? [] : await this.#db.getMany(keys)
  }

  async * entries (range: Range): AsyncGenerator<[Uint8Array, Uint8Array]> {
    const it = this.#db.iterator(range)
    try {
      for await (const kv of it) {
        this.reads++
        yield kv
      }
    } finally {
      await it.close()
    }
  }

  async * keys (range: Range): AsyncGenerator<Uint8Array> {
    for await (const [k] of this.entries(range)) yield k
  }

  async * values (range: Range): AsyncGenerator<Uint8Array> {
    for await (const [, v] of this.entries(range)) yield v
  }

  async put (key: Uint8Array, value: Uint8Array): Promise<void> { await this.#db.put(key, value) }

  async del (key: Uint8Array, options: { sync?: boolean } = {}): Promise<void> { await this.#db.del(key, options) }

  async batch (ops: BatchOp[], options: { sync?: boolean } = {}): Promise<void> {
    if (ops.length > 0) await this.#db.batch(ops, options)
  }

  async clear (range: Range): Promise<void> { await this.#db.clear(range) }
}
