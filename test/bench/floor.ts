// The CPU floor of a swarm run, measured on this machine in the same run: what the primitives every moved
// byte must pass through cost per byte, with no libp2p, no JavaScript framing and no garbage collection:
// ChaCha20-Poly1305 (Noise) on both ends, a loopback TCP send and receive, zstd decompression, sha256, the
// pack and staging-file writes, and the pack read when serving. Multiplied by the bytes the run moved, it
// gives the CPU-seconds no implementation on this transport can go below; divided by the cores, a time floor.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { open, readFile, readdir, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { connect, createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { compressChunk } from '../../protocol/encoding/compression.js'

const require = createRequire(import.meta.url)
const zstd = require('zstd-napi') as { decompress: (data: Uint8Array) => Buffer }

/** CPU nanoseconds per byte of each primitive. */
export interface PrimitiveCosts {
  encrypt: number
  decrypt: number
  tcp: number
  zstdDecompress: number
  sha256: number
  write: number
  read: number
}

/** The bytes a run moved, summed over all processes. */
export interface MovedBytes {
  /** bytes received on the wire (compressed where compressed), all daemons */
  wire: number
  /** chunk bytes verified and stored, all daemons */
  verified: number
  /** bytes served, all processes (the seed included) */
  served: number
}

function cpuSeconds (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** The cheapest of three runs (the first also warms up the code and the buffers). */
async function perByte (bytes: number, fn: () => Promise<void> | void): Promise<number> {
  let best = Infinity
  for (let i = 0; i < 3; i++) {
    const c0 = cpuSeconds()
    await fn()
    best = Math.min(best, (cpuSeconds() - c0) / bytes * 1e9)
  }
  return best
}

/** A sample of the release itself (its first files, up to `limit` bytes), so zstd sees the real ratio. */
async function sampleOf (dir: string, limit: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let n = 0
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    if (n >= limit) break
    const b = await readFile(join(dir, name)).catch(() => undefined)
    if (b === undefined) continue
    parts.push(b.subarray(0, limit - n))
    n += parts[parts.length - 1].byteLength
  }
  return Buffer.concat(parts)
}

/** Measure each primitive, three times over `total` bytes (2–3 s of CPU in all at 64 MiB). */
export async function measurePrimitives (releaseDir: string, scratch: string, total = 64 * 2 ** 20): Promise<PrimitiveCosts> {
  const frame = randomBytes(65_535 - 16) // a full Noise transport frame
  const key = randomBytes(32)
  const nonce = Buffer.alloc(12)
  let sealed = Buffer.alloc(0)
  const encrypt = await perByte(total, () => {
    for (let n = 0; n < total; n += frame.length) {
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
      sealed = Buffer.concat([c.update(frame), c.final(), c.getAuthTag()])
    }
  })
  const decrypt = await perByte(total, () => {
    for (let n = 0; n < total; n += frame.length) {
      const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
      d.setAuthTag(sealed.subarray(sealed.length - 16))
      d.update(sealed.subarray(0, sealed.length - 16))
      d.final()
    }
  })
  const chunkSize = 256 * 1024
  const sample = await sampleOf(releaseDir, Math.min(total, 32 * 2 ** 20))
  const chunks: Array<{ raw: Buffer, frame: Uint8Array | undefined }> = []
  for (let o = 0; o < sample.length; o += chunkSize) {
    const raw = sample.subarray(o, o + chunkSize)
    chunks.push({ raw, frame: compressChunk(raw) })
  }
  const zstdDecompress = await perByte(total, () => {
    for (let n = 0, i = 0; n < total; i++) {
      const c = chunks[i % chunks.length]
      if (c.frame !== undefined) zstd.decompress(c.frame)
      n += c.raw.length
    }
  })
  const block = randomBytes(chunkSize)
  const sha256 = await perByte(total, () => {
    for (let n = 0; n < total; n += block.length) createHash('sha256').update(block).digest()
  })
  const file = join(scratch, 'floor.dat')
  const fh = await open(file, 'w')
  const write = await perByte(total, async () => {
    for (let n = 0; n < total; n += block.length) await fh.write(block, 0, block.length, n)
  })
  await fh.close()
  const rh = await open(file, 'r')
  const into = Buffer.alloc(block.length)
  const read = await perByte(total, async () => {
    for (let n = 0; n < total; n += block.length) await rh.read(into, 0, into.length, n)
  })
  await rh.close()
  await rm(file, { force: true })
  // both ends of one loopback connection in this process: a send and a receive per byte
  const server = createServer(s => { s.on('data', () => {}); s.on('end', () => s.end()) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const tcp = await perByte(total, async () => {
    await new Promise<void>(resolve => {
      const s = connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
        let n = 0
        const pump = (): void => {
          while (n < total) {
            n += frame.length
            if (!s.write(frame)) { s.once('drain', pump); return }
          }
          s.end()
        }
        pump()
      })
      s.on('data', () => {})
      s.on('close', () => { resolve() })
    })
  })
  server.close()
  return { encrypt, decrypt, tcp, zstdDecompress, sha256, write, read }
}

/**
 * CPU-seconds the moved bytes cost at the primitives' prices: every wire byte is encrypted, sent, received
 * and decrypted once; every verified byte decompressed (at the sample's compressible share), hashed and
 * written twice (pack and staging file); every served byte read from a pack.
 */
export function floorCpuSeconds (c: PrimitiveCosts, moved: MovedBytes): number {
  const ns = moved.wire * (c.encrypt + c.decrypt + c.tcp) +
    moved.verified * (c.zstdDecompress + c.sha256 + 2 * c.write) +
    moved.served * c.read
  return ns / 1e9
}
