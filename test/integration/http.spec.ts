// The HTTP chunk path on real daemons: a heraldd with http.enabled serves chunks in the trustless-gateway
// form to the project's client and to curl; an exported release served by a real nginx answers the same
// URLs. Every body is checked against its CID (sha256sum for curl).
import { expect } from 'chai'
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DaemonProcess, HERALD } from '../helpers/daemon-process.js'
import { generateNextRelease, generateRelease } from '../fixtures/release-gen.js'
import { decodeManifest, manifestChunkIndex, type ChunkIndex } from '../../protocol/manifest.js'
import { cidFromDigest, digestHex, parseCid, sha256 } from '../../protocol/cid.js'
import { HttpChunkClient } from '../../daemon/http/client.js'
import { startNginx } from '../helpers/nginx.js'

const execFileP = promisify(execFile)

/** curl a URL into a file and return [status, sha256 hex of the file] through curl and sha256sum. */
async function curlSha (url: string, out: string, headers: string[] = [], extra: string[] = []): Promise<{ status: number, sha: string, headers: string }> {
  const args = ['-s', '-D', '-', '-o', out, ...extra, ...headers.flatMap(h => ['-H', h]), url]
  const { stdout } = await execFileP('curl', args)
  const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(stdout)?.[1])
  const { stdout: sum } = await execFileP('sha256sum', [out])
  return { status, sha: sum.split(' ')[0], headers: stdout.toLowerCase() }
}

async function metric (d: DaemonProcess, name: string): Promise<number> {
  const text = await (await fetch(d.metricsUrl + '/metrics')).text()
  const line = text.split('\n').find(l => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return line == null ? 0 : Number(line.split(' ').pop())
}

describe('HTTP chunk path (real daemons, curl, nginx)', function () {
  this.timeout(180_000)
  let dir: string
  const daemons: DaemonProcess[] = []
  let nginx: ChildProcess | undefined

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-http-'))
  })

  afterEach(async () => {
    if (nginx != null && nginx.exitCode == null) {
      const exited = new Promise(resolve => nginx!.once('exit', resolve))
      nginx.kill('SIGTERM')
      await exited
    }
    nginx = undefined
    await Promise.allSettled(daemons.map(async d => await d.kill()))
    daemons.length = 0
    await rm(dir, { recursive: true, force: true })
  })

  async function seedWithRelease (opts: { uploadBytesPerSecond?: number, entries?: number, config?: Record<string, any>, https?: string } = {}): Promise<{ seed: DaemonProcess, manifestCid: string, index: ChunkIndex }> {
    const input = join(dir, 'in')
    await generateRelease({ seed: 18, entries: opts.entries ?? 4_000, dir: input })
    const seed = await DaemonProcess.start({
      dataDir: join(dir, 'seed'),
      seed: true,
      uploadBytesPerSecond: opts.uploadBytesPerSecond,
      // the gateway form, not the seed's hand-out policy, is under test: one client asks for a chunk several
      // times here, which super-seeding refuses (tested in test/daemon/http/server.spec.ts)
      config: { superSeed: false, http: { enabled: true, host: '127.0.0.1', port: 0 }, ...opts.config }
    })
    daemons.push(seed)
    const published = await seed.client.publish({ name: 'web@1', dir: input })
    // the manifest block is served on the same listener (dag-cbor CID)
    const path = join(dir, 'manifest.block')
    const got = await curlSha(`${seed.httpUrl}/ipfs/${published.manifestCid}`, path, ['Accept: application/vnd.ipld.raw'], opts.https != null ? ['--cacert', opts.https] : [])
    expect(got.status).to.equal(200)
    expect(got.sha).to.equal(digestHex(parseCid(published.manifestCid).multihash.digest))
    const manifest = decodeManifest(new Uint8Array(await readFile(path)))
    return { seed, manifestCid: published.manifestCid, index: manifestChunkIndex(manifest) }
  }

  it('should serve every chunk of a release to the HTTP client, verified against its CID, raw and as zstd frames', async () => {
    const { seed, index } = await seedWithRelease()
    expect(seed.httpUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(index.count).to.be.greaterThan(2)
    const wants = Array.from({ length: index.count }, (_, i) => ({ digest: index.digestAt(i), size: index.sizes[i] }))
    const before = await metric(seed, 'herald_serve_http_sent_bytes_total')
    for (const acceptZstd of [false, true]) {
      const client = new HttpChunkClient({ baseUrl: seed.httpUrl, acceptZstd })
      let n = 0
      let wire = 0
      let raw = 0
      for await (const r of client.fetch(wants)) {
        expect(r.status).to.equal('ok')
        expect(digestHex(r.digest)).to.equal(digestHex(wants[n].digest))
        expect(r.bytes?.byteLength).to.equal(wants[n].size)
        expect(r.encoding).to.equal(acceptZstd && r.frame != null ? 'zstd' : 'raw')
        wire += r.wireBytes
        raw += wants[n].size
        n++
      }
      expect(n).to.equal(index.count)
      // the generated FASTA compresses: with zstd accepted the seed sends its stored frames
      if (acceptZstd) expect(wire).to.be.lessThan(raw * 0.8)
      else expect(wire).to.equal(raw)
    }
    const after = await metric(seed, 'herald_serve_http_sent_bytes_total')
    expect(after - before).to.be.greaterThan(index.totalBytes)
    // the node's own served-bytes account counts the HTTP listener's bytes (manifest block included)
    expect((await seed.client.status()).served).to.equal(after)
  })

  it('should answer HEAD, 404, 400, 406 and conditional requests as the trustless-gateway form says', async () => {
    const { seed, index } = await seedWithRelease({ entries: 1_000 })
    const big = largest(index)
    const cid = cidFromDigest(index.digestAt(big)).toString()
    const head = await fetch(`${seed.httpUrl}/ipfs/${cid}?format=raw`, { method: 'HEAD' })
    expect(head.status).to.equal(200)
    expect(head.headers.get('content-length')).to.equal(String(index.sizes[big]))
    expect(head.headers.get('content-type')).to.equal('application/vnd.ipld.raw')
    expect(head.headers.get('cache-control')).to.equal('public, max-age=29030400, immutable')
    const etag = head.headers.get('etag')
    expect(etag).to.equal(`"${cid}.raw"`)
    const zhead = await fetch(`${seed.httpUrl}/ipfs/${cid}`, { method: 'HEAD', headers: { accept: 'application/vnd.ipld.raw', 'accept-encoding': 'zstd' } })
    expect(zhead.headers.get('content-encoding')).to.equal('zstd')
    expect(Number(zhead.headers.get('content-length'))).to.be.lessThan(index.sizes[big])
    expect(zhead.headers.get('etag')).to.equal(`"${cid}.raw.zstd"`)
    const cond = await fetch(`${seed.httpUrl}/ipfs/${cid}?format=raw`, { headers: { 'if-none-match': etag! } })
    expect(cond.status).to.equal(304)
    // a sha256 raw CID this node does not hold
    const unknown = cidFromDigest(new Uint8Array(32).fill(7)).toString()
    expect((await fetch(`${seed.httpUrl}/ipfs/${unknown}?format=raw`)).status).to.equal(404)
    // identity-hash and dag-pb CIDs are not Herald blocks: 400
    expect((await fetch(`${seed.httpUrl}/ipfs/bafkqaaa?format=raw`)).status).to.equal(400)
    expect((await fetch(`${seed.httpUrl}/ipfs/QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n?format=raw`)).status).to.equal(400)
    expect((await fetch(`${seed.httpUrl}/ipfs/not-a-cid?format=raw`)).status).to.equal(404)
    expect((await fetch(`${seed.httpUrl}/ipfs/zzzz?format=raw`)).status).to.equal(400)
    expect((await fetch(`${seed.httpUrl}/ipfs/${cid}?format=car`)).status).to.equal(400)
    expect((await fetch(`${seed.httpUrl}/ipfs/${cid}`, { headers: { accept: 'text/html' } })).status).to.equal(406)
    expect((await fetch(`${seed.httpUrl}/ipfs/${cid}?format=raw`, { method: 'POST' })).status).to.equal(405)
    expect((await fetch(`${seed.httpUrl}/v1/status`)).status).to.equal(404)
  })

  it('should answer 429 with Retry-After once a tiny upload cap is spent', async () => {
    const { seed, index } = await seedWithRelease({ uploadBytesPerSecond: 1_000, entries: 1_000 })
    const url = (i: number): string => `${seed.httpUrl}/ipfs/${cidFromDigest(index.digestAt(i)).toString()}?format=raw`
    const big = largest(index)
    expect(index.sizes[big]).to.be.greaterThan(50_000)
    // the first response may spend the budget (a burst of one chunk); the next must wait far beyond 2 s
    const first = await fetch(url(big))
    expect(first.status).to.equal(200)
    expect((await first.arrayBuffer()).byteLength).to.equal(index.sizes[big])
    const second = await fetch(url(big))
    expect(second.status).to.equal(429)
    const after = Number(second.headers.get('retry-after'))
    expect(after).to.be.at.least(Math.floor(index.sizes[big] / 1_000) - 3)
    // HEAD sends no body: not limited
    expect((await fetch(url(big), { method: 'HEAD' })).status).to.equal(200)
    // the client reports it as rate-limited, with the wait
    const reply = await new HttpChunkClient({ baseUrl: seed.httpUrl }).fetchOne({ digest: index.digestAt(big), size: index.sizes[big] })
    expect(reply.status).to.equal('rate-limited')
    expect(reply.retryAfterMs).to.be.greaterThan(1_000)
    expect(await metric(seed, 'herald_serve_http_responses_total{status="429"}')).to.be.at.least(1)
  })

  it('should let curl fetch a chunk whose sha256sum is the CID digest, and a corrupt-free export served by nginx', async function () {
    const { seed, index, manifestCid } = await seedWithRelease({ entries: 2_000 })
    const digest = index.digestAt(1)
    const cid = cidFromDigest(digest).toString()
    const got = await curlSha(`${seed.httpUrl}/ipfs/${cid}`, join(dir, 'curl-1'), ['Accept: application/vnd.ipld.raw'])
    expect(got.status).to.equal(200)
    expect(got.sha).to.equal(digestHex(digest))

    const out = join(dir, 'export')
    const r = await seed.client.exportRelease('web@1', out)
    expect(r.chunks).to.equal(index.count)
    expect(r.written).to.equal(r.chunks + r.deltaObjects + 1)
    expect((await readdir(join(out, 'ipfs'))).length).to.equal(r.written)
    expect(await readFile(join(out, 'herald/releases/web/1'))).to.have.length.greaterThan(64)
    // a second export keeps what is there
    const again = await seed.client.exportRelease('web@1', out)
    expect(again.written).to.equal(0)
    expect(again.kept).to.equal(r.written)

    const base = await startNginx(dir, out)
    nginx = base.child
    for (const i of [0, index.count - 1]) {
      const d = index.digestAt(i)
      const c = cidFromDigest(d).toString()
      const plain = await curlSha(`${base.url}/ipfs/${c}`, join(dir, `nginx-${i}`), ['Accept: application/vnd.ipld.raw'])
      expect(plain.status).to.equal(200)
      expect(plain.sha).to.equal(digestHex(d))
      expect(plain.headers).to.include('content-type: application/vnd.ipld.raw')
      expect(plain.headers).to.include('cache-control: public, max-age=29030400, immutable')
    }
    const m = await curlSha(`${base.url}/ipfs/${manifestCid}`, join(dir, 'nginx-manifest'))
    expect(m.sha).to.equal(digestHex(parseCid(manifestCid).multihash.digest))
    // the project's client against the static origin: whole release, verified
    const client = new HttpChunkClient({ baseUrl: base.url })
    let n = 0
    for await (const reply of client.fetch(Array.from({ length: index.count }, (_, i) => ({ digest: index.digestAt(i), size: index.sizes[i] })))) {
      expect(reply.status).to.equal('ok')
      n++
    }
    expect(n).to.equal(index.count)
    const missing = await client.fetchOne({ digest: new Uint8Array(32).fill(9), size: 10 })
    expect(missing.status).to.equal('not-found')
  })

  it('should export a delta-encoded release whose every block file hashes to the CID it is named by', async () => {
    const { seed } = await seedWithRelease({ entries: 3_000 })
    await generateNextRelease(join(dir, 'in'), join(dir, 'in-2'), { seed: 19, modifyFraction: 0.02, appendFraction: 0.01 })
    const v2 = await seed.client.publish({ name: 'web@2', dir: join(dir, 'in-2') })
    const out = join(dir, 'export')
    const r1 = await seed.client.exportRelease('web@1', out)
    const r2 = await seed.client.exportRelease('web@2', out)
    expect(r2.manifestCid).to.equal(v2.manifestCid)
    expect(r2.deltaObjects, 'the seed holds the delta objects it encoded').to.be.greaterThan(0)
    expect(r2.deltaObjectsMissing).to.equal(0)
    // scattered edits change nearly every chunk: what web@2 shares with web@1 was kept, not written twice
    expect(r2.written + r2.kept).to.equal(r2.chunks + r2.deltaObjects + 1)
    const names = await readdir(join(out, 'ipfs'))
    expect(names.length).to.equal(r1.written + r2.written)
    for (const name of names) {
      const cid = parseCid(name)
      const bytes = await readFile(join(out, 'ipfs', name))
      expect(digestHex(sha256(bytes)), name).to.equal(digestHex(cid.multihash.digest))
    }
    for (const v of ['1', '2']) expect((await readdir(join(out, 'herald/releases/web')))).to.include(v)
  })

  it('should export from the CLI, and refuse an unknown release and a relative API directory with typed errors', async () => {
    const { seed } = await seedWithRelease({ entries: 500 })
    try {
      await seed.client.exportRelease('web@9', join(dir, 'x'))
      expect.fail('exported an unknown release')
    } catch (err: any) { expect(err.code).to.equal('RELEASE_NOT_FOUND') }
    try {
      await seed.client.exportRelease('web@1', 'relative/dir')
      expect.fail('exported into a relative directory')
    } catch (err: any) { expect(err.code).to.equal('INVALID_PATH') }

    // the CLI: a relative DIR is taken from its working directory; an unknown release exits 3
    const cli = async (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => {
      try {
        const r = await execFileP(process.execPath, [HERALD, '--api', seed.apiUrl, '--token', seed.token, ...args], { cwd: dir })
        return { code: 0, stdout: r.stdout, stderr: r.stderr }
      } catch (err: any) {
        return { code: err.code, stdout: err.stdout, stderr: err.stderr }
      }
    }
    const ok = await cli(['--json', 'export', 'web@1', 'out'])
    expect(ok.code, ok.stderr).to.equal(0)
    const r = JSON.parse(ok.stdout)
    expect(r.dir).to.equal(join(dir, 'out'))
    expect((await readdir(join(dir, 'out', 'ipfs'))).length).to.equal(r.written)
    const missing = await cli(['export', 'web@9', 'out'])
    expect(missing.code).to.equal(3)
    expect(missing.stderr).to.include('web@9 is not in the local store')
  })

  it('should serve over HTTPS with the certificate and key named in the configuration', async () => {
    const cert = join(dir, 'cert.pem')
    const key = join(dir, 'key.pem')
    await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert])
    const { seed, index } = await seedWithRelease({ entries: 500, config: { http: { enabled: true, host: '127.0.0.1', port: 0, tlsCert: cert, tlsKey: key } }, https: cert })
    expect(seed.httpUrl).to.match(/^https:\/\/127\.0\.0\.1:\d+$/)
    const digest = index.digestAt(largest(index))
    const got = await curlSha(`${seed.httpUrl}/ipfs/${cidFromDigest(digest).toString()}`, join(dir, 'tls-1'), ['Accept: application/vnd.ipld.raw'], ['--cacert', cert])
    expect(got.status).to.equal(200)
    expect(got.sha).to.equal(digestHex(digest))
  })

  it('should not listen for chunks over HTTP unless enabled', async () => {
    const d = await DaemonProcess.start({ dataDir: join(dir, 'plain') })
    daemons.push(d)
    expect(d.httpUrl).to.equal('')
  })
})

/** The position of the largest chunk (small files make small chunks, stored uncompressed). */
function largest (index: ChunkIndex): number {
  let best = 0
  for (let i = 1; i < index.count; i++) if (index.sizes[i] > index.sizes[best]) best = i
  return best
}
