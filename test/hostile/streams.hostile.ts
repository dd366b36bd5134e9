// Stream fuzzing against a live heraldd: mutated frames of every Herald protocol over real libp2p streams
// (HOSTILE_STREAM_TRIALS per protocol, default 5,000), 32 streams at a time. The daemon holds when it stays
// up, answers its API and still serves a valid request afterwards, with RSS sampled before and after.
import { expect } from 'chai'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Connection } from '@libp2p/interface'
import * as m from '../../protocol/exchange/messages.js'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { generateRelease } from '../fixtures/release-gen.js'
import { decoders, mutate, rng } from './fuzz.js'
import { record } from './tally.js'

const TRIALS = Number(process.env.HOSTILE_STREAM_TRIALS ?? 5_000)
const CONCURRENCY = 32

async function rss (d: DaemonProcess): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${d.child?.pid ?? 0}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024
}

describe('hostile: stream fuzzing against a live heraldd', function () {
  this.timeout(0)
  let dir: string
  let d: DaemonProcess

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-streamfuzz-'))
    await generateRelease({ seed: 5, entries: 500, dir: join(dir, 'in') })
    d = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true })
    await d.client.publish({ name: 'fuzz@1', dir: join(dir, 'in') })
  })

  after(async () => {
    await d?.kill()
    await rm(dir, { recursive: true, force: true })
  })

  it(`should survive ${TRIALS} mutated frames per protocol and keep serving`, async () => {
    const seeds = new Map((await decoders()).map(x => [x.name, x.seeds]))
    const protocols: Array<{ name: string, protocol: string, seeds: Uint8Array[] }> = [
      { name: 'chunk', protocol: '/herald/chunk/1.0.0', seeds: seeds.get('chunk request')! },
      { name: 'have', protocol: '/herald/have/1.0.0', seeds: seeds.get('have request')! },
      { name: 'release', protocol: '/herald/release/1.0.0', seeds: seeds.get('release request')! },
      { name: 'manifest', protocol: '/herald/manifest/1.0.0', seeds: seeds.get('have request')! }
    ]
    const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    try {
      let conn: Connection = await node.dial(multiaddr(d.listen[0]))
      for (const [n, p] of protocols.entries()) {
        const r = rng(0x51 + n)
        const before = await rss(d)
        const started = performance.now()
        let sent = 0
        let lost = 0
        const one = async (): Promise<void> => {
          if (conn.status !== 'open') conn = await node.dial(multiaddr(d.listen[0]))
          const stream = await conn.newStream(p.protocol, { signal: AbortSignal.timeout(10_000) })
          const lp = lpStream(stream, { maxDataLength: m.MAX_CHUNK_FRAME })
          try {
            // a raw (unframed) write now and then: a bad length prefix
            if (r() % 50 === 0) await stream.send(mutate(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), r))
            else await lp.write(mutate(p.seeds[r() % p.seeds.length], r))
            await lp.read({ signal: AbortSignal.timeout(250) }).catch(() => {})
          } finally {
            stream.abort(new Error('done'))
          }
        }
        while (sent < TRIALS) {
          const batch = Math.min(CONCURRENCY, TRIALS - sent)
          const results = await Promise.allSettled(Array.from({ length: batch }, one))
          lost += results.filter(x => x.status === 'rejected').length
          sent += batch
        }
        const seconds = (performance.now() - started) / 1000
        const after = await rss(d)
        const health = await d.client.health()
        expect(health.status).to.equal('ok')
        expect(d.child?.exitCode).to.equal(null)
        record(`streams ${p.name}`, sent, health.status === 'ok' ? sent : 0, `daemon up; RSS ${before.toFixed(0)}→${after.toFixed(0)} MiB; ${seconds.toFixed(0)} s; ${lost} streams not opened (client side)`)
      }
      // still serves a valid request afterwards
      const stream = await (await node.dial(multiaddr(d.listen[0]))).newStream('/herald/release/1.0.0')
      const lp = lpStream(stream)
      await lp.write(m.encodeReleaseRequest('fuzz', '1'))
      expect(m.decodeReleaseResponse(await lp.read()).status).to.equal(m.Status.OK)
    } finally {
      await node.stop()
    }
  })
})
