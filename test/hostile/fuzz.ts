// Mutation fuzzing of decoders: start from valid encodings, mutate them (bit flips, byte overwrites with
// boundary values, truncation, extension, splices, length fields set to extremes) and feed the result to
// the decoder. A decoder holds when every input is either accepted or refused with a typed error (an error
// with a string `code`); a TypeError, RangeError, untyped error or a hang is a failure.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { sha256 } from '../../protocol/cid.js'
import { DEFAULT_CHUNKER } from '../../protocol/chunker.js'
import { decodeDelta, encodeDelta } from '../../protocol/delta.js'
import { compressChunk, decompressChunk } from '../../protocol/encoding/compression.js'
import * as m from '../../protocol/exchange/messages.js'
import { decodeManifest, encodeManifest, manifestCid, type Manifest } from '../../protocol/manifest.js'
import { decodeSignedRelease, signRelease } from '../../protocol/release.js'

/** a small deterministic PRNG (xorshift32), so a failing input can be reproduced from its seed */
export function rng (seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s }
}

const SPECIAL = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x40]

export function mutate (seedInput: Uint8Array, r: () => number): Uint8Array {
  let b = new Uint8Array(seedInput)
  const ops = 1 + (r() % 4)
  for (let k = 0; k < ops; k++) {
    const at = b.byteLength === 0 ? 0 : r() % b.byteLength
    switch (r() % 8) {
      case 0: if (b.byteLength > 0) b[at] ^= 1 << (r() % 8); break
      case 1: if (b.byteLength > 0) b[at] = SPECIAL[r() % SPECIAL.length]; break
      case 2: b = b.slice(0, at); break
      case 3: { const extra = new Uint8Array(1 + (r() % 64)).map(() => r() & 0xff); b = new Uint8Array(Buffer.concat([b, extra])); break }
      case 4: { // a 32-bit field set to an extreme, anywhere (length and count fields)
        if (b.byteLength >= at + 4) new DataView(b.buffer, b.byteOffset).setUint32(at, [0xffffffff, 0x7fffffff, 0x00ffffff, 0x10000][r() % 4])
        break
      }
      case 5: { const n = Math.min(b.byteLength - at, 1 + (r() % 16)); b.copyWithin(r() % Math.max(1, b.byteLength), at, at + n); break }
      case 6: if (b.byteLength > 0) b = new Uint8Array(Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + (r() % 8)), b.subarray(at)])); break
      default: if (b.byteLength > 0) b[at] = r() & 0xff
    }
  }
  return b
}

export interface Decoder { name: string, seeds: Uint8Array[], decode: (b: Uint8Array) => unknown }

export async function decoders (): Promise<Decoder[]> {
  const d32 = (n: number): Uint8Array => sha256(new Uint8Array([n]))
  const text = new TextEncoder().encode('>sp|P1|T OS=Homo sapiens\nMKTAYIAKQRQISFVKSHFSRQ\n'.repeat(200))
  const frame = compressChunk(text)!
  const chunk = (i: number): Uint8Array => new TextEncoder().encode(`chunk ${i} `.repeat(40 + i))
  const files = [0, 1, 2].map(f => {
    const parts = [chunk(f), chunk(f + 3)]
    const packed = new Uint8Array(64); parts.forEach((p, i) => packed.set(sha256(p), i * 32))
    return { path: `dir/f${f}.fasta`, size: parts[0].byteLength + parts[1].byteLength, mode: 0o644, chunks: packed, chunkSizes: Uint32Array.from(parts.map(p => p.byteLength)), upstream: { name: `f${f}.fasta.gz`, size: 10, sha256: 'a'.repeat(64), md5: 'b'.repeat(32), compression: 'gzip' as const } }
  })
  const man: Manifest = { format: 1, dataset: 'uniprot', version: '2024-03', chunker: { ...DEFAULT_CHUNKER }, files, encodings: [{ targets: [files[0].chunks.subarray(0, 32)], object: d32(9), size: files[0].chunkSizes[0], bases: [d32(7)], kind: 'zstd-dict/1' }], createdAt: 1 }
  const manifestBytes = encodeManifest(man)
  const key = await generateKeyPair('Ed25519')
  const record = await signRelease({ dataset: 'uniprot', version: '2024-03', manifestCid: manifestCid(manifestBytes), seq: 3, publishedAt: 1_700_000_000_000 }, key)
  const base = new TextEncoder().encode('>sp|P1|T OS=Homo sapiens\nMKTAYIAKQRQISFVKSHFSRQ\n'.repeat(150))
  const target = new TextEncoder().encode('>sp|P1|T OS=Homo sapiens\nMKTAYIAKQRQISFVKSHFSRZ\n'.repeat(150))
  const delta = encodeDelta([target], [base])
  return [
    { name: 'chunk request', seeds: [m.encodeChunkRequest([d32(1), d32(2)], m.ACCEPT_ZSTD), m.encodeChunkRequest([d32(3)])], decode: b => m.decodeChunkRequestFull(b) },
    {
      name: 'chunk response',
      seeds: [m.encodeChunkResponse({ status: m.Status.OK, encoding: m.Encoding.ZSTD, digest: d32(1), data: frame, rawSize: text.byteLength }), m.encodeChunkResponse({ status: m.Status.OK, encoding: m.Encoding.RAW, digest: d32(2), data: text.subarray(0, 300) }), m.encodeChunkResponse({ status: m.Status.NOT_FOUND, encoding: m.Encoding.RAW, digest: d32(3), data: new Uint8Array(0) })],
      // as the client takes it: the frame, then its zstd payload decompressed strictly
      decode: b => { const r = m.decodeChunkResponse(b); if (r.encoding === m.Encoding.ZSTD) decompressChunk(r.data, r.rawSize ?? 0) }
    },
    { name: 'have request', seeds: [m.encodeHaveRequest(manifestCid(manifestBytes).bytes)], decode: b => m.decodeHaveRequest(b) },
    {
      name: 'have message',
      seeds: [m.encodeHaveMessage({ type: 'bitmap', status: m.Status.OK, count: 20, bitmap: new Uint8Array([0xff, 0x0f, 0xa0]) }), m.encodeHaveMessage({ type: 'update', complete: false, indices: [1, 5, 19] }), m.encodeHaveMessage({ type: 'bitmap', status: m.Status.NOT_FOUND, count: 0, bitmap: new Uint8Array(0) })],
      decode: b => m.decodeHaveMessage(b)
    },
    { name: 'release request', seeds: [m.encodeReleaseRequest('uniprot', '2024-03')], decode: b => m.decodeReleaseRequest(b) },
    { name: 'release response', seeds: [m.encodeReleaseResponse(m.Status.OK, record)], decode: b => { const r = m.decodeReleaseResponse(b); if (r.status === m.Status.OK) decodeSignedRelease(r.record) } },
    { name: 'manifest header', seeds: [m.encodeManifestHeader(m.Status.OK, 123_456), m.encodeManifestHeader(m.Status.NOT_FOUND, 0)], decode: b => m.decodeManifestHeader(b) },
    { name: 'manifest', seeds: [manifestBytes, encodeManifest({ ...man, encodings: [] })], decode: b => decodeManifest(b) },
    { name: 'release record', seeds: [record], decode: b => decodeSignedRelease(b) },
    { name: 'delta object', seeds: [delta], decode: b => decodeDelta(b, [base], target.byteLength) },
    { name: 'zstd frame', seeds: [frame, compressChunk(new Uint8Array(65_536))!], decode: b => decompressChunk(b, text.byteLength) }
  ]
}

export interface FuzzResult { trials: number, accepted: number, refused: number, failures: Array<{ seed: number, error: string }>, rssBeforeMiB: number, rssAfterMiB: number, seconds: number }

/** Run `trials` mutated inputs through one decoder. */
export function fuzz (d: Decoder, trials: number, seed = 1): FuzzResult {
  const r = rng(seed)
  const started = performance.now()
  // warm-up, then RSS before
  for (let i = 0; i < 2_000; i++) { try { d.decode(mutate(d.seeds[i % d.seeds.length], r)) } catch {} }
  globalThis.gc?.()
  const rssBefore = process.memoryUsage().rss
  const out: FuzzResult = { trials, accepted: 0, refused: 0, failures: [], rssBeforeMiB: rssBefore / 2 ** 20, rssAfterMiB: 0, seconds: 0 }
  for (let i = 0; i < trials; i++) {
    const input = mutate(d.seeds[i % d.seeds.length], r)
    try {
      d.decode(input)
      out.accepted++
    } catch (err: any) {
      if (typeof err?.code === 'string' && !(err instanceof TypeError) && !(err instanceof RangeError)) out.refused++
      else if (out.failures.length < 10) out.failures.push({ seed: i, error: `${String(err?.name)}: ${String(err?.message)} (${Buffer.from(input.subarray(0, 48)).toString('hex')})` })
      else out.failures.push({ seed: i, error: '' })
    }
  }
  globalThis.gc?.()
  out.rssAfterMiB = process.memoryUsage().rss / 2 ** 20
  out.seconds = (performance.now() - started) / 1000
  return out
}
