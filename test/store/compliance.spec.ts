// The store contract suite (compliance.ts) against each implementation.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore } from '../../store/memory.js'
import { Store } from '../../store/store.js'
import { storeCompliance } from './compliance.js'

let dir: string | undefined

storeCompliance('LevelDB store', {
  open: async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-compliance-'))
    // small packs, so that gc's pack rewrites run too
    return await Store.open(dir, { packMaxBytes: 2048 })
  },
  reopen: async (store) => {
    await store.close()
    return await Store.open(store.dir, { packMaxBytes: 2048 })
  },
  cleanup: async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    dir = undefined
  }
})

storeCompliance('memory store', {
  open: async () => new MemoryStore(),
  cleanup: async () => {}
})
