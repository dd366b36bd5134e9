// The planner: which missing chunks move as delta objects, and what a fetch would move (`herald plan`).
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { bitGet } from '../fetch/swarm.js'
import type { Store } from '../../store/store.js'
import type { ReleaseSwarm } from '../fetch/swarm.js'
import type { PlanResult } from '../types.js'
import type { ReleaseRegistry } from './release-registry.js'
import { checkManifestName, type Resolver } from './resolver.js'

export interface PlannerInit {
  store: Store
  registry: ReleaseRegistry
  resolver: Resolver
  /** this node asks for compressed chunks (limits.compress) */
  compress: boolean
}

export class Planner {
  readonly #init: PlannerInit

  constructor (init: PlannerInit) {
    this.#init = init
  }

  /**
   * For the missing chunks that a delta object whose bases are all held here can rebuild: the object's entry.
   * An object is used when it is smaller than its missing chunks as they would travel otherwise; where objects
   * overlap (deltas against several earlier releases), the cheapest per missing byte wins.
   */
  async usableDeltas (swarm: ReleaseSwarm): Promise<Map<number, number>> {
    const out = new Map<number, number>()
    const { deltas, index } = swarm
    const wire = (i: number): number => (this.#init.compress ? index.wireSizes?.[i] : undefined) ?? index.sizes[i]
    const candidates: Array<{ k: number, missing: number[], perByte: number }> = []
    for (let k = 0; k < deltas.count; k++) {
      const missing = [...deltas.targets[k]].filter(i => !swarm.hasLocal(i))
      if (missing.length === 0) continue
      let otherwise = 0
      let raw = 0
      for (const i of missing) { otherwise += wire(i); raw += index.sizes[i] }
      if (deltas.sizes[k] >= otherwise) continue
      candidates.push({ k, missing, perByte: deltas.sizes[k] / raw })
    }
    candidates.sort((a, b) => a.perByte - b.perByte)
    for (const { k, missing } of candidates) {
      if (missing.some(i => out.has(i))) continue
      const bases = deltas.bases[k]
      const packed = new Uint8Array(bases.length * 32)
      bases.forEach((b, n) => packed.set(b, n * 32))
      const held = await this.#init.store.hasChunks(packed)
      let all = true
      for (let n = 0; n < bases.length; n++) if (!bitGet(held, n)) { all = false; break }
      if (all) for (const i of missing) out.set(i, index.count + k)
    }
    return out
  }

  /** What fetching `name` would move from here: reused, delta, compressed and raw bytes, and the manifest. */
  async plan (name: string): Promise<PlanResult> {
    const { dataset, version } = parseReleaseName(name)
    const { resolver, registry } = this.#init
    const signal = AbortSignal.timeout(60_000)
    const { signed, from } = await resolver.record(dataset, version, signal)
    const cid = signed.record.manifestCid
    // what the manifest costs to move: nothing when held, else the bytes it came in (raw or a delta)
    let manifestBytes = 0
    const manifest = await resolver.manifest(cid, from, signal, { base: await resolver.baseFor(dataset, cid), onWire: (n) => { manifestBytes += n } })
    checkManifestName(manifest, dataset, version)
    const swarm = await registry.detached(cid, manifest)
    const index = swarm.index
    let reusedBytes = 0
    let reusedChunks = 0
    for (let i = 0; i < index.count; i++) {
      if (swarm.hasLocal(i)) { reusedChunks++; reusedBytes += index.sizes[i] }
    }
    // chunks with a usable delta move as their delta object; the rest as chunks, compressed when the
    // manifest's wire sizes say that helps (and this daemon asks for compressed chunks)
    let delta = 0
    let deltaChunks = 0
    let compressed = 0
    let raw = 0
    const usable = await this.usableDeltas(swarm)
    const objects = new Set<number>()
    for (let i = 0; i < index.count; i++) {
      if (swarm.hasLocal(i)) continue
      const e = usable.get(i)
      const wire = this.#init.compress ? index.wireSizes?.[i] : undefined
      if (e != null) {
        deltaChunks++
        if (!objects.has(e)) { objects.add(e); delta += swarm.sizeAt(e) }
      } else if (wire != null && wire < index.sizes[i]) compressed += wire
      else raw += index.sizes[i]
    }
    return {
      name: formatReleaseName(dataset, version),
      releaseBytes: index.totalBytes,
      releaseChunks: index.count,
      reusedBytes,
      reusedChunks,
      deltaChunks,
      toMove: { raw, compressed, delta, manifest: manifestBytes, total: raw + compressed + delta + manifestBytes }
    }
  }
}
