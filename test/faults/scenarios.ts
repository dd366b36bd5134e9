// The fault scenarios, each run for a number of trials against real heraldd processes (or the real store)
// and counted: a trial holds when the promise under test held (the fetch ends verified, nothing partial was
// visible, the store opened with nothing wrong), and fails otherwise, with the reason.
import { open, readdir, readFile, readlink, rm, stat, statfs, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { generateNextRelease, generateRelease, prng } from '../fixtures/release-gen.js'
import { checkWhole, powerCut, randomChunk } from '../helpers/power-cut.js'
import { Store } from '../../store/store.js'
import type { DaemonProcess } from '../helpers/daemon-process.js'
import type { FetchProgress } from '../../daemon/types.js'
import { Cluster, expectSameTree, listFiles, mountTmpfs, resizeTmpfs, sleep, Tally, unmount, until } from './harness.js'

const MiB = 1024 * 1024

/** After a restart: the fetch of `name`, resumed or (when it had finished, or was not recorded yet) asked again. */
async function finishAfterRestart (lab: DaemonProcess, name: string): Promise<FetchProgress> {
  const resumed = (await lab.client.status()).fetches.find(f => f.name === name)
  if (resumed != null) return await lab.waitFetch(resumed.id, 180_000)
  return await lab.fetch(name, 180_000)
}

async function expectVerified (lab: DaemonProcess, name: string, input: string, done: FetchProgress): Promise<void> {
  if (done.state !== 'done') throw new Error(`fetch ${done.state}: ${JSON.stringify(done.error)}`)
  const v = await lab.client.verify(name)
  if (!v.ok) throw new Error(`verify: ${v.bad.length} bad, ${v.missing} missing`)
  await expectSameTree(input, done.path!)
}

/** Kill a lab at a random point of a fetch (early, mid-transfer, materializing), restart it, expect the release verified. */
export async function killFetch (dir: string, n: number): Promise<Tally> {
  const tally = new Tally('SIGKILL fetching lab')
  const c = new Cluster(dir)
  const phases: Record<string, number> = {}
  try {
    const input = join(dir, 'in')
    await generateRelease({ seed: 41, entries: 12_000, dir: input })
    const seed = await c.startSeed({ uploadBytesPerSecond: 3 * MiB })
    await seed.client.publish({ name: 'kf@1', dir: input })
    const rand = prng(4242)
    for (let t = 0; t < n; t++) {
      let running: DaemonProcess | undefined
      try {
        const lab = running = await c.startLab(`lab${t}`)
        const started = await lab.client.startFetch({ name: 'kf@1' })
        // the kill point, in turn: early (a random moment in the first 0.5 s), mid-transfer (a random share
        // of the chunks stored), during materialization
        const target = (['early', 'mid', 'materializing'] as const)[t % 3]
        const share = rand()
        const killAt = Date.now() + share * 500
        let phase = 'queued'
        await until(async () => {
          const p = await lab.client.getFetch(started.id)
          phase = p.state
          if (p.state === 'done' || p.state === 'failed') return true
          if (target === 'early') return Date.now() >= killAt
          if (target === 'mid') return p.totalChunks > 0 && p.doneChunks >= share * (p.totalChunks - p.reusedChunks)
          return p.state === 'materializing'
        }, 180_000, 10)
        phases[phase] = (phases[phase] ?? 0) + 1
        await lab.kill()
        await lab.launch()
        await expectVerified(lab, 'kf@1', input, await finishAfterRestart(lab, 'kf@1'))
        tally.ok()
      } catch (err) { tally.fail(t, err) } finally { await running?.kill() }
    }
    tally.figures.killedIn = Object.entries(phases).map(([k, v]) => `${k}:${v}`).join(',')
  } finally { await c.close() }
  return tally
}

/**
 * Kill a lab mid-update while a watcher samples `releases/<dataset>/current` every 2 ms: every sample must
 * show one whole version (its files at their sizes, its RELEASE.txt), never a mix or a partial one.
 */
export async function killUpdate (dir: string, n: number): Promise<Tally> {
  const tally = new Tally('SIGKILL lab mid-update (watcher on current)')
  const c = new Cluster(dir)
  let samples = 0
  try {
    const v1 = join(dir, 'v1')
    const v2 = join(dir, 'v2')
    await generateRelease({ seed: 51, entries: 10_000, dir: v1 })
    await generateNextRelease(v1, v2, { seed: 52, modifyFraction: 0.2, appendFraction: 0.3 })
    const shape = async (d: string): Promise<string> => {
      const files = await listFiles(d)
      const sizes = await Promise.all(files.map(async f => (await stat(join(d, f))).size))
      return files.map((f, i) => `${f}:${sizes[i]}`).join(',') + '|' + await readFile(join(d, 'RELEASE.txt'), 'utf8')
    }
    const good = new Set([await shape(v1), await shape(v2)])
    const seed = await c.startSeed({ uploadBytesPerSecond: 3 * MiB })
    await seed.client.publish({ name: 'up@1', dir: v1 })
    await seed.client.publish({ name: 'up@2', dir: v2 })
    const rand = prng(5151)
    for (let t = 0; t < n; t++) {
      let running: DaemonProcess | undefined
      let stop = false
      const bad: string[] = []
      try {
        const lab = running = await c.startLab(`lab${t}`)
        const f1 = await lab.fetch('up@1')
        if (f1.state !== 'done') throw new Error(`v1: ${JSON.stringify(f1.error)}`)
        const current = join(lab.opts.dataDir, 'releases', 'up', 'current')
        const watcher = (async () => {
          while (!stop) {
            try {
              const target = await readlink(current)
              const s = await shape(join(current, '..', target))
              if (!good.has(s)) bad.push(`${target}: ${s.slice(0, 120)}`)
            } catch (err: any) { bad.push(`current unreadable: ${err.code as string}`) }
            samples++
            await sleep(2)
          }
        })()
        const started = await lab.client.startFetch({ name: 'up@2' })
        const killAt = Date.now() + rand() * 3_000
        while (Date.now() < killAt) {
          const p = await lab.client.getFetch(started.id)
          if (p.state === 'done' || p.state === 'failed') break
          await sleep(Math.min(30, Math.max(0, killAt - Date.now())))
        }
        await lab.kill()
        await lab.launch()
        const done = await finishAfterRestart(lab, 'up@2')
        stop = true
        await watcher
        await expectVerified(lab, 'up@2', v2, done)
        if ((await readlink(current)) !== '2') throw new Error(`current is ${await readlink(current)}, not 2`)
        if (bad.length > 0) throw new Error(`watcher saw ${bad.length} bad samples: ${bad[0]}`)
        tally.ok()
      } catch (err) { tally.fail(t, err) } finally { stop = true; await running?.kill() }
    }
    tally.figures.samples = samples
  } finally { await c.close() }
  return tally
}

/** Kill the seed at a random point of a publish; after a restart its store holds what it held, and the publish goes through. */
export async function killSeedPublish (dir: string, n: number): Promise<Tally> {
  const tally = new Tally('SIGKILL seed mid-publish')
  const c = new Cluster(dir)
  try {
    const base = join(dir, 'base')
    await generateRelease({ seed: 61, entries: 6_000, dir: base })
    const seed = await c.startSeed()
    await seed.client.publish({ name: 'sp@0', dir: base })
    const rand = prng(6161)
    for (let t = 1; t <= n; t++) {
      let running: DaemonProcess | undefined
      try {
        const input = join(dir, `in${t}`)
        await generateNextRelease(base, input, { seed: 6100 + t, modifyFraction: 0.05, appendFraction: 0.5 })
        const began = Date.now()
        const publishing = seed.client.publish({ name: `sp@${t}`, dir: input }).catch(() => undefined)
        await sleep(rand() * 1_500)
        await seed.kill()
        await publishing
        const killedAfter = Date.now() - began
        await seed.launch()
        const v0 = await seed.client.verify('sp@0')
        if (!v0.ok) throw new Error(`sp@0 no longer verifies after a kill at ${killedAfter} ms`)
        const pub = await seed.client.publish({ name: `sp@${t}`, dir: input })
        if (pub.chunks < 1) throw new Error('publish stored nothing')
        // a lab started now (the restarted seed listens on a new port)
        const lab = running = await c.startLab(`lab${t}`)
        const got = await lab.fetch(`sp@${t}`)
        await expectVerified(lab, `sp@${t}`, input, got)
        if (!(await seed.client.verify(`sp@${t}`)).ok) throw new Error('the seed does not verify its own release')
        tally.ok()
      } catch (err) { tally.fail(t, err) } finally { await running?.kill() }
    }
  } finally { await c.close() }
  return tally
}

/** Power cut while the store is written (in process: the index as on disk, packs cut to their fsynced length). */
export async function powerLossStore (dir: string, n: number): Promise<Tally> {
  const tally = new Tally('power loss (store being written, packs cut to fsynced length)')
  let present = 0
  let total = 0
  for (let t = 0; t < n; t++) {
    const rand = prng(7000 + t)
    const store = await Store.open(join(dir, `s${t}`), { packMaxBytes: 96 * 1024 + Math.floor(rand() * 512 * 1024) })
    let copy: Store | undefined
    try {
      const chunks = Array.from({ length: 150 + Math.floor(rand() * 150) }, () => randomChunk(rand, 1024 + Math.floor(rand() * 16_384)))
      const cutAfter = Math.floor(rand() * chunks.length)
      let done = 0
      // a few writers at a time, so that writes are still going on when the power goes
      let cut: Promise<void> | undefined
      if (cutAfter === 0) cut = powerCut(store, join(dir, `cut${t}`))
      let next = 0
      await Promise.all(Array.from({ length: 6 }, async () => {
        while (next < chunks.length) {
          const ch = chunks[next++]
          await store.putChunk(ch.d, ch.b)
          if (++done === cutAfter) cut = powerCut(store, join(dir, `cut${t}`))
        }
      }))
      await cut
      copy = await Store.open(join(dir, `cut${t}`))
      if (copy.recovery.droppedChunks !== 0) throw new Error(`an index entry pointed past a durable pack end: ${JSON.stringify(copy.recovery)}`)
      const held = await checkWhole(copy, chunks)
      if (held < cutAfter) throw new Error(`${held} chunks held, ${cutAfter} were acknowledged before the cut`)
      present += held
      total += chunks.length
      // what was lost is stored again (as a refetch would)
      for (const ch of chunks) await copy.putChunk(ch.d, ch.b)
      if (await checkWhole(copy, chunks) !== chunks.length) throw new Error('refilling left gaps')
      tally.ok()
    } catch (err) { tally.fail(t, err) } finally {
      await copy?.close()
      await store.close()
      await rm(join(dir, `s${t}`), { recursive: true, force: true })
      await rm(join(dir, `cut${t}`), { recursive: true, force: true })
    }
  }
  tally.figures.chunksSurvivingCut = `${present}/${total}`
  return tally
}

/** A lab killed mid-fetch whose newest pack then loses a random tail (a store written without ordered writes, or a torn disk). */
export async function powerLossDaemon (dir: string, n: number): Promise<Tally> {
  const tally = new Tally('power loss (lab killed mid-fetch, pack tail lost)')
  const c = new Cluster(dir)
  let dropped = 0
  try {
    const input = join(dir, 'in')
    await generateRelease({ seed: 71, entries: 10_000, dir: input })
    const seed = await c.startSeed({ uploadBytesPerSecond: 3 * MiB })
    await seed.client.publish({ name: 'pl@1', dir: input })
    const rand = prng(7171)
    for (let t = 0; t < n; t++) {
      let running: DaemonProcess | undefined
      try {
        const lab = running = await c.startLab(`lab${t}`)
        const started = await lab.client.startFetch({ name: 'pl@1' })
        await until(async () => (await lab.client.getFetch(started.id)).doneChunks >= 2 + Math.floor(rand() * 20), 60_000)
        await lab.kill()
        const packs = join(lab.opts.dataDir, 'store', 'packs')
        const last = (await readdir(packs)).filter(f => f.endsWith('.dat')).sort().pop()
        if (last == null) throw new Error('no pack written')
        const size = (await stat(join(packs, last))).size
        await truncate(join(packs, last), Math.floor(size * rand()))
        await lab.launch()
        const m = /"droppedChunks":(\d+)/.exec(lab.output)
        dropped += Number(m?.[1] ?? 0)
        await expectVerified(lab, 'pl@1', input, await finishAfterRestart(lab, 'pl@1'))
        tally.ok()
      } catch (err) { tally.fail(t, err) } finally { await running?.kill() }
    }
    tally.figures.indexEntriesDropped = dropped
  } finally { await c.close() }
  return tally
}

/** A source peer killed (SIGKILL) or frozen (SIGSTOP) mid-transfer: the fetch completes from the others; time lost reported. */
export async function sourceFault (dir: string, n: number, mode: 'kill' | 'stop'): Promise<Tally> {
  const tally = new Tally(mode === 'kill' ? 'source peer killed mid-transfer' : 'source peer frozen (SIGSTOP) mid-transfer')
  const c = new Cluster(dir)
  const lost: number[] = []
  try {
    const input = join(dir, 'in')
    await generateRelease({ seed: 81, entries: 12_000, dir: input })
    const seed = await c.startSeed()
    await seed.client.publish({ name: 'src@1', dir: input })
    const a = await c.startLab('a')
    const b = await c.startLab('b')
    for (const p of [a, b]) if ((await p.fetch('src@1')).state !== 'done') throw new Error('sources did not fetch')
    const fetcher = async (name: string): Promise<DaemonProcess> => await c.startLab(name, { bootstrap: [...a.listen, ...b.listen, ...seed.listen], config: { seeds: [seed.peerId], limits: { maxInflightPerPeer: 2, batchSize: 2 } } })
    const base = await fetcher('baseline')
    const t0 = Date.now()
    const bf = await base.fetch('src@1')
    const baseline = Date.now() - t0
    if (bf.state !== 'done') throw new Error(`baseline fetch failed: ${JSON.stringify(bf.error)}`)
    await base.kill()
    tally.figures.baselineMs = baseline
    for (let t = 0; t < n; t++) {
      let running: DaemonProcess | undefined
      try {
        const lab = running = await fetcher(`c${t}`)
        const began = Date.now()
        const started = await lab.client.startFetch({ name: 'src@1' })
        await until(async () => { const p = await lab.client.getFetch(started.id); return p.doneChunks >= 2 || p.state === 'done' || p.state === 'failed' }, 60_000)
        if (mode === 'kill') await a.kill()
        else process.kill(a.child!.pid!, 'SIGSTOP')
        const done = await lab.waitFetch(started.id, 180_000)
        lost.push(Date.now() - began - baseline)
        await expectVerified(lab, 'src@1', input, done)
        tally.ok()
      } catch (err) { tally.fail(t, err) } finally {
        await running?.kill()
        if (mode === 'kill') await a.launch()
        else process.kill(a.child!.pid!, 'SIGCONT')
      }
    }
    lost.sort((x, y) => x - y)
    tally.figures.timeLostMedianMs = lost[Math.floor(lost.length / 2)] ?? 0
    tally.figures.timeLostMaxMs = lost[lost.length - 1] ?? 0
  } finally { await c.close() }
  return tally
}

/**
 * Disk full (a real tmpfs): a fetch that cannot fit fails at once with DISK_FULL and stays pending; one that
 * fills the disk mid-transfer fails with DISK_FULL; a publish that fills the seed's disk fails with DISK_FULL
 * and leaves its store whole. Each resumes once space is freed and ends verified.
 */
export async function diskFull (dir: string): Promise<Tally> {
  const tally = new Tally('disk full (fetch before start, fetch mid-transfer, publish)')
  const c = new Cluster(dir)
  const mounts: string[] = []
  try {
    const input = join(dir, 'in')
    await generateRelease({ seed: 91, entries: 16_000, dir: input })
    const seed = await c.startSeed({ uploadBytesPerSecond: 4 * MiB })
    await seed.client.publish({ name: 'df@1', dir: input })

    // 1. the plan does not fit: DISK_FULL at once, kept pending across a restart, done once space is freed
    try {
      const mnt = join(dir, 'lab1')
      await mountTmpfs(mnt, 20)
      mounts.push(mnt)
      const lab = await c.startLab('lab1')
      const began = Date.now()
      const f = await lab.fetch('df@1', 60_000)
      const ms = Date.now() - began
      tally.figures.precheckFailMs = ms
      if (f.state !== 'failed' || f.error?.code !== 'DISK_FULL') throw new Error(`pre-check: ${f.state} ${JSON.stringify(f.error)}`)
      await lab.kill()
      await lab.launch()
      if ((await lab.client.status()).fetches.find(x => x.name === 'df@1') == null) throw new Error('the DISK_FULL fetch was not kept for resuming')
      await resizeTmpfs(mnt, 256)
      await expectVerified(lab, 'df@1', input, await lab.fetch('df@1', 120_000))
      await lab.kill()
      tally.ok()
    } catch (err) { tally.fail(1, err) }

    // 2. the disk fills up mid-transfer (something else writes): DISK_FULL, then done once space is freed
    try {
      const mnt = join(dir, 'lab2')
      await mountTmpfs(mnt, 96)
      mounts.push(mnt)
      const lab = await c.startLab('lab2')
      const started = await lab.client.startFetch({ name: 'df@1' })
      await until(async () => (await lab.client.getFetch(started.id)).doneChunks >= 3, 60_000)
      await fillUp(join(mnt, 'ballast'))
      const began = Date.now()
      const f = await lab.waitFetch(started.id, 120_000)
      tally.figures.midTransferFailMs = Date.now() - began
      tally.figures.midTransferCode = f.error?.code ?? f.state
      await rm(join(mnt, 'ballast'))
      if (f.state === 'done') throw new Error('the fetch finished on a full disk')
      const again = await lab.fetch('df@1', 120_000)
      await expectVerified(lab, 'df@1', input, again)
      if (f.error?.code !== 'DISK_FULL') throw new Error(`mid-transfer failure reported as ${JSON.stringify(f.error)}`)
      await lab.kill()
      tally.ok()
    } catch (err) { tally.fail(2, err) }

    // 3. a publish fills the seed's disk
    try {
      const mnt = join(dir, 'pubseed')
      await mountTmpfs(mnt, 8)
      mounts.push(mnt)
      const small = join(dir, 'small')
      await generateRelease({ seed: 92, entries: 3_000, dir: small })
      const pubSeed = await (async () => {
        const { DaemonProcess } = await import('../helpers/daemon-process.js')
        const d = await DaemonProcess.start({ dataDir: join(mnt, 'seed'), seed: true })
        c.daemons.push(d)
        return d
      })()
      await pubSeed.client.publish({ name: 'small@1', dir: small })
      let code = 'none'
      try { await pubSeed.client.publish({ name: 'df@1', dir: input }) } catch (err: any) { code = err.code ?? String(err.message) }
      tally.figures.publishCode = code
      if (code !== 'DISK_FULL') throw new Error(`publish on a full disk: ${code}`)
      if (!(await pubSeed.client.verify('small@1')).ok) throw new Error('the release held before does not verify')
      await resizeTmpfs(mnt, 256)
      await pubSeed.client.publish({ name: 'df@1', dir: input })
      if (!(await pubSeed.client.verify('df@1')).ok) throw new Error('the publish after freeing space does not verify')
      await pubSeed.kill()
      await pubSeed.launch()
      if (!(await pubSeed.client.verify('df@1')).ok) throw new Error('does not verify after a restart')
      tally.ok()
    } catch (err) { tally.fail(3, err) }
  } finally {
    await c.close()
    for (const m of mounts) await unmount(m)
  }
  return tally
}

/** Another process fills the filesystem: write until ENOSPC, 1 MiB at a time (bounded by the filesystem's size). */
async function fillUp (path: string): Promise<void> {
  const fh = await open(path, 'w')
  try {
    const block = Buffer.alloc(MiB, 1)
    const fs = await statfs(path)
    const limit = Number(fs.blocks) * Number(fs.bsize) / MiB + 1
    for (let i = 0; i < limit; i++) await fh.write(block)
    throw new Error('the filesystem did not fill up')
  } catch (err: any) {
    if (err.code !== 'ENOSPC') throw err
  } finally { await fh.close() }
}

/** One seed and `labs` labs fetching the same release at once: no failures; peak RSS reported. */
export async function load (dir: string, labs: number, entries = 16_000): Promise<Tally> {
  const tally = new Tally(`load (1 seed, ${labs} labs at once)`)
  const c = new Cluster(dir)
  try {
    const input = join(dir, 'in')
    await generateRelease({ seed: 101, entries, dir: input })
    const seed = await c.startSeed()
    await seed.client.publish({ name: 'load@1', dir: input })
    // started one after another (what is under test is the fetch at once, not 25 processes booting at once)
    const all: DaemonProcess[] = []
    for (let i = 0; i < labs; i++) all.push(await c.startLab(`lab${i}`))
    const began = Date.now()
    const results = await Promise.allSettled(all.map(async l => await l.fetch('load@1', 600_000)))
    tally.figures.seconds = +((Date.now() - began) / 1000).toFixed(1)
    for (const [i, r] of results.entries()) {
      try {
        if (r.status === 'rejected') throw r.reason
        await expectVerified(all[i], 'load@1', input, r.value)
        tally.ok()
      } catch (err) { tally.fail(i, err) }
    }
    tally.figures.seedPeakRssMiB = Math.round(await seed.peakRssBytes() / MiB)
    const rss = await Promise.all(all.map(async l => await l.peakRssBytes()))
    tally.figures.labPeakRssMiBMax = Math.round(Math.max(...rss) / MiB)
  } finally { await c.close() }
  return tally
}

/** gc and rollback at random moments of an update, and a restart: the update ends verified, nothing lost. */
export async function gcRace (dir: string, n: number): Promise<Tally> {
  const tally = new Tally('gc and rollback racing fetches and restarts')
  const c = new Cluster(dir)
  try {
    const v1 = join(dir, 'v1')
    const v2 = join(dir, 'v2')
    await generateRelease({ seed: 111, entries: 8_000, dir: v1 })
    await generateNextRelease(v1, v2, { seed: 112, modifyFraction: 0.1, appendFraction: 0.2 })
    const seed = await c.startSeed({ uploadBytesPerSecond: 3 * MiB })
    await seed.client.publish({ name: 'gr@1', dir: v1 })
    await seed.client.publish({ name: 'gr@2', dir: v2 })
    const rand = prng(1111)
    for (let t = 0; t < n; t++) {
      let running: DaemonProcess | undefined
      try {
        const lab = running = await c.startLab(`lab${t}`)
        if ((await lab.fetch('gr@1')).state !== 'done') throw new Error('v1 fetch failed')
        const started = await lab.client.startFetch({ name: 'gr@2' })
        const actions = ['gc', 'rollback', 'restart', 'gc']
        for (const act of actions) {
          await sleep(rand() * 800)
          if (rand() < 0.4) continue
          if (act === 'gc') await lab.client.gc().catch(() => {})
          else if (act === 'rollback') await lab.client.rollback('gr').catch(() => {})
          else { await lab.kill(); await lab.launch() }
        }
        const resumed = (await lab.client.status()).fetches.find(f => f.name === 'gr@2')
        const done = resumed != null ? await lab.waitFetch(resumed.id, 180_000) : await lab.waitFetch(started.id, 180_000).catch(async () => await lab.fetch('gr@2', 180_000))
        await expectVerified(lab, 'gr@2', v2, done)
        if (!(await lab.client.verify('gr@1')).ok) throw new Error('v1 lost chunks')
        tally.ok()
      } catch (err) { tally.fail(t, err) } finally { await running?.kill() }
    }
  } finally { await c.close() }
  return tally
}
