// Power-cut simulation for the store: what a power cut leaves of a store being written (the index as it is
// on disk, each pack cut to its fsynced length), and checks that every indexed chunk is whole.
import { expect } from 'chai'
import { cp, mkdir, readdir, stat, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256, verifyDigest } from '../../protocol/cid.js'
import type { Store } from '../../store/store.js'

export function randomChunk (rand: () => number, size: number): { d: Uint8Array, b: Uint8Array } {
  const b = new Uint8Array(size)
  for (let i = 0; i < size; i++) b[i] = Math.floor(rand() * 256)
  return { d: sha256(b), b }
}

/** Every indexed chunk reads back whole; returns how many are indexed. */
export async function checkWhole (store: Store, chunks: Array<{ d: Uint8Array, b: Uint8Array }>): Promise<number> {
  let present = 0
  for (const c of chunks) {
    if (!(await store.hasChunk(c.d))) continue
    const got = await store.getChunk(c.d)
    expect(got != null && verifyDigest(c.d, got), 'an indexed chunk is not whole').to.equal(true)
    present++
  }
  return present
}

/**
 * Simulate a power cut while chunks are being stored: copy the index as it is on disk now, then the packs
 * cut to their fsynced length (what a power cut leaves of them), and open the copy.
 */
export async function powerCut (store: Store, to: string): Promise<void> {
  await mkdir(to, { recursive: true })
  await cp(join(store.dir, 'index'), join(to, 'index'), { recursive: true })
  const packsDir = join(store.dir, 'packs')
  await mkdir(join(to, 'packs'))
  for (const name of await readdir(packsDir)) {
    const id = Number(/^pack-(\d{8})\.dat$/.exec(name)?.[1] ?? NaN)
    if (Number.isNaN(id)) continue
    // read the durable length before copying: bytes made durable during the copy are not counted
    const durable = store.durableLength(id)
    await cp(join(packsDir, name), join(to, 'packs', name))
    const size = (await stat(join(to, 'packs', name))).size
    if (size > durable) await truncate(join(to, 'packs', name), durable)
  }
}

