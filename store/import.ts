// Import from files already on disk (e.g. an older release downloaded by FTP): chunk them with the
// shipped chunker into the store, so that a later fetch only moves the delta. Imported chunks are not
// pinned: pin a release that references them (or fetch one, which pins) before running gc. Chunks are
// kept zstd-compressed when that saves space, like everything else the store holds.
import { chunkStream, DEFAULT_CHUNKER, type ChunkerParams } from '../protocol/chunker.js'
import { sha256 } from '../protocol/cid.js'
import { compressChunk } from '../protocol/encoding/compression.js'
import { walkRelease } from '../protocol/ingest.js'
import type { HeraldStore } from './interface.js'

export interface ImportResult {
  files: number
  chunks: number
  newChunks: number
  bytes: number
}

export async function importDirectory (store: HeraldStore, dir: string, params: ChunkerParams = DEFAULT_CHUNKER): Promise<ImportResult> {
  return await store.withGcLease(async () => {
    const result: ImportResult = { files: 0, chunks: 0, newChunks: 0, bytes: 0 }
    for await (const file of walkRelease(dir)) {
      result.files++
      for await (const chunk of chunkStream(file.open(), params)) {
        result.chunks++
        result.bytes += chunk.byteLength
        const digest = sha256(chunk)
        if (await store.hasChunk(digest)) continue
        if (await store.putChunk(digest, chunk, compressChunk(chunk))) result.newChunks++
      }
    }
    return result
  })
}
