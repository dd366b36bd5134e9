import { expect } from 'chai'
import { RepeatWarning } from '../../daemon/repeat-warning.js'

describe('RepeatWarning', () => {
  it('should warn the first failure per key, then at most once per interval with the count in between', () => {
    const lines: Array<{ level: string, obj: any }> = []
    const log = {
      warn: (obj: unknown) => { lines.push({ level: 'warn', obj }) },
      debug: (obj: unknown) => { lines.push({ level: 'debug', obj }) },
      info: () => {},
      error: () => {}
    }
    const w = new RepeatWarning(log, 60_000)
    expect(w.warn('/ip4/10.0.0.1/tcp/4480', { addr: 'a' }, 'bootstrap dial failed', 0)).to.equal(true)
    expect(w.warn('/ip4/10.0.0.2/tcp/4480', { addr: 'b' }, 'bootstrap dial failed', 1)).to.equal(true)
    for (let t = 10_000; t < 60_000; t += 10_000) expect(w.warn('/ip4/10.0.0.1/tcp/4480', { addr: 'a' }, 'bootstrap dial failed', t)).to.equal(false)
    expect(w.warn('/ip4/10.0.0.1/tcp/4480', { addr: 'a' }, 'bootstrap dial failed', 60_000)).to.equal(true)
    const warns = lines.filter(l => l.level === 'warn')
    expect(warns.map(l => l.obj)).to.deep.equal([{ addr: 'a' }, { addr: 'b' }, { addr: 'a', repeatedSinceLastWarning: 5 }])
    expect(lines.filter(l => l.level === 'debug')).to.have.length(5)
  })
})
