// The deployment files stay valid: no Docker engine runs here, so what compose and the image rely on is
// checked directly — referenced files exist, commands exist, dashboards query metrics that exist, alert
// rules pass promtool.
import { expect } from 'chai'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from 'prom-client'
import YAML from 'yaml'
import { createMetrics } from '../../daemon/metrics.js'
import { createSyncMetrics } from '../../daemon/sync/metrics.js'
import { createEventsMetrics } from '../../daemon/events/metrics.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const read = (p: string): string => readFileSync(join(root, p), 'utf8')

function which (cmd: string): string | undefined {
  try { return execFileSync('sh', ['-c', `command -v ${cmd}`]).toString().trim() || undefined } catch { return undefined }
}

describe('deployment files', () => {
  const compose = YAML.parse(read('docker-compose.yml'))

  it('should mount only files that exist and run commands the image has', () => {
    for (const [name, svc] of Object.entries<any>(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const src = String(v).split(':')[0]
        if (src.startsWith('.')) expect(existsSync(join(root, src)), `${name}: ${src}`).to.equal(true)
      }
    }
    const dockerfile = read('Dockerfile')
    for (const script of ['deploy/docker/entrypoint.sh', 'deploy/docker/seed-publish.sh', 'deploy/docker/seed-demo.sh', 'deploy/docker/init-shared.sh']) {
      expect(existsSync(join(root, script)), script).to.equal(true)
      expect(dockerfile).to.include(script)
    }
    expect(compose.services.seed.entrypoint).to.deep.equal(['seed-demo.sh'])
    expect(read('deploy/docker/seed-demo.sh')).to.include('entrypoint.sh" start').and.include('seed-publish.sh')
    // what the scripts call exists in the build
    expect(existsSync(join(root, 'build/cli/heraldd.js'))).to.equal(true)
    expect(existsSync(join(root, 'build/cli/herald.js'))).to.equal(true)
    expect(read('deploy/docker/seed-publish.sh')).to.include('"${APP_DIR:-/opt/herald}/build/test/fixtures/release-gen.js"')
    expect(existsSync(join(root, 'build/test/fixtures/release-gen.js'))).to.equal(true)
    expect(compose.services['lab-a'].environment.HERALD_TRUSTED_PUBLISHERS).to.equal('/shared/publisher.pub')
  })

  it('should chart only metrics the daemon registers', async () => {
    const registry = new Registry()
    createMetrics(registry)
    createSyncMetrics(registry)
    createEventsMetrics(registry)
    const names = new Set((await registry.getMetricsAsJSON()).flatMap(m => [m.name, `${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`]))
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/herald.json'))
    const alerts = YAML.parse(read('deploy/prometheus/alerts.yml'))
    const exprs = [...dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr)), ...alerts.groups.flatMap((g: any) => g.rules.map((r: any) => r.expr))]
    for (const expr of exprs) {
      for (const used of String(expr).match(/herald_[a-z0-9_]+/g) ?? []) expect(names.has(used), `${used} in ${expr}`).to.equal(true)
    }
    for (const rule of alerts.groups.flatMap((g: any) => g.rules)) {
      const anchor = String(rule.annotations.runbook_url).split('#')[1]
      expect(read('docs/OPERATIONS.md').toLowerCase(), rule.alert).to.include(`### ${anchor}`)
    }
  })

  it('should pass promtool on the alert rules', function () {
    const promtool = which('promtool')
    if (promtool == null) {
      // CI installs the prometheus package; on a developer machine without it, say so loudly
      if (process.env.CI != null) expect.fail('promtool is not installed (apt-get install prometheus)')
      this.skip()
    }
    execFileSync(promtool, ['check', 'rules', join(root, 'deploy/prometheus/alerts.yml')])
  })

  it('should have a hardened systemd unit', () => {
    const unit = read('deploy/systemd/heraldd.service')
    for (const line of ['User=herald', 'NoNewPrivileges=true', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/herald', 'Restart=on-failure']) expect(unit).to.include(line)
  })
})

describe('container entry point', function () {
  this.timeout(60_000)

  it('should init the data dir once and exec heraldd start, stopping cleanly on SIGTERM', async () => {
    const { mkdtemp, rm, symlink, chmod, mkdir, stat } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { spawn } = await import('node:child_process')
    const dir = await mkdtemp(join(tmpdir(), 'herald-entry-'))
    try {
      const bin = join(dir, 'bin')
      await mkdir(bin)
      for (const name of ['heraldd', 'herald']) {
        await chmod(join(root, `build/cli/${name}.js`), 0o755)
        await symlink(join(root, `build/cli/${name}.js`), join(bin, name))
      }
      const data = join(dir, 'data')
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_')))
      const run = async (): Promise<{ code: number | null, out: string }> => {
        const child = spawn('sh', [join(root, 'deploy/docker/entrypoint.sh'), 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--metrics-port', '0'], {
          env: { ...env, PATH: `${bin}:${process.env.PATH ?? ''}`, HERALD_SEED: 'true', HERALD_DATA_DIR: data, HERALD_LOG_LEVEL: 'warn' }
        })
        let out = ''
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => { reject(new Error(`no ready banner:\n${out}`)) }, 30_000)
          const onData = (b: Buffer): void => {
            out += b.toString()
            if (out.includes(' ready ')) { clearTimeout(timer); resolve() }
          }
          child.stdout.on('data', onData)
          child.stderr.on('data', (b: Buffer) => { out += b.toString() })
          child.once('exit', () => { clearTimeout(timer); reject(new Error(`exited early:\n${out}`)) })
        })
        child.removeAllListeners('exit')
        const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
        child.kill('SIGTERM')
        return { code: await exited, out }
      }
      const first = await run()
      expect(first.code).to.equal(0)
      expect(first.out).to.match(/seed=true/)
      const key = await readFile(join(data, 'publisher.key'))
      expect((await stat(join(data, 'publisher.key'))).mode & 0o777).to.equal(0o600)
      const second = await run()
      expect(second.code).to.equal(0)
      expect((await readFile(join(data, 'publisher.key'))).equals(key), 'keys are never overwritten').to.equal(true)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
