// `npm run test:interop`: a client nobody here wrote — a Helia node with the trustless-gateway block broker
// (test/interop/helia/, its own package.json, installed by the npm script, never a Herald dependency) —
// fetches Herald chunks by CID from a running heraldd's HTTP listener and from an exported release served
// by nginx; Helia verifies every block against its CID itself, and this script compares the bytes' sha256
// with the CID's digest. Exits non-zero on any failure.
import '../../protocol/polyfill.js'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { startNginx } from '../helpers/nginx.js'
import { generateRelease } from '../fixtures/release-gen.js'
import { decodeManifest, manifestChunkIndex } from '../../protocol/manifest.js'
import { cidFromDigest, digestHex } from '../../protocol/cid.js'

const execFileP = promisify(execFile)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const CHECK = join(root, 'test/interop/helia/check.mjs')

async function heliaFetch (gateway: string, cids: string[]): Promise<Array<{ cid: string, sha256: string, bytes: number }>> {
  const { stdout } = await execFileP(process.execPath, [CHECK, gateway, ...cids], { timeout: 120_000 })
  return JSON.parse(stdout.trim().split('\n').pop()!)
}

async function sentBytes (d: DaemonProcess): Promise<number> {
  const text = await (await fetch(d.metricsUrl + '/metrics')).text()
  return Number(/^herald_serve_http_sent_bytes_total (\S+)$/m.exec(text)?.[1] ?? 0)
}

async function main (): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'herald-interop-'))
  let seed: DaemonProcess | undefined
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined
  let failures = 0
  try {
    await generateRelease({ seed: 5, entries: 2_000, dir: join(dir, 'in') })
    seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, config: { http: { enabled: true, host: '127.0.0.1', port: 0 } } })
    const published = await seed.client.publish({ name: 'interop@1', dir: join(dir, 'in') })
    const res = await fetch(`${seed.httpUrl}/ipfs/${published.manifestCid}?format=raw`)
    const index = manifestChunkIndex(decodeManifest(new Uint8Array(await res.arrayBuffer())))
    const picks = [...new Set([0, Math.floor(index.count / 2), index.count - 1])]
    const expected = new Map(picks.map(i => [cidFromDigest(index.digestAt(i)).toString(), { hex: digestHex(index.digestAt(i)), size: index.sizes[i] }]))
    await seed.client.exportRelease('interop@1', join(dir, 'export'))
    nginx = await startNginx(dir, join(dir, 'export'))
    for (const [name, url] of [['heraldd', seed.httpUrl], ['nginx (exported release)', nginx.url]]) {
      const sentBefore = name === 'heraldd' ? await sentBytes(seed) : 0
      const got = await heliaFetch(url, [...expected.keys()])
      if (name === 'heraldd') {
        // the blocks came from this daemon's listener, not from anywhere else
        const sent = await sentBytes(seed) - sentBefore
        const want = [...expected.values()].reduce((a, e) => a + e.size, 0)
        if (sent < want) { failures++; console.log(`FAIL heraldd sent ${sent} bytes over HTTP, the blocks are ${want}`) }
      }
      for (const g of got) {
        const want = expected.get(g.cid)!
        const ok = g.sha256 === want.hex && g.bytes === want.size
        if (!ok) failures++
        console.log(`${ok ? 'ok  ' : 'FAIL'} helia ← ${name}: ${g.cid} ${g.bytes} bytes, sha256 ${ok ? 'matches the CID' : `${g.sha256} ≠ ${want.hex}`}`)
      }
      if (got.length !== expected.size) { failures++; console.log(`FAIL helia ← ${name}: ${got.length} of ${expected.size} blocks`) }
    }
  } finally {
    if (nginx != null && nginx.child.exitCode == null) {
      const exited = new Promise(resolve => nginx!.child.once('exit', resolve))
      nginx.child.kill('SIGTERM')
      await exited
    }
    await seed?.kill()
    await rm(dir, { recursive: true, force: true })
  }
  if (failures > 0) { console.error(`${failures} interop failure(s)`); process.exit(1) }
  console.log('interop: Helia fetched and verified Herald chunks from heraldd and from nginx')
}

main().catch(err => { console.error(err); process.exit(1) })
