// The quick subset of the fault suite, run by `npm test`: the cheapest scenarios for one or two trials
// (FAULT_QUICK_TRIALS). The full counts come from `npm run test:faults`.
import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Tally } from './harness.js'
import { killFetch, powerLossStore } from './scenarios.js'

const n = Number(process.env.FAULT_QUICK_TRIALS ?? 1)

describe('fault suite (quick subset)', function () {
  this.timeout(120_000)
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'herald-fault-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  async function held (t: Tally): Promise<void> {
    await t.report()
    expect(t.failed, t.failures.join('; ')).to.equal(0)
  }

  it('should lose nothing acknowledged on a power cut while the store is written', async () => { await held(await powerLossStore(dir, 2 * n)) })
  it('should end a fetch verified when the lab is SIGKILLed at a random point', async () => { await held(await killFetch(dir, n)) })
})
