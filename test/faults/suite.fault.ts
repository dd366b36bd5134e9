// The fault suite (`npm run test:faults`): every scenario against real heraldd processes on loopback (the
// power-cut one against the real store), its trial count from FAULT_TRIALS_<SCENARIO> or FAULT_TRIALS. Each
// prints trials / held / failed and appends them to build/fault-results.jsonl; docs/RELIABILITY.md keeps
// the last figures.
import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { requireRoot, trials, type Tally } from './harness.js'
import { diskFull, gcRace, killFetch, killSeedPublish, killUpdate, load, powerLossDaemon, powerLossStore, sourceFault } from './scenarios.js'

describe('fault suite', function () {
  this.timeout(0)
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-fault-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  async function held (t: Tally): Promise<void> {
    await t.report()
    expect(t.failed, t.failures.join('; ')).to.equal(0)
    expect(t.held).to.be.greaterThan(0)
  }

  it('should fail with DISK_FULL, keep the store whole and resume once space is freed', async function () {
    requireRoot(this)
    await held(await diskFull(dir))
  })
  it('should end every fetch verified when the lab is SIGKILLed at a random point', async () => { await held(await killFetch(dir, trials('kill_fetch', 20))) })
  it('should never show a partial version in current when the lab is SIGKILLed mid-update', async () => { await held(await killUpdate(dir, trials('kill_update', 10))) })
  it('should keep the seed store whole when the seed is SIGKILLed mid-publish', async () => { await held(await killSeedPublish(dir, trials('kill_seed', 5))) })
  it('should lose nothing acknowledged on a power cut while the store is written', async () => { await held(await powerLossStore(dir, trials('power_store', 10))) })
  it('should open and refetch when a pack lost its tail after a kill mid-fetch', async () => { await held(await powerLossDaemon(dir, trials('power_daemon', 10))) })
  it('should complete from the others when a source peer is killed mid-transfer', async () => { await held(await sourceFault(dir, trials('source_kill', 20), 'kill')) })
  it('should complete from the others when a source peer is frozen mid-transfer', async () => { await held(await sourceFault(dir, trials('source_stop', 5), 'stop')) })
  it('should not fail a fetch or lose a chunk when gc, rollback and restarts race it', async () => { await held(await gcRace(dir, trials('gc_race', 20))) })
  it('should serve one seed and 24 labs at once with no failure', async () => { await held(await load(dir, trials('load_labs', 24))) })
})
