// The reconciler's decisions against an in-memory service (the real daemons are in
// test/integration/sync.spec.ts): keep policy, pin, switch, refused content, validation, retries, the
// schedule window through an injected clock, and failing closed on an invalid document.
import { expect } from 'chai'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Reconciler, type SyncService } from '../../../daemon/sync/reconciler.js'
import type { FetchProgress, FetchRequest, ReleaseInfo } from '../../../daemon/types.js'

const CID = (n: number): string => ['bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', 'bafkreidon73zkcrwdb5iafqtijxildoonbwnpv7dyd6ef3qdgads2jc4su'][n]

/** A store of releases and fetches that complete when `finish` is called. */
class FakeNode implements SyncService {
  releases = new Map<string, ReleaseInfo>()
  /** what the network signs each release for */
  signed = new Map<string, string>()
  fetches = new Map<string, FetchProgress>()
  calls: string[] = []
  verifyOk = true
  #n = 0

  add (name: string, cid: string, opts: Partial<ReleaseInfo> = {}): void {
    const [dataset, version] = name.split('@')
    this.releases.set(name, { name, dataset, version, manifestCid: cid, seq: 1, publishedAt: Number(version), publisher: 'k', pinned: true, current: false, complete: true, ...opts })
  }

  async startFetch (req: FetchRequest): Promise<FetchProgress> {
    this.calls.push(`fetch ${req.name}`)
    const p: FetchProgress = { id: `f${++this.#n}`, name: req.name, state: 'fetching', totalChunks: 1, totalBytes: 1, reusedChunks: 0, reusedBytes: 0, doneChunks: 0, doneBytes: 0, wireBytes: { peer: 0, seed: 0 }, peers: 0, startedAt: 0 }
    const cid = this.signed.get(req.name)
    if (cid == null) { p.state = 'failed'; p.error = { code: 'RELEASE_NOT_FOUND', message: 'none' } } else if (req.manifestCid != null && req.manifestCid !== cid) { p.state = 'failed'; p.error = { code: 'MANIFEST_MISMATCH', message: 'other' } }
    this.fetches.set(p.id, p)
    return { ...p }
  }

  /** end every running fetch: the release held, pinned and (as a fetch does) current */
  finish (): void {
    for (const p of this.fetches.values()) {
      if (p.state !== 'fetching') continue
      p.state = 'done'
      for (const r of this.releases.values()) if (r.dataset === p.name.split('@')[0]) r.current = false
      this.add(p.name, this.signed.get(p.name)!, { current: true })
    }
  }

  getFetch (id: string): FetchProgress | undefined { const p = this.fetches.get(id); return p != null ? { ...p } : undefined }
  async listReleases (): Promise<ReleaseInfo[]> { return [...this.releases.values()].map(r => ({ ...r })) }
  async pin (name: string): Promise<ReleaseInfo> { this.calls.push(`pin ${name}`); this.releases.get(name)!.pinned = true; return this.releases.get(name)! }
  async unpin (name: string): Promise<ReleaseInfo> { this.calls.push(`unpin ${name}`); this.releases.get(name)!.pinned = false; return this.releases.get(name)! }
  async gc (): Promise<any> {
    this.calls.push('gc')
    for (const r of this.releases.values()) if (!r.pinned && !r.current) r.complete = false
    return { chunksFreed: 0, bytesFreed: 0, seconds: 0 }
  }

  async rollback (dataset: string, to?: string): Promise<any> {
    this.calls.push(`switch ${dataset}@${to ?? ''}`)
    for (const r of this.releases.values()) if (r.dataset === dataset) r.current = r.version === to
    return { dataset, to }
  }

  async verify (name: string): Promise<any> { this.calls.push(`verify ${name}`); return { name, ok: this.verifyOk, bad: this.verifyOk ? [] : ['x'], missing: 0, badFiles: [], chunksChecked: 1, filesChecked: 0 } }
  async status (): Promise<any> { return { fetches: [...this.fetches.values()] } }
}

function doc (databases: Array<Record<string, unknown>>, policy?: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'herald.io/v1', kind: 'DatabaseSync', metadata: { name: 't' }, spec: { databases, ...(policy != null ? { updatePolicy: policy } : {}) } })
}

describe('desired-state reconciler', () => {
  let dir = ''
  let file = ''
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-rec-')); file = join(dir, 'dbs.json') })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should fetch what is missing, switch and pin, then keep the newest unlisted releases up to keep and collect the rest', async () => {
    const node = new FakeNode()
    node.add('u@1', CID(0), { current: false })
    node.add('u@2', CID(0), { current: true })
    node.add('v@1', CID(0), { current: true })
    node.signed.set('u@3', CID(1))
    await writeFile(file, doc([{ name: 'u', version: '3', sha256: CID(1), keep: 2 }]))
    const r = new Reconciler({ path: file, service: node })
    await r.reconcile()
    expect(r.status().entries[0]).to.include({ state: 'fetching' })
    expect(node.calls).to.deep.equal(['fetch u@3'])
    // nothing is unpinned while the new release is not in place
    expect(node.releases.get('u@2')?.pinned).to.equal(true)
    node.finish()
    await r.reconcile()
    expect(r.status().entries[0]).to.include({ state: 'held', current: true, pinned: true })
    // keep 2: u@3 and the newest other one (u@2); u@1 unpinned and collected; v is not listed: untouched
    expect(node.calls.slice(1)).to.deep.equal(['unpin u@1', 'gc'])
    expect(node.releases.get('u@2')?.pinned).to.equal(true)
    expect(node.releases.get('v@1')?.pinned).to.equal(true)
    expect(r.status().removed).to.deep.equal(['u@1'])
    // idempotent
    await r.reconcile()
    expect(node.calls.slice(3)).to.deep.equal([])
  })

  it('should switch current to the wanted entry and pin a held release that is listed', async () => {
    const node = new FakeNode()
    node.add('u@1', CID(0), { pinned: false })
    node.add('u@2', CID(0), { current: true })
    await writeFile(file, doc([{ name: 'u', version: '1', current: true }, { name: 'u', version: '2' }]))
    const r = new Reconciler({ path: file, service: node })
    await r.reconcile()
    expect(node.calls).to.deep.equal(['pin u@1', 'switch u@1'])
    expect(r.status().entries.map(e => `${e.release} ${e.state} ${String(e.current)}`)).to.deep.equal(['u@1 held true', 'u@2 held false'])
  })

  it('should refuse a held release whose manifest differs from the pin, and never make it current', async () => {
    const node = new FakeNode()
    node.add('u@1', CID(0), { current: true })
    node.add('u@2', CID(0))
    await writeFile(file, doc([{ name: 'u', version: '2', sha256: CID(1) }]))
    const r = new Reconciler({ path: file, service: node })
    await r.reconcile()
    expect(r.status().entries[0]).to.deep.include({ state: 'refused', heldManifestCid: CID(0), manifestCid: CID(1) })
    expect(r.status().entries[0].error?.code).to.equal('MANIFEST_MISMATCH')
    expect(node.calls).to.deep.equal([])
    expect(node.releases.get('u@1')?.current).to.equal(true)
  })

  it('should count a failed validation as not held, and validate once per run', async () => {
    const node = new FakeNode()
    node.add('u@1', CID(0), { current: true })
    await writeFile(file, doc([{ name: 'u', version: '1' }], { validation: 'required' }))
    node.verifyOk = false
    const r = new Reconciler({ path: file, service: node })
    await r.reconcile()
    expect(r.status().entries[0].state).to.equal('failed')
    expect(r.status().entries[0].error?.code).to.equal('HASH_MISMATCH')
    node.verifyOk = true
    await r.reconcile()
    await r.reconcile()
    expect(r.status().entries[0].state).to.equal('held')
    expect(node.calls.filter(c => c.startsWith('verify'))).to.have.length(2)
  })

  it('should retry a failed fetch only after its backoff, at once when the pin is edited', async () => {
    const node = new FakeNode()
    let now = Date.parse('2026-12-06T10:00:00Z')
    await writeFile(file, doc([{ name: 'u', version: '1' }]))
    const r = new Reconciler({ path: file, service: node, now: () => now })
    await r.reconcile() // starts a fetch that fails at once (no record)
    await r.reconcile() // sees the failure
    const failed = r.status().entries[0]
    expect(failed.state).to.equal('failed')
    expect(failed.retryAt).to.equal(now + 30_000)
    await r.reconcile()
    expect(node.calls).to.deep.equal(['fetch u@1'])
    now += 30_000
    await r.reconcile()
    expect(node.calls).to.deep.equal(['fetch u@1', 'fetch u@1'])
    await r.reconcile()
    expect(r.status().entries[0].retryAt).to.equal(now + 60_000)
    await writeFile(file, doc([{ name: 'u', version: '1', sha256: CID(2) }]))
    await r.reconcile()
    expect(node.calls).to.have.length(3)
  })

  it('should change nothing outside the schedule window (injected clock) and act once it opens', async () => {
    const node = new FakeNode()
    node.add('u@1', CID(0), { current: true })
    node.signed.set('u@2', CID(1))
    let now = Date.parse('2026-12-06T01:30:00Z') // a Sunday, before the 02:00 window
    await writeFile(file, doc([{ name: 'u', version: '2' }], { schedule: '0 2 * * SUN', windowMinutes: 60, timezone: 'UTC' }))
    const r = new Reconciler({ path: file, service: node, now: () => now })
    await r.reconcile()
    expect(r.status().entries[0].state).to.equal('waiting')
    expect(r.status().window).to.deep.equal({ open: false, opensAt: Date.parse('2026-12-06T02:00:00Z') })
    expect(node.calls).to.deep.equal([])
    now = Date.parse('2026-12-06T02:10:00Z')
    await r.reconcile()
    expect(node.calls).to.deep.equal(['fetch u@2'])
    expect(r.status().window?.closesAt).to.equal(Date.parse('2026-12-06T03:00:00Z'))
    // the window closes with the fetch done: current stays where the fetch put it, nothing is unpinned
    node.finish()
    now = Date.parse('2026-12-06T03:10:00Z')
    await r.reconcile()
    expect(node.calls).to.deep.equal(['fetch u@2'])
    expect(node.releases.get('u@1')?.pinned).to.equal(true)
  })

  it('should follow `version: latest` where the node knows the newest announced release, keeping `keep` of them, and say unsupported where it cannot', async () => {
    const node = new FakeNode()
    await writeFile(file, doc([{ name: 'u', version: 'latest', keep: 2 }]))
    const without = new Reconciler({ path: file, service: node })
    await without.reconcile()
    expect(without.status().entries[0]).to.deep.include({ release: 'u@latest', state: 'unsupported' })
    expect(without.status().entries[0].error?.code).to.equal('UNSUPPORTED')

    const announced = new Map<string, { version: string, manifestCid: string }>()
    const withLatest = Object.assign(node, { latestRelease: (d: string) => announced.get(d) })
    const r = new Reconciler({ path: file, service: withLatest })
    await r.reconcile()
    expect(r.status().entries[0]).to.deep.include({ state: 'pending' })
    expect(r.status().entries[0].error?.code).to.equal('RELEASE_NOT_FOUND')
    for (const v of ['1', '2', '3']) {
      announced.set('u', { version: v, manifestCid: CID(0) })
      node.signed.set(`u@${v}`, CID(0))
      await r.reconcile()
      expect(r.status().entries[0]).to.deep.include({ release: `u@${v}`, tracks: 'latest', state: 'fetching', manifestCid: CID(0) })
      node.finish()
      await r.reconcile()
      expect(r.status().entries[0]).to.deep.include({ release: `u@${v}`, state: 'held', current: true })
    }
    // keep 2: u@3 (latest) and u@2; u@1 unpinned and collected
    expect([...node.releases.values()].filter(x => x.pinned).map(x => x.name).sort()).to.deep.equal(['u@2', 'u@3'])
    expect(r.status().removed).to.deep.equal(['u@1'])
    // an announced release signed for another manifest than a pinned `latest` entry is refused
    await writeFile(file, doc([{ name: 'u', version: 'latest', sha256: CID(2) }]))
    announced.set('u', { version: '4', manifestCid: CID(1) })
    node.signed.set('u@4', CID(1))
    await r.reconcile()
    await r.reconcile()
    expect(r.status().entries[0]).to.deep.include({ release: 'u@4', state: 'refused' })
    expect(node.releases.get('u@3')?.current).to.equal(true)
  })

  it('should fail closed on an invalid document: nothing unpinned, the error names the file and key', async () => {
    const node = new FakeNode()
    node.add('u@1', CID(0), { current: true })
    node.add('u@2', CID(0))
    await writeFile(file, doc([{ name: 'u', version: '1' }]).replace('"version"', '"versoin"'))
    const r = new Reconciler({ path: file, service: node })
    await r.reconcile()
    expect(r.status().error?.code).to.equal('INVALID_SYNC_DOCUMENT')
    expect(r.status().error?.message).to.include(file).and.include('spec.databases[0]').and.include('versoin')
    expect(node.calls).to.deep.equal([])
    await rm(file)
    await r.reconcile()
    expect(r.status().error?.message).to.include('ENOENT')
    expect(node.calls).to.deep.equal([])
  })
})
