// The Grafana dashboard: every query is filtered by the `instance` variable, names only metrics the daemon
// registers, parses as PromQL (promtool), and the panels operators asked for are there: the DHT provide
// backlog, peer errors that read 0 rather than "No data", per-release progress.
import { expect } from 'chai'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from 'prom-client'
import YAML from 'yaml'
import { createMetrics } from '../../daemon/metrics.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/dashboards/herald.json'), 'utf8'))
const targets: Array<{ panel: string, expr: string }> = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => ({ panel: p.title, expr: String(t.expr) })))

function which (cmd: string): string | undefined {
  try { return execFileSync('sh', ['-c', `command -v ${cmd}`]).toString().trim() || undefined } catch { return undefined }
}

/** The expression as Grafana sends it with "All" selected. */
const expand = (expr: string): string => expr.replaceAll('$instance', '.*')

describe('grafana dashboard', function () {
  this.timeout(60_000)

  it('should offer an instance variable and filter every metric of every query by it', () => {
    const variable = dashboard.templating.list.find((v: any) => v.name === 'instance')
    expect(variable, 'instance variable').to.not.equal(undefined)
    expect(variable.query.query).to.match(/^label_values\(herald_[a-z_]+, instance\)$/)
    expect(variable.includeAll).to.equal(true)
    expect(targets.length).to.be.greaterThan(10)
    for (const { panel, expr } of targets) {
      const selectors = [...expr.matchAll(/(herald_[a-z0-9_]+)(\{[^}]*\})?/g)]
      expect(selectors.length, `${panel}: ${expr}`).to.be.greaterThan(0)
      for (const [whole, , braces] of selectors) expect(braces ?? '', `${panel}: ${whole} in ${expr}`).to.include('instance=~"$instance"')
    }
  })

  it('should query only metrics that daemon/metrics.ts registers', async () => {
    const registry = new Registry()
    createMetrics(registry)
    const names = new Set((await registry.getMetricsAsJSON()).map(m => m.name))
    const variable = dashboard.templating.list.find((v: any) => v.name === 'instance')
    const used = [variable.query.query, ...targets.map(t => t.expr)].flatMap(e => String(e).match(/herald_[a-z0-9_]+/g) ?? [])
    for (const name of used) expect(names.has(name), name).to.equal(true)
  })

  it('should have panels for the provide backlog, peer errors and per-release progress', () => {
    const panel = (title: RegExp): any => dashboard.panels.find((p: any) => title.test(p.title))
    expect(panel(/provide backlog/i).targets.map((t: any) => t.expr).join(' ')).to.include('herald_dht_provide_queue_backlog{')
    expect(panel(/peer errors/i).targets[0].expr).to.match(/ or vector\(0\)$/)
    // no metric carries a release's size: progress is the bytes received per release
    expect(panel(/progress/i).targets[0].expr).to.match(/by \([^)]*release[^)]*\) \(herald_release_received_bytes_total\{/)
    const ids = dashboard.panels.map((p: any) => p.id)
    expect(new Set(ids).size).to.equal(ids.length)
  })

  describe('with promtool', () => {
    let promtool: string
    let dir: string
    before(function () {
      const found = which('promtool')
      if (found == null) {
        if (process.env.CI != null) throw new Error('promtool is not installed (apt-get install prometheus)')
        this.skip()
      }
      promtool = found!
    })
    beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'herald-grafana-')) })
    afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

    it('should parse every query as PromQL', () => {
      const rules = { groups: [{ name: 'dashboard', rules: targets.map((t, i) => ({ record: `dashboard:query_${i}`, expr: expand(t.expr) })) }] }
      writeFileSync(join(dir, 'rules.yml'), YAML.stringify(rules))
      const r = spawnSync(promtool, ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' })
      expect(r.status, `${r.stdout}${r.stderr}`).to.equal(0)
    })

    it('should show 0 peer errors when a daemon has never counted one, and the rate when it has', () => {
      const expr = expand(dashboard.panels.find((p: any) => /peer errors/i.test(p.title)).targets[0].expr)
      const tests = {
        rule_files: [],
        evaluation_interval: '1m',
        tests: [
          {
            // a fresh daemon: prom-client exports no series for a labelled counter never incremented
            interval: '1m',
            input_series: [{ series: 'herald_p2p_peers_connected{instance="lab-a:9480"}', values: '1x10' }],
            promql_expr_test: [{ expr, eval_time: '5m', exp_samples: [{ labels: '{}', value: 0 }] }]
          },
          {
            interval: '1m',
            input_series: [{ series: 'herald_peer_errors_total{instance="lab-a:9480",kind="bad_hash"}', values: '0+60x10' }],
            promql_expr_test: [{ expr, eval_time: '5m', exp_samples: [{ labels: '{}', value: 1 }] }]
          }
        ]
      }
      writeFileSync(join(dir, 'panel.test.yml'), YAML.stringify(tests))
      const r = spawnSync(promtool, ['test', 'rules', join(dir, 'panel.test.yml')], { encoding: 'utf8' })
      expect(r.status, `${r.stdout}${r.stderr}`).to.equal(0)
    })
  })
})
