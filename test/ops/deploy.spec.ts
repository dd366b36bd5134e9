// The deployment files stay valid: no Docker engine runs here, so what compose and the image rely on is
// checked directly — referenced files exist, commands exist, dashboards query metrics that exist, alert
// rules pass promtool.
import { expect } from 'chai'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from 'prom-client'
import YAML from 'yaml'
import { createMetrics } from '../../daemon/metrics.js'

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
    for (const script of ['deploy/docker/entrypoint.sh', 'deploy/docker/seed-publish.sh']) {
      expect(existsSync(join(root, script)), script).to.equal(true)
      expect(dockerfile).to.include(script)
    }
    expect(compose.services.seed.entrypoint.join(' ')).to.include('entrypoint.sh start').and.include('seed-publish.sh')
    // what the scripts call exists in the build
    expect(existsSync(join(root, 'build/cli/heraldd.js'))).to.equal(true)
    expect(existsSync(join(root, 'build/cli/herald.js'))).to.equal(true)
    expect(read('deploy/docker/seed-publish.sh')).to.include('/opt/herald/build/test/fixtures/release-gen.js')
    expect(existsSync(join(root, 'build/test/fixtures/release-gen.js'))).to.equal(true)
    expect(compose.services['lab-a'].environment.HERALD_TRUSTED_PUBLISHERS).to.equal('/shared/publisher.pub')
  })

  it('should chart only metrics the daemon registers', async () => {
    const registry = new Registry()
    createMetrics(registry)
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
