// The V8 heap flags heraldd needs reach every way it is started: the executable's #! line, the systemd unit,
// and the image (whose entry point runs the executable).
import { expect } from 'chai'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HEAP_FLAGS, missingHeapFlags } from '../../daemon/runtime.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const heraldd = join(root, 'build/cli/heraldd.js')

describe('V8 heap flags', () => {
  it('should name the flags missing from execArgv or NODE_OPTIONS, whatever value a given flag has', () => {
    expect(missingHeapFlags([], '')).to.deep.equal([...HEAP_FLAGS])
    expect(missingHeapFlags([...HEAP_FLAGS], '')).to.deep.equal([])
    expect(missingHeapFlags(['--max-semi-space-size=64'], '--initial_old_space_size=1024')).to.deep.equal([])
    expect(missingHeapFlags(['--max-old-space-size=4096'], '')).to.have.length(2)
  })

  it('should start the heraldd executable with them through its #! line', () => {
    const shebang = readFileSync(heraldd, 'utf8').split('\n')[0]
    expect(shebang.startsWith('#!/usr/bin/env -S node ')).to.equal(true)
    // what the kernel runs for `heraldd …`: env splits the rest of the line into node and its flags
    const argv = shebang.slice(2).split(' ')
    const probe = execFileSync(argv[0], [...argv.slice(1), '-p', 'JSON.stringify(process.execArgv)']).toString()
    expect(missingHeapFlags(JSON.parse(probe), '')).to.deep.equal([])
    expect(execFileSync(argv[0], [...argv.slice(1), heraldd, '--version']).toString().trim()).to.match(/^\d+\.\d+\.\d+/)
  })

  it('should pass them in the systemd unit, which runs node directly', () => {
    const unit = readFileSync(join(root, 'deploy/systemd/heraldd.service'), 'utf8')
    const start = unit.split('\n').find(l => l.startsWith('ExecStart='))
    expect(start).to.not.equal(undefined)
    for (const f of HEAP_FLAGS) expect(start).to.include(f)
  })
})
