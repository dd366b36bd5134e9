// `node build/test/bench/cpuprofile.js DIR [--top 25]`: sums the V8 CPU profiles in DIR (written by
// `BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench:swarm`, one per daemon) and prints where the
// time went: self time by function and by package (node_modules/<name>, node:internals, Herald's own
// folders, GC and idle), as seconds summed over all profiles and as a share of the busy (non-idle) time.
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** The package (or Herald folder) a script URL belongs to. */
export function area (url: string, fn: string): string {
  if (url === '') return fn === '(garbage collector)' ? 'gc' : fn === '(idle)' ? 'idle' : fn === '(program)' ? 'program' : 'native'
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (url.startsWith('node:')) return url
  const m = /\/build\/([^/]+\/[^/]+)/.exec(url)
  return m != null ? `herald:${m[1].replace(/\.js$/, '')}` : url
}

async function main (): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } })
  const dir = positionals[0]
  if (dir == null) throw new Error('usage: cpuprofile.js DIR [--top N]')
  const byFn = new Map<string, number>()
  const byArea = new Map<string, number>()
  let files = 0
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread; worker threads (the
  // publisher's compression pool) spend their idle time in Atomics.wait, which the profile counts as busy
  for (const f of (await readdir(dir)).filter(f => f.endsWith('.cpuprofile') && f.split('.')[4] === '0')) {
    const p = JSON.parse(await readFile(join(dir, f), 'utf8')) as Profile
    files++
    const nodes = new Map(p.nodes.map(n => [n.id, n]))
    for (let i = 0; i < p.samples.length; i++) {
      const n = nodes.get(p.samples[i])
      if (n == null) continue
      const us = p.timeDeltas[i] ?? 0
      const { functionName, url, lineNumber } = n.callFrame
      const a = area(url, functionName)
      const key = `${functionName === '' ? '(anonymous)' : functionName} ${a}${url === '' ? '' : `:${lineNumber + 1}`}`
      byFn.set(key, (byFn.get(key) ?? 0) + us)
      byArea.set(a, (byArea.get(a) ?? 0) + us)
    }
  }
  const idle = byArea.get('idle') ?? 0
  const total = [...byArea.values()].reduce((a, b) => a + b, 0)
  const busy = total - idle
  const top = Number(values.top)
  const print = (title: string, m: Map<string, number>): void => {
    console.log(`\n${title} (self time, s summed over ${files} profiles; share of ${(busy / 1e6).toFixed(1)} busy s)`)
    for (const [k, v] of [...m.entries()].filter(([k]) => !k.startsWith('(idle)') && k !== 'idle').sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${(v / 1e6).toFixed(2).padStart(8)}  ${(100 * v / busy).toFixed(1).padStart(5)}%  ${k}`)
    }
  }
  print('by package or folder', byArea)
  print('by function', byFn)
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
