// Publishing against real daemons: what a release may hold (symlinks, modes, empty files and directories)
// as a lab materializes it, the checks made before signing, immutable versions, and publish as a job
// (events, a CLI that outlives a short client timeout, --detach, a restart mid-publish, a file changed
// while it is read, --chunk-size).
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFile, chmod, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'
import { ApiError } from '../../daemon/api/client.js'
import { parseConfig } from '../../daemon/config.js'
import { DaemonProcess, HERALD } from '../helpers/daemon-process.js'
import type { PublishProgress } from '../../daemon/types.js'

const execFileP = promisify(execFile)

async function herald (d: DaemonProcess, args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [HERALD, '--api', d.apiUrl, '--token', d.token, ...args], { env: { ...process.env, HERALD_API: '', HERALD_API_TOKEN: '', ...env } })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err: any) {
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

async function refused (p: Promise<unknown>, code: string, message?: RegExp): Promise<ApiError> {
  try {
    await p
  } catch (err: any) {
    expect(err.code, err.message).to.equal(code)
    if (message != null) expect(err.message).to.match(message)
    return err
  }
  expect.fail(`resolved; expected ${code}`)
}

/** Follow a publish job's events until `until` holds for one; returns that event (bounded by the job's end). */
async function waitEvent (d: DaemonProcess, id: string, until: (p: PublishProgress) => boolean): Promise<PublishProgress> {
  const controller = new AbortController()
  let hit: PublishProgress | undefined
  await d.client.followPublish(id, p => {
    if (hit == null && until(p)) { hit = p; controller.abort() }
  }, controller.signal).catch(err => { if (hit == null) throw err })
  if (hit == null) expect.fail('the job ended before the awaited event')
  return hit
}

describe('publish (real daemons)', function () {
  this.timeout(180_000)
  let dir: string
  const daemons: DaemonProcess[] = []

  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-publish-')) })
  afterEach(async () => {
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  async function startSeed (config: Record<string, any> = {}): Promise<DaemonProcess> {
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, config })
    daemons.push(seed)
    return seed
  }

  it('should carry symlinks, executable bits, empty files and empty directories to a lab, and verify them', async () => {
    const input = join(dir, 'in')
    await mkdir(join(input, 'db', '2024'), { recursive: true })
    await mkdir(join(input, 'etc'))
    await mkdir(join(input, 'tmp', 'cache'), { recursive: true })
    await writeFile(join(input, 'db', '2024', 'nr.fasta'), randomBytes(300_000))
    await writeFile(join(input, 'etc', '.ncbirc'), '[BLAST]\nBLASTDB=../db\n')
    await writeFile(join(input, 'empty.txt'), '')
    await writeFile(join(input, 'update.sh'), '#!/bin/sh\necho update\n')
    await chmod(join(input, 'update.sh'), 0o755)
    await symlink('2024', join(input, 'db', 'latest'))
    await symlink('../etc/.ncbirc', join(input, 'db', '.ncbirc'))
    const seed = await startSeed()
    const pub = await seed.client.publish({ name: 'tree@1', dir: input })
    expect(pub.files).to.equal(4)
    const lab = await DaemonProcess.start({ dataDir: join(dir, 'lab'), bootstrap: seed.listen, trust: [await seed.publisherKey()] })
    daemons.push(lab)
    const got = await lab.fetch('tree@1')
    expect(got.state, JSON.stringify(got.error)).to.equal('done')
    const out = got.path as string
    expect(await readlink(join(out, 'db', 'latest'))).to.equal('2024')
    expect(await readlink(join(out, 'db', '.ncbirc'))).to.equal('../etc/.ncbirc')
    expect(await readFile(join(out, 'db', '.ncbirc'), 'utf8')).to.match(/BLASTDB/)
    expect((await readFile(join(out, 'db', 'latest', 'nr.fasta'))).equals(await readFile(join(input, 'db', '2024', 'nr.fasta')))).to.equal(true)
    expect((await stat(join(out, 'update.sh'))).mode & 0o777).to.equal(0o755)
    expect((await stat(join(out, 'etc', '.ncbirc'))).mode & 0o111).to.equal(0)
    expect((await stat(join(out, 'empty.txt'))).size).to.equal(0)
    expect((await lstat(join(out, 'tmp', 'cache'))).isDirectory()).to.equal(true)
    const ok = await lab.client.verify('tree@1')
    expect(ok).to.deep.include({ ok: true, filesChecked: 7 })
    // verify notices a symlink pointed elsewhere and a lost executable bit
    await rm(join(out, 'db', 'latest'))
    await symlink('2023', join(out, 'db', 'latest'))
    await chmod(join(out, 'update.sh'), 0o644)
    const bad = await lab.client.verify('tree@1')
    expect(bad.ok).to.equal(false)
    expect(bad.badFiles).to.have.members(['db/latest', 'update.sh'])
  })

  it('should refuse at publish what labs would refuse, and missing or empty input, signing nothing', async () => {
    const seed = await startSeed()
    const input = join(dir, 'in')
    await mkdir(input)
    await refused(seed.client.publish({ name: 'x@1', dir: join(dir, 'nope') }), 'INPUT_NOT_FOUND', /nope does not exist/)
    await refused(seed.client.publish({ name: 'x@1', dir: input }), 'EMPTY_RELEASE', /--allow-empty/)
    await writeFile(join(input, 'README'), 'read me')
    await writeFile(join(input, 'README.gz'), gzipSync('read me, zipped'))
    await refused(seed.client.publish({ name: 'x@1', dir: input }), 'PATH_COLLISION', /README\.gz would be published as "README"/)
    await symlink('/etc/hosts', join(input, 'hosts'))
    await rm(join(input, 'README'))
    await refused(seed.client.publish({ name: 'x@1', dir: input }), 'PATH_ESCAPE', /symlink "hosts".*absolute/)
    expect(await seed.client.listReleases()).to.deep.equal([])
    // the CLI says what is wrong, with its exit status
    const missing = await herald(seed, ['publish', 'x@1', join(dir, 'nope')])
    expect(missing.code).to.equal(3)
    expect(missing.stderr).to.match(/^herald: .*nope does not exist$/m)
    await rm(join(input, 'hosts'))
    await rm(join(input, 'README.gz'))
    const empty = await herald(seed, ['--json', 'publish', '--allow-empty', 'x@1', input])
    expect(empty.code, empty.stderr).to.equal(0)
    expect(JSON.parse(empty.stdout)).to.include({ name: 'x@1', files: 0, seq: 1 })
  })

  it('should keep a version immutable: other content refused without --force, the same content unchanged', async () => {
    const seed = await startSeed()
    await mkdir(join(dir, 'a'))
    await mkdir(join(dir, 'b'))
    await writeFile(join(dir, 'a', 'f.txt'), 'first '.repeat(10_000))
    await writeFile(join(dir, 'b', 'f.txt'), 'second '.repeat(10_000))
    const first = await seed.client.publish({ name: 'im@1', dir: join(dir, 'a') })
    expect(first.seq).to.equal(1)
    await refused(seed.client.publish({ name: 'im@1', dir: join(dir, 'b') }), 'VERSION_EXISTS', /already published \(seq 1.*--force/)
    expect((await seed.client.listReleases()).map(r => [r.name, r.seq, r.manifestCid])).to.deep.equal([['im@1', 1, first.manifestCid]])
    const same = await seed.client.publish({ name: 'im@1', dir: join(dir, 'a') })
    expect(same).to.include({ unchanged: true, seq: 1, manifestCid: first.manifestCid })
    // the same content is unchanged even when a newer release gives it other delta encodings
    await seed.client.publish({ name: 'im@2', dir: join(dir, 'b') })
    expect(await seed.client.publish({ name: 'im@1', dir: join(dir, 'a') })).to.include({ unchanged: true, seq: 1 })
    const cli = await herald(seed, ['publish', 'im@1', join(dir, 'b')])
    expect(cli.code).to.equal(2)
    expect(cli.stderr).to.match(/^herald: im@1 is already published/m)
    const forced = await seed.client.publish({ name: 'im@1', dir: join(dir, 'b'), force: true })
    expect(forced.seq).to.equal(2)
    expect(forced.unchanged).to.equal(undefined)
  })

  it('should report progress events and finish a CLI publish that outlives a short client timeout', async () => {
    // reading is held at 1 MiB/s so the publish takes ~6 s: three times the client's request limit
    const seed = await startSeed({ publish: { readBytesPerSecond: 1024 * 1024 } })
    const input = join(dir, 'in')
    await mkdir(input)
    await writeFile(join(input, 'a.bin'), randomBytes(3 * 1024 * 1024))
    await writeFile(join(input, 'b.bin'), randomBytes(3 * 1024 * 1024))
    const t0 = Date.now()
    const cli = await herald(seed, ['--json', 'publish', 'slow@1', input], { HERALD_API_TIMEOUT_MS: '2000' })
    const took = Date.now() - t0
    expect(cli.code, cli.stderr).to.equal(0)
    expect(took).to.be.greaterThan(4_000)
    const r = JSON.parse(cli.stdout)
    expect(r).to.include({ name: 'slow@1', files: 2, bytes: 6 * 1024 * 1024, seq: 1 })
    expect(r.id).to.be.a('string')
    // events over the API: a job id at once, then progress with rates and an ETA, then the result
    const started = await seed.client.startPublish({ name: 'slow@2', dir: input })
    expect(started.state).to.equal('scanning')
    const events: PublishProgress[] = []
    const final = await seed.client.followPublish(started.id, p => events.push(p))
    expect(final.state).to.equal('done')
    expect(final.result).to.include({ name: 'slow@2', newChunks: 0 })
    const reading = events.filter(e => e.state === 'reading' && e.bytesRead > 0 && e.bytesRead < e.bytesTotal)
    expect(reading.length).to.be.at.least(2)
    expect(reading.some(e => e.etaSeconds != null && e.etaSeconds > 0 && e.bytesPerSecond > 0)).to.equal(true)
    expect(reading.every(e => e.bytesTotal === 6 * 1024 * 1024 && e.filesTotal === 2)).to.equal(true)
    for (let i = 1; i < events.length; i++) expect(events[i].bytesRead).to.be.at.least(events[i - 1].bytesRead)
    expect(final).to.include({ filesRead: 2, bytesRead: 6 * 1024 * 1024 })
    expect((await seed.client.getPublish(started.id)).state).to.equal('done')
    await refused(seed.client.getPublish('no-such-job'), 'PUBLISH_NOT_FOUND')
  })

  it('should return the job id at once with --detach', async () => {
    const seed = await startSeed({ publish: { readBytesPerSecond: 1024 * 1024 } })
    const input = join(dir, 'in')
    await mkdir(input)
    await writeFile(join(input, 'a.bin'), randomBytes(3 * 1024 * 1024))
    const cli = await herald(seed, ['--json', 'publish', '--detach', 'det@1', input])
    expect(cli.code, cli.stderr).to.equal(0)
    const started = JSON.parse(cli.stdout) as PublishProgress
    expect(started.state).to.equal('scanning')
    expect(started.finishedAt).to.equal(undefined)
    const final = await seed.client.followPublish(started.id, () => {})
    expect(final.state).to.equal('done')
    expect(final.result?.seq).to.equal(1)
  })

  it('should end a publish cleanly on restart, sign nothing, and reuse the stored chunks on the next run', async () => {
    const seed = await startSeed({ publish: { readBytesPerSecond: 1024 * 1024 } })
    const input = join(dir, 'in')
    await mkdir(input)
    await writeFile(join(input, 'big.bin'), randomBytes(6 * 1024 * 1024))
    const started = await seed.client.startPublish({ name: 'rs@1', dir: input })
    const mid = await waitEvent(seed, started.id, p => p.newChunks >= 3)
    expect(mid.state).to.equal('reading')
    expect(await seed.stop()).to.equal(0)
    const before = seed.output
    await seed.launch()
    const ended = await seed.client.getPublish(started.id).catch(err => { throw new Error(`${String(err.message)}\n${before}\n${seed.output}`) })
    expect(ended.state).to.equal('failed')
    expect(ended.error?.code).to.equal('INTERRUPTED')
    expect(ended.error?.message).to.match(/nothing was signed/)
    expect(await seed.client.listReleases()).to.deep.equal([])
    const again = await seed.client.publish({ name: 'rs@1', dir: input })
    expect(again.chunks).to.be.greaterThan(3)
    expect(again.newChunks).to.be.at.most(again.chunks - 3)
    expect((await seed.client.verify('rs@1')).ok).to.equal(true)
  })

  it('should fail a publish whose input file changes while it is read, naming the file', async () => {
    // 4 MiB read at 1 MiB/s: the file is appended to once the job reports it is reading it
    const seed = await startSeed({ publish: { readBytesPerSecond: 1024 * 1024 } })
    const input = join(dir, 'in')
    await mkdir(input)
    await writeFile(join(input, 'mirror.dat'), randomBytes(4 * 1024 * 1024))
    const started = await seed.client.startPublish({ name: 'ch@1', dir: input })
    await waitEvent(seed, started.id, p => p.current === 'mirror.dat' && p.bytesRead > 0 && p.bytesRead < p.bytesTotal)
    await appendFile(join(input, 'mirror.dat'), 'a mirror sync still running')
    const final = await seed.client.followPublish(started.id, () => {})
    expect(final.state).to.equal('failed')
    expect(final.error?.code).to.equal('INPUT_CHANGED')
    expect(final.error?.message).to.match(/^mirror\.dat changed while the release was being read/)
    expect(await seed.client.listReleases()).to.deep.equal([])
  })

  it('should validate --chunk-size and record it in the manifest', async () => {
    const seed = await startSeed()
    const input = join(dir, 'in')
    await mkdir(input)
    await writeFile(join(input, 'a.bin'), randomBytes(200_000))
    const bad = await herald(seed, ['publish', '--chunk-size', '1K:3000:16K', 'cs@1', input])
    expect(bad.code).to.equal(2)
    expect(bad.stderr).to.match(/chunk size "1K:3000:16K": chunker avgSize must be a power of two/)
    const api = await refused(seed.client.startPublish({ name: 'cs@1', dir: input, chunkSize: '16:32' }), 'INVALID_ARGUMENT', /not MIN:AVG:MAX/)
    expect(api.status).to.equal(400)
    const ok = await herald(seed, ['--json', 'publish', '--chunk-size', '1K:4K:16K', 'cs@1', input])
    expect(ok.code, ok.stderr).to.equal(0)
    const r = JSON.parse(ok.stdout)
    expect(r.chunker).to.deep.equal({ minSize: 1024, avgSize: 4096, maxSize: 16384 })
    expect(r.chunks).to.be.greaterThan(200_000 / 16384)
    expect(() => parseConfig({ dataDir: dir, publish: { chunkSize: '64K:100K:1M' } })).to.throw(/power of two/)
    expect(parseConfig({ dataDir: dir, publish: { chunkSize: '64K:128K:1M' } }).publish.chunkSize).to.equal('64K:128K:1M')
  })
})
