// `npm run bench:delta -- OLD NEW [--avg BYTES]`: chunk two releases (files or directories, through the same
// walk/decompress as publish) with the shipped chunker and print one JSON line:
// {oldBytes, newBytes, newChunks, reusedChunks, deltaBytes, compressedBytes, seconds, mbPerSec}
// deltaBytes = bytes of NEW's distinct chunks that OLD does not have (what a fetch would move, raw);
// compressedBytes = the same chunks as the chunk protocol sends them (zstd when it saves >= 1/16).
import '../../protocol/polyfill.js'
import { parseArgs } from 'node:util'
import { chunkStream, DEFAULT_CHUNKER, type ChunkerParams } from '../../protocol/chunker.js'
import { digestHex, sha256 } from '../../protocol/cid.js'
import { compressChunk } from '../../protocol/exchange/compression.js'
import { walkRelease } from '../../protocol/ingest.js'

async function chunks (path: string, params: ChunkerParams, keep?: Map<string, number>): Promise<{ bytes: number, chunks: Map<string, number>, compressed: Map<string, number> }> {
  const out = new Map<string, number>()
  const compressed = new Map<string, number>()
  let bytes = 0
  for await (const file of walkRelease(path)) {
    for await (const c of chunkStream(file.open(), params)) {
      const d = digestHex(sha256(c))
      out.set(d, c.byteLength)
      // only chunks a fetch would move are compressed (the ones OLD lacks)
      if (keep != null && !keep.has(d)) compressed.set(d, compressChunk(c)?.byteLength ?? c.byteLength)
      bytes += c.byteLength
    }
  }
  return { bytes, chunks: out, compressed }
}

async function main (): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { avg: { type: 'string' } } })
  if (positionals.length !== 2) {
    console.error('usage: npm run bench:delta -- OLD NEW [--avg BYTES]')
    process.exit(2)
  }
  const avg = values.avg != null ? Number(values.avg) : DEFAULT_CHUNKER.avgSize
  const params: ChunkerParams = values.avg != null ? { ...DEFAULT_CHUNKER, avgSize: avg, minSize: avg / 4, maxSize: avg * 4 } : { ...DEFAULT_CHUNKER }
  const started = performance.now()
  const old = await chunks(positionals[0], params)
  const next = await chunks(positionals[1], params, old.chunks)
  const seconds = (performance.now() - started) / 1000
  let reusedChunks = 0
  let deltaBytes = 0
  let compressedBytes = 0
  for (const [d, size] of next.chunks) {
    if (old.chunks.has(d)) reusedChunks++
    else { deltaBytes += size; compressedBytes += next.compressed.get(d) ?? size }
  }
  console.log(JSON.stringify({
    oldBytes: old.bytes,
    newBytes: next.bytes,
    newChunks: next.chunks.size,
    reusedChunks,
    deltaBytes,
    compressedBytes,
    seconds: +seconds.toFixed(3),
    mbPerSec: +((old.bytes + next.bytes) / 1e6 / seconds).toFixed(1)
  }))
}

main().catch(err => { console.error(err); process.exit(1) })
