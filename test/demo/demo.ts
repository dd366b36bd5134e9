// `npm run demo`: a seed and three peers on loopback, in temporary directories. The seed publishes a
// generated UniProt-like release and then its next version; the peers fetch one after another; the
// demo prints where each peer's bytes came from and how much the update moved.
import '../../protocol/polyfill.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { generateNextRelease, generateRelease } from '../fixtures/release-gen.js'
import type { FetchProgress } from '../../daemon/types.js'

const MiB = 1024 * 1024
const fmt = (n: number): string => `${(n / MiB).toFixed(1)} MiB`
const pct = (a: number, b: number): string => `${b === 0 ? 0 : Math.round(100 * a / b)}%`

function report (who: string, p: FetchProgress): void {
  const wire = p.wireBytes.seed + p.wireBytes.peer
  console.log(`  ${who.padEnd(7)} ${p.name.padEnd(16)} release ${fmt(p.totalBytes).padStart(10)}  moved ${fmt(wire).padStart(10)} ` +
    `(${pct(wire, p.totalBytes)} of the release)  from seed ${fmt(p.wireBytes.seed).padStart(10)}  from peers ${fmt(p.wireBytes.peer).padStart(10)}  ` +
    `reused locally ${fmt(p.reusedBytes)}  in ${(((p.finishedAt ?? Date.now()) - p.startedAt) / 1000).toFixed(1)} s`)
}

async function main (): Promise<void> {
  const entries = Number(process.env.HERALD_DEMO_ENTRIES ?? 40_000)
  const dir = await mkdtemp(join(tmpdir(), 'herald-demo-'))
  const daemons: DaemonProcess[] = []
  const cleanup = async (): Promise<void> => {
    await Promise.allSettled(daemons.map(async d => await d.stop()))
    await rm(dir, { recursive: true, force: true })
  }
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
  try {
    console.log(`Herald demo in ${dir}`)
    console.log(`generating a UniProt-like release (${entries} entries) and its next version…`)
    const v1 = join(dir, 'upstream', '2024-03')
    const v2 = join(dir, 'upstream', '2024-04')
    await generateRelease({ seed: 42, entries, dir: v1 })
    await generateNextRelease(v1, v2, { seed: 43, modifyFraction: 0.002, deleteFraction: 0.001, appendFraction: 0.02, insertFraction: 0.001 })

    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true, logLevel: 'error' })
    daemons.push(seed)
    console.log(`seed    ${seed.peerId} at ${seed.listen[0]}`)
    const trust = [await seed.publisherKey()]
    const peers: DaemonProcess[] = []
    for (const name of ['lab-a', 'lab-b', 'lab-c']) {
      const p = await DaemonProcess.start({ dataDir: join(dir, name), bootstrap: seed.listen, trust, logLevel: 'error' })
      daemons.push(p)
      peers.push(p)
      console.log(`${name.padEnd(7)} ${p.peerId}`)
    }

    const pub1 = await seed.client.publish({ name: 'uniprot@2024-03', dir: v1 })
    console.log(`\npublished uniprot@2024-03: ${pub1.files} files, ${fmt(pub1.bytes)}, ${pub1.chunks} chunks, manifest ${pub1.manifestCid}`)
    console.log('\nfetching uniprot@2024-03, one lab after another:')
    for (const [i, p] of peers.entries()) {
      const r = await p.fetch('uniprot@2024-03', 300_000)
      if (r.state !== 'done') throw new Error(`lab ${i} failed: ${JSON.stringify(r.error)}`)
      report(['lab-a', 'lab-b', 'lab-c'][i], r)
    }

    const pub2 = await seed.client.publish({ name: 'uniprot@2024-04', dir: v2 })
    console.log(`\npublished uniprot@2024-04: ${fmt(pub2.bytes)}, ${pub2.chunks} chunks, ${pub2.newChunks} not in 2024-03`)
    const d = pub2.delta
    if (d != null) console.log(`  delta chunks: ${d.encoded} of the ${d.candidates} new chunks (${fmt(d.candidateBytes)}) encoded against 2024-03 as ${fmt(d.deltaBytes)} of delta objects`)
    const plan = await peers[0].client.plan('uniprot@2024-04')
    console.log(`  herald plan on lab-a: move ${fmt(plan.toMove.total)} (delta ${fmt(plan.toMove.delta)}, compressed ${fmt(plan.toMove.compressed)}, raw ${fmt(plan.toMove.raw)}, manifest ${fmt(plan.toMove.manifest)}), reuse ${fmt(plan.reusedBytes)}`)
    console.log('\nupdating every lab to uniprot@2024-04 (each already holds 2024-03):')
    for (const [i, p] of peers.entries()) {
      const r = await p.fetch('uniprot@2024-04', 300_000)
      if (r.state !== 'done') throw new Error(`lab ${i} failed: ${JSON.stringify(r.error)}`)
      report(['lab-a', 'lab-b', 'lab-c'][i], r)
    }
    const s = await seed.client.status()
    const total = pub1.bytes + pub2.bytes
    console.log(`\nseed egress: ${fmt(s.served)} for 3 labs × 2 releases (${fmt(3 * total)} delivered): ${pct(s.served, 3 * total)}`)
    const a = await peers[0].client.listReleases()
    console.log(`lab-a holds: ${a.map(r => `${r.name}${r.current ? ' (current)' : ''}`).join(', ')} under ${join(dir, 'lab-a', 'releases')}`)
    console.log('\nstopping…')
  } finally {
    await cleanup()
  }
  console.log('done')
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
