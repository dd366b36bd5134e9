// The systemd unit: parsed, checked against what heraldd really does (its configuration-error exit
// status stops the restart loop) and against docs/OPERATIONS.md (where release files must be staged), and
// verified by systemd-analyze.
import { expect } from 'chai'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exitCodeFor } from '../../daemon/errors.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const unitPath = join(root, 'deploy/systemd/heraldd.service')

/** section → key → values (a key may repeat), comments and blank lines dropped. */
function parseUnit (text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = line.match(/^\[(.+)\]$/)
    if (header != null) { current = new Map(); sections.set(header[1], current); continue }
    const eq = line.indexOf('=')
    if (current == null || eq < 0) throw new Error(`not a unit line: ${line}`)
    const key = line.slice(0, eq)
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)])
  }
  return sections
}

function which (cmd: string): string | undefined {
  try { return execFileSync('sh', ['-c', `command -v ${cmd}`]).toString().trim() || undefined } catch { return undefined }
}

describe('systemd unit', function () {
  this.timeout(60_000)
  const service = parseUnit(readFileSync(unitPath, 'utf8')).get('Service')!
  const one = (key: string): string | undefined => service.get(key)?.at(-1)
  const words = (key: string): string[] => (service.get(key) ?? []).flatMap(v => v.split(/\s+/)).filter(w => w !== '')

  it('should be hardened and run as the herald user', () => {
    expect(one('User')).to.equal('herald')
    expect(one('NoNewPrivileges')).to.equal('true')
    expect(one('ProtectSystem')).to.equal('strict')
    expect(words('ReadWritePaths')).to.deep.equal(['/var/lib/herald'])
    expect(one('CapabilityBoundingSet')).to.equal('')
    expect(one('Restart')).to.equal('on-failure')
  })

  it('should not restart on the exit status heraldd gives a configuration error', () => {
    const prevented = words('RestartPreventExitStatus')
    expect(prevented).to.include(String(exitCodeFor('INVALID_CONFIG')))
    // and that is the status a real heraldd exits with on a broken config file
    const dir = mkdtempSync(join(tmpdir(), 'herald-unit-'))
    try {
      writeFileSync(join(dir, 'config.json'), '{ "listen": ')
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_')))
      const r = spawnSync(process.execPath, [join(root, 'build/cli/heraldd.js'), 'start', '--data-dir', join(dir, 'data'), '--config', join(dir, 'config.json')], { env, encoding: 'utf8', timeout: 30_000 })
      expect(r.stderr).to.include('config.json')
      expect(prevented, `heraldd exited ${String(r.status)}`).to.include(String(r.status))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('should name a publish input directory the daemon can read, and the docs should say why', () => {
    // PrivateTmp and ProtectHome hide /tmp and /home from the daemon, which reads `herald publish` input
    expect(one('PrivateTmp')).to.equal('true')
    expect(one('ProtectHome')).to.equal('true')
    const readOnly = words('ReadOnlyPaths').map(p => p.replace(/^-/, ''))
    expect(readOnly).to.include('/srv/herald')
    for (const p of readOnly) expect(p, p).to.not.match(/^\/(tmp|home|root)(\/|$)/)
    const ops = readFileSync(join(root, 'docs/OPERATIONS.md'), 'utf8')
    expect(ops).to.include('/srv/herald').and.include('PrivateTmp').and.include('ProtectHome').and.include('RestartPreventExitStatus=2')
  })

  it('should pass systemd-analyze verify without a warning', function () {
    const analyze = which('systemd-analyze')
    if (analyze == null) {
      if (process.env.CI != null) throw new Error('systemd-analyze is not installed (apt-get install systemd)')
      this.skip()
    }
    const dir = mkdtempSync(join(tmpdir(), 'herald-unit-'))
    try {
      copyFileSync(unitPath, join(dir, 'heraldd.service'))
      const r = spawnSync(analyze!, ['verify', join(dir, 'heraldd.service')], { encoding: 'utf8' })
      expect(r.status, r.stderr).to.equal(0)
      // bad values are only warnings to systemd: any line about this unit fails the test
      expect(r.stderr.split('\n').filter(l => l.includes('heraldd.service')), r.stderr).to.deep.equal([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
