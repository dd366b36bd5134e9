// The hostile suite's score sheet: per scenario, trials run, trials the daemon held (refused the input with a
// typed error, stored nothing bad, kept serving) and trials it failed. Printed once, after the last spec.
export interface Row { scenario: string, trials: number, held: number, failed: number, note: string }

const rows = new Map<string, Row>()

export function record (scenario: string, trials: number, held: number, note = ''): Row {
  const row = { scenario, trials, held, failed: trials - held, note }
  rows.set(scenario, row)
  return row
}

export function table (): string {
  const list = [...rows.values()]
  const w = Math.max(8, ...list.map(r => r.scenario.length))
  const head = `${'scenario'.padEnd(w)}  ${'trials'.padStart(9)}  ${'held'.padStart(9)}  ${'failed'.padStart(6)}  note`
  return [head, ...list.map(r => `${r.scenario.padEnd(w)}  ${String(r.trials).padStart(9)}  ${String(r.held).padStart(9)}  ${String(r.failed).padStart(6)}  ${r.note}`)].join('\n')
}

export const mochaHooks = {
  afterAll (): void {
    if (rows.size > 0) console.log(`\nhostile suite\n${table()}\n`)
  }
}
