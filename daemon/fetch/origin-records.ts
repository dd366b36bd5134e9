// A lab that reaches no seed gets a release's signed record and manifest from the static origins, in the
// layout `herald export` writes (docs/PROTOCOL.md):
//   <origin>/herald/releases/<dataset>/<version>   the signed record, as the publisher signed it
//   <origin>/ipfs/<manifestCid>                    the manifest block
// Nothing an origin says is trusted on its word: the record's signature is verified against the trusted
// publishers and its name checked, exactly as for a record from a peer; the manifest is checked against the
// CID the record names. Bodies are read only up to their limit. An origin that fails or lies is skipped.
import { logger } from '@libp2p/logger'
import { verifyManifest, type Manifest } from '../../protocol/manifest.js'
import { decodeSignedRelease, MAX_RECORD_BYTES, verifyRelease, type SignedRelease, type TrustedKey } from '../../protocol/release.js'
import type { CID } from 'multiformats/cid'

const log = logger('herald:fetch')

/** The body of GET url, or undefined on 404; throws past `limit` bytes or on any other status. */
async function getBounded (url: string, limit: number, signal: AbortSignal): Promise<Uint8Array | undefined> {
  const res = await fetch(url, { signal, headers: { accept: 'application/octet-stream, application/vnd.ipld.raw' } })
  if (res.status === 404 || res.status === 410) { await res.body?.cancel(); return undefined }
  if (res.status !== 200) { await res.body?.cancel(); throw new Error(`HTTP ${res.status}`) }
  const announced = Number(res.headers.get('content-length') ?? NaN)
  if (announced > limit) { await res.body?.cancel(); throw new Error(`${announced} bytes announced, at most ${limit} accepted`) }
  const parts: Uint8Array[] = []
  let n = 0
  for await (const part of res.body ?? []) {
    n += part.byteLength
    if (n > limit) throw new Error(`more than ${limit} bytes`)
    parts.push(part)
  }
  return Buffer.concat(parts)
}

function base (origin: string): string { return origin.replace(/\/+$/, '') }

/** Every origin's record for dataset@version that verifies (signature by a trusted publisher, same name). */
export async function recordsFromOrigins (origins: string[], dataset: string, version: string, trusted: TrustedKey[], signal: AbortSignal): Promise<SignedRelease[]> {
  const out: SignedRelease[] = []
  await Promise.all(origins.map(async origin => {
    const url = `${base(origin)}/herald/releases/${encodeURIComponent(dataset)}/${encodeURIComponent(version)}`
    try {
      const bytes = await getBounded(url, MAX_RECORD_BYTES, signal)
      if (bytes == null) return
      const signed = decodeSignedRelease(bytes)
      if (signed.record.dataset !== dataset || signed.record.version !== version) throw new Error(`a record for ${signed.record.dataset}@${signed.record.version}`)
      await verifyRelease(signed, trusted)
      out.push(signed)
    } catch (err: any) {
      log('record from origin %s refused: %s', origin, err?.message)
    }
  }))
  return out
}

/** The manifest from the first origin whose block matches the CID (and the limits), with its bytes. */
export async function manifestFromOrigins (origins: string[], cid: CID, limits: { maxManifestBytes: number, maxManifestChunks: number }, signal: AbortSignal): Promise<{ manifest: Manifest, bytes: Uint8Array } | undefined> {
  for (const origin of origins) {
    try {
      const bytes = await getBounded(`${base(origin)}/ipfs/${cid.toString()}`, limits.maxManifestBytes, signal)
      if (bytes == null) continue
      return { manifest: verifyManifest(cid, bytes, { maxBytes: limits.maxManifestBytes, maxChunks: limits.maxManifestChunks }), bytes }
    } catch (err: any) {
      if (signal.aborted) throw err
      log('manifest from origin %s refused: %s', origin, err?.message)
    }
  }
  return undefined
}
