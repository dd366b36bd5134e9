import { expect } from 'chai'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkFetchOut } from '../../../daemon/api/fetch-out.js'
import { hostAllowed, isPublicBind } from '../../../daemon/api/host-check.js'

describe('API Host check', () => {
  it('should accept loopback names with any port and the configured names only', () => {
    for (const h of ['localhost', 'localhost:7480', 'LOCALHOST:1', 'app.localhost:80', '127.0.0.1:7480', '127.9.9.9', '[::1]:7480', '[::1]']) {
      expect(hostAllowed(h, ['127.0.0.1']), h).to.equal(true)
    }
    for (const h of ['attacker.example', 'localhost.attacker.example:7480', '127.0.0.1.nip.io:7480', '0.0.0.0:7480', '[::]:7480', '10.0.0.5:7480', '[::ffff:7f00:1]:7480']) {
      expect(hostAllowed(h, ['127.0.0.1', '0.0.0.0', '::']), h).to.equal(false)
    }
    expect(hostAllowed('herald.lab.example:7480', ['127.0.0.1', 'herald.lab.example'])).to.equal(true)
    expect(hostAllowed('10.0.0.5:7480', ['10.0.0.5'])).to.equal(true)
  })

  it('should tell loopback binds from public ones', () => {
    expect(['127.0.0.1', 'localhost', '::1'].map(isPublicBind)).to.deep.equal([false, false, false])
    expect(['0.0.0.0', '::', '10.1.2.3', 'herald.example'].map(isPublicBind)).to.deep.equal([true, true, true, true])
  })
})

describe('fetch out checks', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-out-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  async function code (p: Promise<unknown>): Promise<string | undefined> {
    try { await p; return undefined } catch (err: any) { return err.code }
  }

  it('should take an absolute path inside a root, even one that does not exist yet', async () => {
    const root = join(dir, 'root')
    await mkdir(root)
    expect(await checkFetchOut(join(root, 'a', 'b'), 'ds@1', { roots: [root] })).to.equal(join(root, 'a', 'b'))
    expect(await checkFetchOut(root, 'ds@1', { roots: [root] })).to.equal(root)
  })

  it('should refuse relative paths, .. segments, paths outside the roots and symlinks leading out', async () => {
    const root = join(dir, 'root')
    await mkdir(root)
    await mkdir(join(dir, 'other'))
    await symlink(join(dir, 'other'), join(root, 'link'))
    expect(await code(checkFetchOut('root/a', 'ds@1', { roots: [root] }))).to.equal('INVALID_PATH')
    expect(await code(checkFetchOut(`${root}/../other`, 'ds@1', { roots: [root] }))).to.equal('INVALID_PATH')
    expect(await code(checkFetchOut(join(dir, 'other'), 'ds@1', { roots: [root] }))).to.equal('OUT_NOT_ALLOWED')
    expect(await code(checkFetchOut(`${root}-sibling`, 'ds@1', { roots: [root] }))).to.equal('OUT_NOT_ALLOWED')
    expect(await code(checkFetchOut(join(root, 'link', 'x'), 'ds@1', { roots: [root] }))).to.equal('OUT_NOT_ALLOWED')
    expect(await code(checkFetchOut(join(root, 'a'), 'Bad Name', { roots: [root] }))).to.equal('INVALID_NAME')
  })

  it('should refuse a non-empty target Herald did not make unless forced, and a current that is not a symlink', async () => {
    const root = join(dir, 'root')
    await mkdir(join(root, 'ds', '1'), { recursive: true })
    await writeFile(join(root, 'ds', '1', 'mine.txt'), 'x')
    expect(await code(checkFetchOut(root, 'ds@1', { roots: [root] }))).to.equal('TARGET_NOT_EMPTY')
    expect(await code(checkFetchOut(root, 'ds@1', { roots: [root], force: true }))).to.equal(undefined)
    await writeFile(join(root, 'ds', '.1.manifest'), 'bafy…\n')
    expect(await code(checkFetchOut(root, 'ds@1', { roots: [root] }))).to.equal(undefined)
    await mkdir(join(root, 'ds', 'current'))
    expect(await code(checkFetchOut(root, 'ds@1', { roots: [root], force: true }))).to.equal('TARGET_NOT_EMPTY')
  })
})
