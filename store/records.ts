// Manifests, signed release records, `current` pointers, fetch/publish progress and resemblance features:
// the small values of the store, each under its own key prefix (keys.ts).
import { checkNotReplay } from '../protocol/release.js'
import { statsOp, type StoreContext } from './context.js'
import { dec, enc, key, P, upperBound } from './keys.js'
import type { ReleaseEntry, ReleaseRecordFields } from './interface.js'
import type { CID } from 'multiformats/cid'

export async function putManifest (ctx: StoreContext, cid: CID, bytes: Uint8Array): Promise<void> {
  const k = key(P.manifest, cid.toString())
  if ((await ctx.db.get(k)) !== undefined) return
  ctx.stats.manifests++
  await ctx.db.batch([{ type: 'put', key: k, value: bytes }, statsOp(ctx)])
}

export async function getManifest (ctx: StoreContext, cid: CID): Promise<Uint8Array | undefined> {
  return await ctx.db.get(key(P.manifest, cid.toString()))
}

export async function putRelease (ctx: StoreContext, rec: ReleaseRecordFields, signedBytes: Uint8Array): Promise<void> {
  const k = key(P.release, `${rec.dataset}@${rec.version}`)
  const prev = await ctx.db.get(k)
  let prevEntry: (ReleaseEntry & { bytes: string }) | undefined
  if (prev !== undefined) {
    prevEntry = JSON.parse(dec.decode(prev))
    checkNotReplay(prevEntry, rec)
    if (prevEntry!.seq === rec.seq) return
  }
  const entry = { dataset: rec.dataset, version: rec.version, seq: rec.seq, manifestCid: rec.manifestCid.toString(), publishedAt: rec.publishedAt, bytes: Buffer.from(signedBytes).toString('base64') }
  if (prevEntry === undefined) ctx.stats.releases++
  await ctx.db.batch([{ type: 'put', key: k, value: enc.encode(JSON.stringify(entry)) }, statsOp(ctx)])
}

export async function getRelease (ctx: StoreContext, dataset: string, version: string): Promise<Uint8Array | undefined> {
  const v = await ctx.db.get(key(P.release, `${dataset}@${version}`))
  if (v === undefined) return undefined
  return new Uint8Array(Buffer.from(JSON.parse(dec.decode(v)).bytes, 'base64'))
}

export async function listReleases (ctx: StoreContext): Promise<ReleaseEntry[]> {
  const out: ReleaseEntry[] = []
  for await (const v of ctx.db.values({ gte: key(P.release, ''), lt: upperBound(P.release) })) {
    const { dataset, version, seq, manifestCid, publishedAt } = JSON.parse(dec.decode(v))
    out.push({ dataset, version, seq, manifestCid, publishedAt })
  }
  return out
}

export async function getFeatures (ctx: StoreContext, digest: Uint8Array): Promise<Uint32Array | undefined> {
  const v = await ctx.db.get(key(P.features, digest))
  if (v === undefined || v.byteLength % 4 !== 0) return undefined
  return new Uint32Array(v.slice().buffer)
}

export async function putFeatures (ctx: StoreContext, digest: Uint8Array, features: Uint32Array): Promise<void> {
  await ctx.db.put(key(P.features, digest), new Uint8Array(features.buffer.slice(features.byteOffset, features.byteOffset + features.byteLength)))
}

export async function setCurrent (ctx: StoreContext, dataset: string, version: string): Promise<void> {
  await ctx.db.put(key(P.current, dataset), enc.encode(version))
}

export async function getCurrent (ctx: StoreContext, dataset: string): Promise<string | undefined> {
  const v = await ctx.db.get(key(P.current, dataset))
  return v === undefined ? undefined : dec.decode(v)
}

export async function putProgress (ctx: StoreContext, k: string, value: Uint8Array | string): Promise<void> {
  await ctx.db.put(key(P.progress, k), typeof value === 'string' ? enc.encode(value) : value)
}

export async function getProgress (ctx: StoreContext, k: string): Promise<Uint8Array | undefined> {
  return await ctx.db.get(key(P.progress, k))
}

export async function deleteProgress (ctx: StoreContext, k: string): Promise<void> {
  await ctx.db.del(key(P.progress, k))
}
