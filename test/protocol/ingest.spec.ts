import { expect } from 'chai'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import tar from 'tar-stream'
import { buildRelease, walkRelease } from '../../protocol/ingest.js'
import { decodeManifest } from '../../protocol/manifest.js'

async function tarball (entries: Array<{ name: string, body: string }>): Promise<Buffer> {
  const pack = tar.pack()
  for (const e of entries) pack.entry({ name: e.name }, e.body)
  pack.finalize()
  const parts: Buffer[] = []
  for await (const p of pack) parts.push(p as Buffer)
  return Buffer.concat(parts)
}

describe('ingest', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-ingest-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should decompress .gz, unpack .tar and .tar.gz, keep upstream checksums', async () => {
    await mkdir(join(dir, 'sub'))
    await writeFile(join(dir, 'plain.txt'), 'plain')
    const gz = gzipSync('hello gzip')
    await writeFile(join(dir, 'sub', 'seq.fasta.gz'), gz)
    const tgz = gzipSync(await tarball([{ name: 'x/a.txt', body: 'A' }, { name: 'b.txt', body: 'BB' }]))
    await writeFile(join(dir, 'pack.tar.gz'), tgz)
    await writeFile(join(dir, 'raw.tar'), await tarball([{ name: 'c.txt', body: 'CCC' }]))
    const chunks = new Map<string, Uint8Array>()
    const built = await buildRelease(dir, { dataset: 'd', version: 'v', onChunk: (d, b) => { chunks.set(Buffer.from(d).toString('hex'), b) } })
    const m = decodeManifest(built.bytes)
    expect(m.files.map(f => f.path)).to.deep.equal(['pack/b.txt', 'pack/x/a.txt', 'plain.txt', 'raw/c.txt', 'sub/seq.fasta'])
    const seq = m.files.find(f => f.path === 'sub/seq.fasta')!
    expect(seq.size).to.equal('hello gzip'.length)
    expect(seq.upstream).to.deep.include({ name: 'seq.fasta.gz', compression: 'gzip', size: gz.byteLength, sha256: createHash('sha256').update(gz).digest('hex'), md5: createHash('md5').update(gz).digest('hex') })
    const a = m.files.find(f => f.path === 'pack/x/a.txt')!
    expect(a.upstream).to.deep.include({ name: 'pack.tar.gz', member: 'x/a.txt', compression: 'tar.gz', sha256: createHash('sha256').update(tgz).digest('hex') })
    expect(built.stats.files).to.equal(5)
    // the same directory gives the same manifest, byte for byte
    const again = await buildRelease(dir, { dataset: 'd', version: 'v', onChunk: () => {} })
    expect(again.cid.toString()).to.equal(built.cid.toString())
  })

  it('should reject a tar member that escapes, and absolute symlinks', async () => {
    await writeFile(join(dir, 'evil.tar'), await tarball([{ name: '../../etc/passwd', body: 'x' }]))
    try {
      for await (const f of walkRelease(dir)) for await (const _ of f.open()) { void _ }
      expect.fail('accepted')
    } catch (err: any) {
      expect(err.code).to.equal('INVALID_ARGUMENT')
    }
    await rm(join(dir, 'evil.tar'))
    await writeFile(join(dir, 'real'), 'x')
    await symlink(join(dir, 'real'), join(dir, 'link'))
    try {
      for await (const _ of walkRelease(dir)) { void _ }
      expect.fail('accepted')
    } catch (err: any) {
      expect(err.code).to.equal('PATH_ESCAPE')
      expect(err.message).to.match(/symlink "link".*absolute target/)
    }
    expect(await readFile(join(dir, 'real'), 'utf8')).to.equal('x')
  })
})
