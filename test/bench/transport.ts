// `npm run bench:transport`: the same bytes over each transport a chunk could take, side by side, one run.
// Each path runs a sender and a receiver in two child processes (this file, with a role argument); the
// parent reads each child's CPU (utime + stime from /proc/<pid>/stat) when both are set up and again when
// the last byte has arrived, so start-up (module loading, handshakes) is not counted.
//   tcp         loopback TCP socket, no framing
//   libp2p      a libp2p stream over TCP + Noise + Yamux (one stream, written with backpressure)
//   libp2p-tls  the same over TCP + TLS (@libp2p/tls), when that package is installed
//   http        HTTP/1.1 keep-alive: node:http server, Node's global fetch (undici) client, one request per message
//   https       the same over TLS (node:https, a self-signed certificate made by openssl for the run)
//   http-node   HTTP/1.1 keep-alive: node:http server, node:http client (keep-alive Agent): the client's cost
//   fastify     HTTP/1.1 keep-alive with a fastify server instead of node:http (the cost of the framework)
//   herald-http heraldd's chunk listener (daemon/http/server.ts, block from memory, not the store) and its
//               client (daemon/http/client.ts), each message a block checked against its CID on arrival
// Options: --size <MiB> (default 1024), --message <KiB> (default 1024), --only <name,...>. Prints a table
// and one JSON line.
import '../../protocol/polyfill.js'
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer as netServer, connect } from 'node:net'
import { createServer as httpServer, Agent, get } from 'node:http'
import { createServer as httpsServer } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createInterface } from 'node:readline'

const execFileP = promisify(execFile)
const CLOCK_TICKS = 100
const here = fileURLToPath(import.meta.url)
const PROTOCOL = '/herald-bench/transport/1.0.0'

interface Job { path: string, total: number, message: number, target?: string, certDir?: string }

// ---- child side --------------------------------------------------------------------------------------

function say (kind: string, value: unknown = {}): void { process.stdout.write(`${kind} ${JSON.stringify(value)}\n`) }

async function waitGo (): Promise<void> {
  const rl = createInterface({ input: process.stdin })
  for await (const line of rl) if (line === 'go') return
}

async function stayUntilStdinEnds (): Promise<void> {
  await new Promise<void>(resolve => { process.stdin.on('end', resolve); process.stdin.resume() })
}

async function receiver (job: Job): Promise<void> {
  let got = 0
  let t0 = 0
  const count = (n: number): boolean => {
    if (t0 === 0) t0 = performance.now()
    got += n
    return got >= job.total
  }
  const finish = (): void => { say('done', { bytes: got, seconds: (performance.now() - t0) / 1000 }) }
  if (job.path === 'tcp') {
    const server = netServer(socket => {
      socket.on('data', (b: Buffer) => { if (count(b.byteLength)) { finish(); socket.end() } })
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    say('ready', { target: String((server.address() as any).port) })
  } else if (job.path === 'libp2p' || job.path === 'libp2p-tls') {
    const node = await libp2pNode(job.path)
    await node.handle(PROTOCOL, async (stream: any) => {
      for await (const buf of stream) {
        if (count(buf.byteLength)) { finish(); break }
      }
      await stream.close().catch(() => {})
    })
    say('ready', { target: node.getMultiaddrs()[0].toString() })
  } else {
    // HTTP: the receiver is the client, asking for each message in turn on keep-alive connections
    say('ready', {})
    if (job.path === 'herald-http') {
      const { HttpChunkClient } = await import('../../daemon/http/client.js')
      const { sha256 } = await import('../../protocol/cid.js')
      const want = { digest: sha256(message(job.message)), size: job.message }
      const client = new HttpChunkClient({ baseUrl: job.target!, window: 4 })
      await waitGo()
      const n = Math.ceil(job.total / job.message)
      for await (const r of client.fetch(Array.from({ length: n }, () => want))) count(r.wireBytes)
      finish()
      await stayUntilStdinEnds()
      process.exit(0)
    }
    await waitGo()
    const url = job.target!
    const n = Math.ceil(job.total / job.message)
    const window = 4
    let next = 0
    const agent = new Agent({ keepAlive: true, maxSockets: window })
    const viaNode = async (): Promise<void> => {
      await new Promise<void>((resolve, reject) => {
        get(url, { agent }, res => {
          res.on('data', (b: Buffer) => { count(b.byteLength) })
          res.on('end', resolve)
          res.on('error', reject)
        }).on('error', reject)
      })
    }
    const worker = async (): Promise<void> => {
      while (next < n) {
        next++
        if (job.path === 'http-node') { await viaNode(); continue }
        const res = await fetch(url)
        const body = res.body!.getReader()
        while (true) {
          const { done, value } = await body.read()
          if (done) break
          count(value.byteLength)
        }
      }
    }
    await Promise.all(Array.from({ length: window }, worker))
    finish()
  }
  await stayUntilStdinEnds()
  process.exit(0)
}

function message (size: number): Buffer {
  const msg = Buffer.alloc(size, 0x5a)
  for (let i = 0; i + 4 <= msg.byteLength; i += 4) msg.writeUInt32LE((i * 2654435761) >>> 0, i)
  return msg
}

async function sender (job: Job): Promise<void> {
  const msg = message(job.message)
  const n = Math.ceil(job.total / job.message)
  if (job.path === 'tcp') {
    const socket = connect(Number(job.target), '127.0.0.1')
    await new Promise(resolve => socket.once('connect', resolve))
    say('ready')
    await waitGo()
    for (let i = 0; i < n; i++) {
      if (!socket.write(msg)) await new Promise(resolve => socket.once('drain', resolve))
    }
    say('done')
  } else if (job.path === 'libp2p' || job.path === 'libp2p-tls') {
    const node = await libp2pNode(job.path)
    const { multiaddr } = await import('@multiformats/multiaddr')
    const stream: any = await node.dialProtocol(multiaddr(job.target!), PROTOCOL)
    say('ready')
    await waitGo()
    for (let i = 0; i < n; i++) {
      if (!stream.send(msg)) await stream.onDrain()
    }
    await stream.close().catch(() => {})
    say('done')
  } else {
    // HTTP: the sender is the server
    const handler = (_req: any, res: any): void => {
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.raw', 'content-length': String(msg.byteLength) })
      res.end(msg)
    }
    let port: number
    if (job.path === 'herald-http') {
      const { startChunkHttpServer } = await import('../../daemon/http/server.js')
      const server = await startChunkHttpServer({ host: '127.0.0.1', port: 0, getStored: async () => ({ encoding: 'raw', data: msg, rawSize: msg.byteLength }) })
      say('ready', { target: server.url })
      await waitGo()
      say('done')
      await stayUntilStdinEnds()
      process.exit(0)
    }
    if (job.path === 'fastify') {
      const Fastify = (await import('fastify')).default
      const app = Fastify({ logger: false, keepAliveTimeout: 30_000 })
      app.get('/ipfs/:cid', async (_req, reply) => await reply.header('content-type', 'application/vnd.ipld.raw').send(msg))
      await app.listen({ host: '127.0.0.1', port: 0 })
      port = (app.server.address() as any).port
    } else {
      const server = job.path === 'https'
        ? httpsServer({ cert: await readFile(join(job.certDir!, 'cert.pem')), key: await readFile(join(job.certDir!, 'key.pem')) }, handler)
        : httpServer(handler)
      server.keepAliveTimeout = 30_000
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      port = (server.address() as any).port
    }
    say('ready', { target: `${job.path === 'https' ? 'https' : 'http'}://127.0.0.1:${port}/ipfs/bafkbench` })
    await waitGo()
    say('done')
  }
  await stayUntilStdinEnds()
  process.exit(0)
}

async function libp2pNode (path: string): Promise<any> {
  const { createLibp2p } = await import('libp2p')
  const { tcp } = await import('@libp2p/tcp')
  const { noise } = await import('@chainsafe/libp2p-noise')
  const { yamux } = await import('@chainsafe/libp2p-yamux')
  let encrypter: any = noise()
  if (path === 'libp2p-tls') {
    const name = '@libp2p/tls'
    encrypter = (await import(name)).tls()
  }
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [encrypter],
    streamMuxers: [yamux()]
  })
}

// ---- parent side -------------------------------------------------------------------------------------

interface Child { proc: ChildProcess, lines: AsyncIterator<string> }

function startChild (role: string, job: Job, env: NodeJS.ProcessEnv = process.env): Child {
  const proc = spawn(process.execPath, ['--max-semi-space-size=64', here, role, JSON.stringify(job)], { stdio: ['pipe', 'pipe', 'inherit'], env })
  const rl = createInterface({ input: proc.stdout! })
  return { proc, lines: rl[Symbol.asyncIterator]() }
}

async function expect (c: Child, kind: string): Promise<any> {
  const { value, done } = await c.lines.next()
  if (done === true) throw new Error(`child exited before "${kind}"`)
  const [k, ...rest] = String(value).split(' ')
  if (k !== kind) throw new Error(`expected "${kind}", got: ${String(value)}`)
  return JSON.parse(rest.join(' '))
}

async function cpu (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS
}

interface Row { path: string, mbPerSec?: number, sendCpuPerGiB?: number, recvCpuPerGiB?: number, seconds?: number, note?: string }

async function runPath (path: string, total: number, message: number, certDir: string): Promise<Row> {
  const job: Job = { path, total, message, certDir }
  const http = ['http', 'https', 'fastify', 'http-node', 'herald-http'].includes(path)
  // TCP and libp2p: the receiver listens, the sender dials. HTTP: the sender serves, the receiver asks.
  let recv: Child
  let send: Child
  if (http) {
    send = startChild('sender', job)
    const { target } = await expect(send, 'ready')
    recv = startChild('receiver', { ...job, target }, path === 'https' ? { ...process.env, NODE_EXTRA_CA_CERTS: join(certDir, 'cert.pem') } : process.env)
    await expect(recv, 'ready')
  } else {
    recv = startChild('receiver', job)
    const { target } = await expect(recv, 'ready')
    send = startChild('sender', { ...job, target })
    await expect(send, 'ready')
  }
  try {
    const c0 = [await cpu(send.proc.pid!), await cpu(recv.proc.pid!)]
    const t0 = performance.now()
    send.proc.stdin!.write('go\n')
    recv.proc.stdin!.write('go\n')
    const [, r] = await Promise.all([expect(send, 'done'), expect(recv, 'done')])
    const wall = (performance.now() - t0) / 1000
    const c1 = [await cpu(send.proc.pid!), await cpu(recv.proc.pid!)]
    const gib = r.bytes / 2 ** 30
    return {
      path,
      mbPerSec: r.bytes / 1e6 / wall,
      sendCpuPerGiB: (c1[0] - c0[0]) / gib,
      recvCpuPerGiB: (c1[1] - c0[1]) / gib,
      seconds: wall
    }
  } finally {
    for (const c of [send, recv]) c.proc.stdin!.end()
    await Promise.all([send, recv].map(async c => { if (c.proc.exitCode == null) await new Promise(resolve => c.proc.once('exit', resolve)) }))
  }
}

async function hasPackage (name: string): Promise<boolean> {
  try {
    createRequire(import.meta.url).resolve(name)
    return true
  } catch {
    try { await import(name); return true } catch { return false }
  }
}

function arg (name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

async function main (): Promise<void> {
  const total = Number(arg('size') ?? 1024) * 2 ** 20
  const message = Number(arg('message') ?? 1024) * 1024
  const only = arg('only')?.split(',')
  const paths = ['tcp', 'libp2p', 'libp2p-tls', 'http', 'https', 'http-node', 'fastify', 'herald-http'].filter(p => only == null || only.includes(p))
  const certDir = await mkdtemp(join(tmpdir(), 'herald-bench-tls-'))
  const rows: Row[] = []
  try {
    await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')])
    for (const path of paths) {
      if (path === 'libp2p-tls' && !await hasPackage('@libp2p/tls')) {
        rows.push({ path, note: 'not measured: @libp2p/tls not installed' })
        continue
      }
      process.stderr.write(`${path}…\n`)
      rows.push(await runPath(path, total, message, certDir))
    }
  } finally {
    await rm(certDir, { recursive: true, force: true })
  }
  const fmt = (n: number | undefined, d = 1): string => n == null ? '' : n.toFixed(d)
  console.log(`\n${(total / 2 ** 20).toFixed(0)} MiB in ${(message / 1024).toFixed(0)} KiB messages, sender and receiver in separate processes, ${new Date().toISOString()}`)
  console.log('| path | MB/s | sender CPU-s/GiB | receiver CPU-s/GiB | note |')
  console.log('|---|---:|---:|---:|---|')
  for (const r of rows) console.log(`| ${r.path} | ${fmt(r.mbPerSec, 0)} | ${fmt(r.sendCpuPerGiB, 2)} | ${fmt(r.recvCpuPerGiB, 2)} | ${r.note ?? ''} |`)
  console.log(JSON.stringify({ bytes: total, message, node: process.version, rows }))
}

const role = process.argv[2]
if (role === 'sender' || role === 'receiver') {
  const job = JSON.parse(process.argv[3]) as Job
  ;(role === 'sender' ? sender(job) : receiver(job)).catch(err => { console.error(err); process.exit(1) })
} else {
  main().catch(err => { console.error(err); process.exit(1) })
}
