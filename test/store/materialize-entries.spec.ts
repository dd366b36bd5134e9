import { expect } from 'chai'
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildRelease } from '../../protocol/ingest.js'
import { decodeManifest, manifestChunkIndex } from '../../protocol/manifest.js'
import { materialize, verifyMaterialized } from '../../store/materialize.js'
import { Store } from '../../store/store.js'

describe('materialize symlinks, modes and empty entries', () => {
  let dir: string
  let store: Store | undefined
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-mat-')) })
  afterEach(async () => {
    await store?.close()
    store = undefined
    await rm(dir, { recursive: true, force: true })
  })

  it('should write symlinks, executable bits, empty files and empty directories, and verify each', async () => {
    const src = join(dir, 'src')
    await mkdir(join(src, 'bin'), { recursive: true })
    await mkdir(join(src, 'data', 'v2'), { recursive: true })
    await mkdir(join(src, 'spool'))
    await writeFile(join(src, 'bin', 'run'), '#!/bin/sh\n')
    await chmod(join(src, 'bin', 'run'), 0o750)
    await writeFile(join(src, 'data', 'v2', 'table.tsv'), 'a\tb\n'.repeat(500))
    await writeFile(join(src, 'data', 'EMPTY'), '')
    await symlink('v2', join(src, 'data', 'current'))
    await symlink('../data/v2/table.tsv', join(src, 'bin', 'table'))
    store = await Store.open(join(dir, 'store'))
    const built = await buildRelease(src, { dataset: 'ds', version: 'v1', onChunk: async (d, b) => { await store!.putChunk(d, b) } })
    const manifest = decodeManifest(built.bytes)
    await store.pin('ds', 'v1', manifestChunkIndex(manifest).digests)
    const root = join(dir, 'releases')
    const out = await materialize(store, manifest, { root })
    expect(await readlink(join(out, 'data', 'current'))).to.equal('v2')
    expect(await readFile(join(out, 'bin', 'table'), 'utf8')).to.equal('a\tb\n'.repeat(500))
    expect((await stat(join(out, 'bin', 'run'))).mode & 0o777).to.equal(0o750)
    expect((await stat(join(out, 'data', 'EMPTY'))).size).to.equal(0)
    expect((await lstat(join(out, 'spool'))).isDirectory()).to.equal(true)
    expect(await verifyMaterialized(store, manifest, root)).to.deep.equal({ filesChecked: 6, badFiles: [] })
    // a link replaced by a file, a lost directory, a lost executable bit: each one is reported
    await rm(join(out, 'data', 'current'))
    await writeFile(join(out, 'data', 'current'), 'not a link')
    await rm(join(out, 'spool'), { recursive: true })
    await chmod(join(out, 'bin', 'run'), 0o640)
    expect((await verifyMaterialized(store, manifest, root)).badFiles).to.have.members(['data/current', 'spool', 'bin/run'])
  })
})
