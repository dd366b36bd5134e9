// Free-space check before a fetch: the plan knows the bytes it will write (chunks into the packs, the
// release into its staging directory), so a fetch that cannot fit fails at once with DISK_FULL instead of
// filling the disk first.
import { stat, statfs } from 'node:fs/promises'
import { dirname } from 'node:path'
import { DiskFullError } from './errors.js'

/** Space kept free beyond what a fetch needs: the index, logs and the rest of the system need some too. */
export const FREE_SPACE_MARGIN_BYTES = 16 * 1024 * 1024

async function existing (path: string): Promise<string> {
  for (let p = path, i = 0; i < 64; p = dirname(p), i++) {
    try { await stat(p); return p } catch {}
    if (dirname(p) === p) break
  }
  return '/'
}

function fmt (n: number): string { return `${(n / 1024 / 1024).toFixed(1)} MiB` }

/**
 * Throw DISK_FULL unless every filesystem named has room for the bytes to write there (paths on the same
 * filesystem add up), plus a margin. A write with `unlessExists` is not counted when that path exists.
 */
export async function checkFreeSpace (writes: Array<{ path: string, bytes: number, unlessExists?: string }>, margin = FREE_SPACE_MARGIN_BYTES): Promise<void> {
  const byDev = new Map<number, { path: string, bytes: number }>()
  for (const w of writes) {
    // e.g. the release directory already in place: a fetch that finds it does not stage it again
    if (w.unlessExists != null && await stat(w.unlessExists).then(() => true, () => false)) continue
    const p = await existing(w.path)
    const dev = (await stat(p)).dev
    const cur = byDev.get(dev)
    byDev.set(dev, { path: cur?.path ?? p, bytes: (cur?.bytes ?? 0) + w.bytes })
  }
  for (const { path, bytes } of byDev.values()) {
    const s = await statfs(path)
    const available = Number(s.bavail) * Number(s.bsize)
    const needed = bytes + margin
    if (available < needed) {
      throw new DiskFullError(`not enough free space in ${path}: the fetch needs ${fmt(needed)} (with a ${fmt(margin)} margin), ${fmt(available)} is free`, { needed, available })
    }
  }
}
