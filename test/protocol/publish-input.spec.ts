import { expect } from 'chai'
import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import tar from 'tar-stream'
import { buildRelease, keepsCompressed, type BuildOptions } from '../../protocol/ingest.js'
import { decodeManifest, encodeManifest, type Manifest } from '../../protocol/manifest.js'
import { normalizeLinkTarget } from '../../protocol/paths.js'
import { DEFAULT_CHUNKER } from '../../protocol/chunker.js'

type TarEntry = { name: string, body?: string, type?: 'file' | 'link' | 'symlink' | 'directory', linkname?: string, mode?: number }

async function tarball (entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack()
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode }, e.body ?? '')
  pack.finalize()
  const parts: Buffer[] = []
  for await (const p of pack) parts.push(p as Buffer)
  return Buffer.concat(parts)
}

async function expectCode (p: Promise<unknown>, code: string, message?: RegExp): Promise<any> {
  try {
    await p
  } catch (err: any) {
    expect(err.code, err.stack).to.equal(code)
    if (message != null) expect(err.message).to.match(message)
    return err
  }
  expect.fail(`resolved; expected ${code}`)
}

const opts = (extra: Partial<BuildOptions> = {}): BuildOptions => ({ dataset: 'd', version: 'v', onChunk: () => {}, ...extra })

describe('publish input checks', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-input-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should keep relative symlinks inside the release, empty files, empty directories and executable bits', async () => {
    await mkdir(join(dir, 'db', 'v1'), { recursive: true })
    await mkdir(join(dir, 'empty', 'deeper'), { recursive: true })
    await mkdir(join(dir, 'etc'))
    await writeFile(join(dir, 'db', 'v1', 'data.txt'), 'data')
    await writeFile(join(dir, 'etc', 'params'), 'p=1\n')
    await writeFile(join(dir, 'zero'), '')
    await writeFile(join(dir, 'run.sh'), '#!/bin/sh\n')
    await chmod(join(dir, 'run.sh'), 0o755)
    await symlink('v1', join(dir, 'db', 'latest'))
    await symlink('../etc/params', join(dir, 'db', 'params'))
    await symlink('./db/v1/data.txt', join(dir, 'alias'))
    const built = await buildRelease(dir, opts())
    const m = decodeManifest(built.bytes)
    expect(m.format).to.equal(2)
    expect(m.links).to.deep.equal([
      { path: 'alias', target: 'db/v1/data.txt' },
      { path: 'db/latest', target: 'v1' },
      { path: 'db/params', target: '../etc/params' }
    ])
    expect(m.dirs).to.deep.equal(['empty/deeper'])
    expect(m.files.map(f => f.path)).to.deep.equal(['db/v1/data.txt', 'etc/params', 'run.sh', 'zero'])
    expect(m.files.find(f => f.path === 'zero')).to.deep.include({ size: 0 })
    expect(m.files.find(f => f.path === 'run.sh')?.mode).to.equal(0o755)
    expect(m.files.find(f => f.path === 'etc/params')?.mode).to.equal(0o644)
    // deterministic: the same tree gives the same bytes
    expect((await buildRelease(dir, opts())).cid.equals(built.cid)).to.equal(true)
  })

  it('should write format 1, byte-identical to before, when there is no symlink or empty directory', async () => {
    await writeFile(join(dir, 'a.txt'), 'a')
    const m = decodeManifest((await buildRelease(dir, opts())).bytes)
    expect(m.format).to.equal(1)
    expect(m.links).to.equal(undefined)
    expect(m.dirs).to.equal(undefined)
  })

  it('should refuse absolute and escaping symlinks, naming the member', async () => {
    await writeFile(join(dir, 'a.txt'), 'a')
    await mkdir(join(dir, 'sub'))
    await symlink('../../outside', join(dir, 'sub', 'up'))
    await expectCode(buildRelease(dir, opts()), 'PATH_ESCAPE', /symlink "sub\/up" → "..\/..\/outside".*escapes/)
    await rm(join(dir, 'sub', 'up'))
    await symlink('/etc/passwd', join(dir, 'sub', 'abs'))
    await expectCode(buildRelease(dir, opts()), 'PATH_ESCAPE', /symlink "sub\/abs".*absolute/)
    await rm(join(dir, 'sub', 'abs'))
    await symlink('x/../../..', join(dir, 'sub', 'sneaky'))
    await expectCode(buildRelease(dir, opts()), 'INVALID_PATH', /sub\/sneaky/)
  })

  it('should turn tar hard links into copies and keep tar symlinks, directories and modes', async () => {
    await writeFile(join(dir, 'pkg.tar'), await tarball([
      { name: 'pkg/', type: 'directory' },
      { name: 'pkg/empty/', type: 'directory' },
      { name: 'pkg/bin/tool', body: '#!/bin/sh\necho hi\n', mode: 0o755 },
      { name: 'pkg/data/model.hmm', body: 'HMMER3/f model\n'.repeat(100) },
      { name: 'pkg/data/model-copy.hmm', type: 'link', linkname: 'pkg/data/model.hmm' },
      { name: 'pkg/latest', type: 'symlink', linkname: 'data/model.hmm' }
    ]))
    const built = await buildRelease(dir, opts())
    const m = decodeManifest(built.bytes)
    const copy = m.files.find(f => f.path === 'pkg/pkg/data/model-copy.hmm')!
    const orig = m.files.find(f => f.path === 'pkg/pkg/data/model.hmm')!
    expect(copy.size).to.equal(orig.size).and.to.equal(1500)
    expect(Buffer.from(copy.chunks).equals(Buffer.from(orig.chunks))).to.equal(true)
    expect(copy.upstream).to.deep.include({ name: 'pkg.tar', member: 'pkg/data/model-copy.hmm', compression: 'tar' })
    expect(m.files.find(f => f.path === 'pkg/pkg/bin/tool')?.mode).to.equal(0o755)
    expect(m.links).to.deep.equal([{ path: 'pkg/pkg/latest', target: 'data/model.hmm' }])
    expect(m.dirs).to.deep.equal(['pkg/pkg/empty'])
  })

  it('should refuse a tar symlink that escapes and a hard link to nothing before it', async () => {
    await writeFile(join(dir, 'evil.tar'), await tarball([{ name: 'a', body: 'x' }, { name: 'up', type: 'symlink', linkname: '../../etc' }]))
    await expectCode(buildRelease(dir, opts()), 'PATH_ESCAPE', /evil\.tar: member "up"/)
    await writeFile(join(dir, 'evil.tar'), await tarball([{ name: 'a', type: 'link', linkname: 'b' }, { name: 'b', body: 'x' }]))
    await expectCode(buildRelease(dir, opts()), 'INVALID_ARGUMENT', /evil\.tar member a is a hard link to evil\/b/)
  })

  it('should refuse README next to README.gz before reading any bytes of them, naming both', async () => {
    await writeFile(join(dir, 'README'), 'plain')
    await writeFile(join(dir, 'README.gz'), gzipSync('zipped'))
    let chunks = 0
    const err = await expectCode(buildRelease(dir, opts({ onChunk: () => { chunks++ } })), 'PATH_COLLISION', /README\.gz would be published as "README" collides with another entry \(from README\)/)
    expect(err.message).to.match(/--keep-compressed/)
    expect(chunks).to.equal(1)
    // kept compressed, both are published under their own names
    const m = decodeManifest((await buildRelease(dir, opts({ keepCompressed: true }))).bytes)
    expect(m.files.map(f => f.path)).to.deep.equal(['README', 'README.gz'])
  })

  it('should refuse a tar member that lands on a file of the directory', async () => {
    await mkdir(join(dir, 'x'))
    await writeFile(join(dir, 'x', 'a.txt'), 'a')
    await writeFile(join(dir, 'x.tar'), await tarball([{ name: 'a.txt', body: 'other' }]))
    await expectCode(buildRelease(dir, opts()), 'PATH_COLLISION', /x\.tar member a\.txt would be published as "x\/a\.txt" collides/)
  })

  it('should keep .gz byte-identical under its name when asked, per publish or per pattern', async () => {
    const gz = gzipSync('>sp|P1\nMKV\n'.repeat(1000))
    await writeFile(join(dir, 'uniprot_sprot.dat.gz'), gz)
    await writeFile(join(dir, 'other.txt.gz'), gzipSync('other'))
    const chunks = new Map<string, Uint8Array>()
    const built = await buildRelease(dir, opts({ keepCompressed: ['uniprot_*.gz'], onChunk: (d, b) => { chunks.set(Buffer.from(d).toString('hex'), b) } }))
    const m = decodeManifest(built.bytes)
    expect(m.files.map(f => f.path)).to.deep.equal(['other.txt', 'uniprot_sprot.dat.gz'])
    const kept = m.files.find(f => f.path === 'uniprot_sprot.dat.gz')!
    expect(kept.upstream?.compression).to.equal('none')
    const bytes = Buffer.concat(Array.from({ length: kept.chunkSizes.length }, (_, i) => chunks.get(Buffer.from(kept.chunks.subarray(i * 32, i * 32 + 32)).toString('hex'))!))
    expect(bytes.equals(gz)).to.equal(true)
    expect(keepsCompressed('a/b/x.gz', ['**/*.gz'])).to.equal(true)
    expect(keepsCompressed('a/b/x.gz', ['a/*.gz'])).to.equal(false)
    expect(keepsCompressed('a/b/x.gz', ['x.gz'])).to.equal(true)
  })

  it('should refuse missing, unreadable and empty input with typed errors; empty only with allowEmpty', async () => {
    await expectCode(buildRelease(join(dir, 'nope'), opts()), 'INPUT_NOT_FOUND', /nope does not exist/)
    await mkdir(join(dir, 'in', 'empty-sub'), { recursive: true })
    await expectCode(buildRelease(join(dir, 'in'), opts()), 'EMPTY_RELEASE', /--allow-empty/)
    const empty = decodeManifest((await buildRelease(join(dir, 'in'), opts({ allowEmpty: true }))).bytes)
    expect(empty.files).to.deep.equal([])
    expect(empty.dirs).to.deep.equal(['empty-sub'])
    await writeFile(join(dir, 'in', 'empty.tar'), await tarball([]))
    await expectCode(buildRelease(join(dir, 'in'), opts()), 'EMPTY_RELEASE', /only empty archives/)
    if (process.getuid?.() !== 0) {
      await mkdir(join(dir, 'locked'))
      await writeFile(join(dir, 'locked', 'f'), 'x')
      await chmod(join(dir, 'locked'), 0o000)
      try {
        await expectCode(buildRelease(join(dir, 'locked'), opts()), 'INPUT_UNREADABLE', /permission denied/)
      } finally {
        await chmod(join(dir, 'locked'), 0o755)
      }
    }
  })

  it('should fail, naming the file, when a file changes while it is read', async () => {
    await writeFile(join(dir, 'a.txt'), 'a'.repeat(10_000))
    await writeFile(join(dir, 'mirror.dat'), 'b'.repeat(200_000))
    const err = await expectCode(buildRelease(dir, opts({
      afterRead: async (path) => { if (path === 'mirror.dat') await appendFile(join(dir, 'mirror.dat'), 'more') }
    })), 'INPUT_CHANGED', /^mirror\.dat changed while the release was being read \(size 200000 → 200004/)
    expect(err.name).to.equal('InputChangedError')
    // a compressed input is checked the same way
    await rm(join(dir, 'mirror.dat'))
    await writeFile(join(dir, 'z.gz'), gzipSync('zzz'))
    await expectCode(buildRelease(dir, opts({
      afterRead: async (path) => { if (path === 'z.gz') await writeFile(join(dir, 'z.gz'), gzipSync('other content')) }
    })), 'INPUT_CHANGED', /^z\.gz changed/)
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).to.have.length(10_000)
  })

  it('should stop reading when aborted', async () => {
    await writeFile(join(dir, 'a.txt'), 'a'.repeat(3_000_000))
    const controller = new AbortController()
    const p = buildRelease(dir, opts({ signal: controller.signal, onChunk: () => { controller.abort(new Error('stop here')) } }))
    await expectCode(p.catch(err => { throw Object.assign(err, { code: err.message === 'stop here' ? 'ABORTED' : err.code }) }), 'ABORTED')
  })

  it('should refuse a chunker parameter set labs would refuse', async () => {
    await writeFile(join(dir, 'a.txt'), 'a')
    await expectCode(buildRelease(dir, opts({ chunker: { ...DEFAULT_CHUNKER, avgSize: 100_000 } })), 'INVALID_MANIFEST', /power of two/)
  })
})

describe('manifest links and dirs', () => {
  const base = (): Manifest => ({ format: 2, dataset: 'd', version: 'v', chunker: { ...DEFAULT_CHUNKER }, files: [], encodings: [], createdAt: 0 })

  it('should round-trip links and dirs, and refuse format 1 carrying them', () => {
    const m = { ...base(), links: [{ path: 'a/l', target: '../b' }], dirs: ['e'] }
    expect(decodeManifest(encodeManifest(m))).to.deep.include({ format: 2, links: m.links, dirs: m.dirs })
    expect(() => encodeManifest({ ...m, format: 1 })).to.throw(RangeError)
    expect(() => encodeManifest({ ...base() })).to.throw(RangeError)
  })

  it('should refuse escaping, colliding, unnormalised or unsorted entries', () => {
    const bad: Array<[string, Partial<Manifest>]> = [
      ['escape', { links: [{ path: 'l', target: '../x' }] }],
      ['absolute', { links: [{ path: 'l', target: '/x' }] }],
      ['unnormalised target', { links: [{ path: 'a/l', target: './x' }] }],
      ['dotdot after a name', { links: [{ path: 'a/l', target: 'x/../y' }] }],
      ['inside a link', { links: [{ path: 'l', target: 'x' }], dirs: ['l/d'] }],
      ['two links', { links: [{ path: 'l', target: 'x' }, { path: 'l', target: 'y' }] }],
      ['unsorted', { links: [{ path: 'm', target: 'x' }, { path: 'l', target: 'y' }] }],
      ['dir on a link', { links: [{ path: 'l', target: 'x' }], dirs: ['l'] }]
    ]
    for (const [what, extra] of bad) {
      // encode by hand: encodeManifest itself only checks the format
      const bytes = encodeManifest({ ...base(), ...extra })
      expect(() => decodeManifest(bytes), what).to.throw(/invalid manifest/)
    }
    expect(normalizeLinkTarget('a/b/l', '../../x')).to.equal('../../x')
    expect(normalizeLinkTarget('a/l', '.')).to.equal('.')
    expect(normalizeLinkTarget('a/l', '..')).to.equal('..')
  })
})
