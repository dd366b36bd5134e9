// The Helm chart, rendered by test/ops/helm-render.ts (no helm client is packaged for Debian or npm) and
// checked as a cluster would see it: the image's numeric user, the restricted Pod Security level, values
// that must be set, the seed's input volume, config keys, and the optional monitoring objects.
import { expect } from 'chai'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'
import { loadConfig, parseConfig } from '../../daemon/config.js'
import { renderChart, TemplateFail, type RenderOptions } from './helm-render.js'
import { parseDocuments } from '../../daemon/sync/document.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const chartDir = join(root, 'deploy/helm/herald')
const KEY = 'ed25519:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA'
const MONITORING = ['v1', 'apps/v1', 'monitoring.coreos.com/v1']

const render = (values: Record<string, any> = {}, opts: RenderOptions = {}): ReturnType<typeof renderChart> =>
  renderChart(chartDir, { ...opts, values: { trustedPublisher: KEY, ...values } })
const find = (docs: any[], kind: string, name?: string): any => docs.find(d => d.kind === kind && (name == null || d.metadata.name === name))

/** What the "restricted" Pod Security Standard (Kubernetes 1.30) rejects in a pod spec. */
function restrictedViolations (spec: any): string[] {
  const v: string[] = []
  const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']
  for (const vol of spec.volumes ?? []) {
    const type = Object.keys(vol).find(k => k !== 'name')!
    if (!allowedVolumes.includes(type)) v.push(`volume ${String(vol.name)}: ${type}`)
  }
  if (spec.hostNetwork === true || spec.hostPID === true || spec.hostIPC === true) v.push('host namespaces')
  const pod = spec.securityContext ?? {}
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {}
    for (const p of c.ports ?? []) if (p.hostPort != null && p.hostPort !== 0) v.push(`${String(c.name)}: hostPort ${String(p.hostPort)}`)
    if (sc.privileged === true) v.push(`${String(c.name)}: privileged`)
    if (sc.allowPrivilegeEscalation !== false) v.push(`${String(c.name)}: allowPrivilegeEscalation`)
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) v.push(`${String(c.name)}: runAsNonRoot`)
    if ((sc.runAsUser ?? pod.runAsUser) === 0) v.push(`${String(c.name)}: runAsUser 0`)
    if (!['RuntimeDefault', 'Localhost'].includes((sc.seccompProfile ?? pod.seccompProfile)?.type)) v.push(`${String(c.name)}: seccompProfile`)
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) v.push(`${String(c.name)}: capabilities not dropped`)
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') v.push(`${String(c.name)}: adds ${String(cap)}`)
  }
  return v
}

describe('helm chart', () => {
  const dockerUser = readFileSync(join(root, 'Dockerfile'), 'utf8').match(/^USER (\d+):(\d+)$/m)

  it('should render the seed, the labs and their config with no monitoring objects by default', () => {
    const { docs } = render()
    expect(docs.map(d => `${String(d.kind)}/${String(d.metadata.name)}`).sort()).to.deep.equal([
      'ConfigMap/herald-config', 'DaemonSet/herald-lab', 'Service/herald-lab-metrics', 'Service/herald-seed', 'StatefulSet/herald-seed'
    ])
  })

  it('should run as the image\'s numeric user, with fsGroup, read-only root and /tmp writable', () => {
    expect(dockerUser, 'Dockerfile USER uid:gid').to.not.equal(null)
    const [uid, gid] = [Number(dockerUser![1]), Number(dockerUser![2])]
    const { docs } = render()
    for (const kind of ['StatefulSet', 'DaemonSet']) {
      const spec = find(docs, kind).spec.template.spec
      expect(spec.securityContext, kind).to.include({ runAsNonRoot: true, runAsUser: uid, runAsGroup: gid, fsGroup: gid })
      const c = spec.containers.find((c: any) => c.name === 'heraldd')
      expect(c.securityContext.readOnlyRootFilesystem, kind).to.equal(true)
      expect(c.volumeMounts.map((m: any) => m.mountPath), kind).to.include.members(['/var/lib/herald', '/tmp'])
      expect(spec.volumes.find((v: any) => v.name === 'tmp').emptyDir).to.deep.equal({})
    }
  })

  it('should meet the restricted Pod Security level, except the lab\'s hostPath and hostPort when chosen', () => {
    const { docs } = render()
    expect(restrictedViolations(find(docs, 'StatefulSet').spec.template.spec)).to.deep.equal([])
    // the defaults keep lab data on the node: the documented exceptions, and nothing else
    expect(restrictedViolations(find(docs, 'DaemonSet').spec.template.spec)).to.deep.equal(['volume data: hostPath', 'heraldd: hostPort 4480'])
    const strict = render({ lab: { storage: 'emptyDir', hostPort: false } })
    expect(restrictedViolations(find(strict.docs, 'DaemonSet').spec.template.spec)).to.deep.equal([])
  })

  it('should never let the kubelet create a root-owned lab directory unless an init step owns it', () => {
    const plain = find(render().docs, 'DaemonSet').spec.template.spec
    expect(plain.volumes.find((v: any) => v.name === 'data').hostPath).to.deep.equal({ path: '/var/lib/herald', type: 'Directory' })
    expect(plain.initContainers).to.equal(undefined)
    const init = find(render({ lab: { hostPathInit: true } }).docs, 'DaemonSet').spec.template.spec
    expect(init.volumes.find((v: any) => v.name === 'data').hostPath.type).to.equal('DirectoryOrCreate')
    const owner = init.initContainers[0]
    expect(owner.command).to.deep.equal(['init-shared.sh', '/var/lib/herald', `${dockerUser![1]}:${dockerUser![2]}`, '0700'])
    expect(owner.securityContext.capabilities.add).to.deep.equal(['CHOWN', 'FOWNER'])
  })

  it('should refuse to render labs without a trusted publisher, and render the seed alone', () => {
    for (const trustedPublisher of ['', '   ', null]) {
      expect(() => render({ trustedPublisher }), JSON.stringify(trustedPublisher)).to.throw(TemplateFail, /trustedPublisher is required/)
    }
    const seedOnly = render({ trustedPublisher: '', lab: { enabled: false } })
    expect(find(seedOnly.docs, 'DaemonSet')).to.equal(undefined)
    expect(find(seedOnly.docs, 'StatefulSet')).to.not.equal(undefined)
    expect(seedOnly.notes).to.include('--set lab.enabled=true --set trustedPublisher=')
    const env = find(render().docs, 'DaemonSet').spec.template.spec.containers[0].env
    expect(env.find((e: any) => e.name === 'HERALD_TRUSTED_PUBLISHERS').value).to.equal(KEY)
  })

  it('should mount the seed\'s release input read-only, and say when it has no source', () => {
    const spec = find(render({ seed: { input: { enabled: true, existingClaim: 'uniprot-releases' } } }).docs, 'StatefulSet').spec.template.spec
    expect(spec.volumes.find((v: any) => v.name === 'input').persistentVolumeClaim).to.deep.equal({ claimName: 'uniprot-releases', readOnly: true })
    expect(spec.containers[0].volumeMounts.find((m: any) => m.name === 'input')).to.deep.equal({ name: 'input', mountPath: '/srv/herald', readOnly: true })
    expect(restrictedViolations(spec)).to.deep.equal([])
    expect(() => render({ seed: { input: { enabled: true } } })).to.throw(TemplateFail, /existingClaim or seed.input.hostPath/)
  })

  it('should pass config keys as a config file the daemon accepts, per role', () => {
    const { docs } = render({
      config: { announce: ['/dns4/herald.example.org/tcp/4480'], dht: { provideChunks: false } },
      lab: { config: { fetch: { hedgeAfterMs: 3000 } } },
      seed: { config: { dht: { provideQueueMax: 5000 } } }
    })
    const cm = find(docs, 'ConfigMap', 'herald-config')
    const lab = JSON.parse(cm.data['lab.json'])
    const seed = JSON.parse(cm.data['seed.json'])
    expect(lab).to.deep.equal({ announce: ['/dns4/herald.example.org/tcp/4480'], dht: { provideChunks: false }, fetch: { hedgeAfterMs: 3000 } })
    expect(seed).to.deep.equal({ announce: ['/dns4/herald.example.org/tcp/4480'], dht: { provideChunks: false, provideQueueMax: 5000 } })
    // the daemon's own schema accepts both (unknown keys would be rejected)
    expect(parseConfig({ ...lab, dataDir: '/var/lib/herald' }).fetch.hedgeAfterMs).to.equal(3000)
    expect(parseConfig({ ...seed, dataDir: '/var/lib/herald' }).dht.provideQueueMax).to.equal(5000)
    for (const [kind, file] of [['DaemonSet', 'lab.json'], ['StatefulSet', 'seed.json']]) {
      const spec = find(docs, kind).spec.template.spec
      const c = spec.containers[0]
      expect(c.env.find((e: any) => e.name === 'HERALD_CONFIG').value).to.equal(`/etc/herald/${file}`)
      expect(c.volumeMounts.find((m: any) => m.name === 'config')).to.deep.equal({ name: 'config', mountPath: '/etc/herald', readOnly: true })
      expect(spec.volumes.find((v: any) => v.name === 'config').configMap.name).to.equal('herald-config')
    }
    expect(JSON.parse(find(render().docs, 'ConfigMap', 'herald-config').data['lab.json'])).to.deep.equal({})
  })

  it('should give each daemon an environment and config file that heraldd\'s config loader accepts, on the chart\'s ports', () => {
    // the image's ENV line, as the container starts with it
    const imageEnv = Object.fromEntries([...readFileSync(join(root, 'Dockerfile'), 'utf8').matchAll(/^ENV (.+)$/gm)]
      .flatMap(m => m[1].trim().split(/\s+/)).map(kv => kv.split('=') as [string, string]))
    expect(imageEnv.HERALD_METRICS_HOST).to.equal('0.0.0.0')
    const { docs } = render({ p2pPort: 5000, metricsPort: 9555, config: { dht: { provideChunks: false } }, lab: { config: { fetch: { hedgeAfterMs: 3000 } } } })
    const cm = find(docs, 'ConfigMap', 'herald-config')
    const dir = mkdtempSync(join(tmpdir(), 'herald-chart-'))
    try {
      for (const kind of ['StatefulSet', 'DaemonSet']) {
        const c = find(docs, kind).spec.template.spec.containers[0]
        const env: Record<string, string> = { ...imageEnv, ...Object.fromEntries(c.env.map((e: any) => [e.name, e.value])) }
        const file = join(dir, env.HERALD_CONFIG.split('/').at(-1)!)
        writeFileSync(file, cm.data[env.HERALD_CONFIG.split('/').at(-1)!])
        env.HERALD_CONFIG = file
        const config = loadConfig({}, env)
        expect(config.seed, kind).to.equal(kind === 'StatefulSet')
        expect(config.listen, kind).to.deep.equal(['/ip4/0.0.0.0/tcp/5000'])
        expect(c.ports.find((p: any) => p.name === 'p2p').containerPort).to.equal(5000)
        // the probes reach the metrics listener from outside the pod
        expect(config.metrics, kind).to.include({ host: '0.0.0.0', port: 9555 })
        expect(c.ports.find((p: any) => p.name === 'metrics').containerPort).to.equal(9555)
        expect(config.dht.provideChunks, kind).to.equal(false)
        if (kind === 'DaemonSet') {
          expect(config.trustedPublishers).to.deep.equal([KEY])
          expect(config.bootstrap).to.deep.equal(['/dns4/herald-seed/tcp/5000'])
          expect(config.fetch.hedgeAfterMs).to.equal(3000)
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('should mount DatabaseSync documents for the labs from the chart\'s ConfigMap or one managed elsewhere', async () => {
    const text = 'apiVersion: herald.io/v1\nkind: DatabaseSync\nmetadata: { name: prod }\nspec:\n  databases:\n    - { name: uniprot, version: "2024-03" }\n'
    const { docs } = render({ lab: { sync: { enabled: true, documents: { 'prod.yaml': text } } } })
    const cm = find(docs, 'ConfigMap', 'herald-sync')
    expect(cm.data['prod.yaml']).to.equal(text)
    expect(parseDocuments('prod.yaml', cm.data['prod.yaml'])[0].spec.databases[0].name).to.equal('uniprot')
    const pod = find(docs, 'DaemonSet').spec.template.spec
    const c = pod.containers[0]
    expect(c.env.find((e: any) => e.name === 'HERALD_SYNC_PATH').value).to.equal('/etc/herald-sync')
    expect(c.volumeMounts.find((m: any) => m.name === 'sync')).to.deep.equal({ name: 'sync', mountPath: '/etc/herald-sync', readOnly: true })
    expect(pod.volumes.find((v: any) => v.name === 'sync').configMap.name).to.equal('herald-sync')
    expect(loadConfig({}, { HERALD_DATA_DIR: '/var/lib/herald', HERALD_SYNC_PATH: '/etc/herald-sync' }).sync.path).to.equal('/etc/herald-sync')
    const external = render({ lab: { sync: { enabled: true, configMap: 'lab-dbs' } } }).docs
    expect(find(external, 'ConfigMap', 'herald-sync')).to.equal(undefined)
    expect(find(external, 'DaemonSet').spec.template.spec.volumes.find((v: any) => v.name === 'sync').configMap.name).to.equal('lab-dbs')
    expect(find(render().docs, 'DaemonSet').spec.template.spec.volumes.find((v: any) => v.name === 'sync')).to.equal(undefined)
  })

  it('should create the ServiceMonitor and PrometheusRule only where the CRDs exist, with their labels', () => {
    const values = { serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus' } }, prometheusRule: { enabled: true } }
    const without = render(values)
    expect(find(without.docs, 'ServiceMonitor')).to.equal(undefined)
    expect(find(without.docs, 'PrometheusRule')).to.equal(undefined)
    expect(without.notes).to.include('no ServiceMonitor was created').and.include('no PrometheusRule was created')
    const withCrd = render(values, { apiVersions: MONITORING })
    const sm = find(withCrd.docs, 'ServiceMonitor')
    expect(sm.metadata.labels).to.include({ release: 'kube-prometheus', 'app.kubernetes.io/instance': 'herald' })
    expect(sm.spec.endpoints[0]).to.deep.equal({ port: 'metrics', path: '/metrics', interval: '30s' })
    expect(withCrd.notes).to.not.include('WARNING')
    expect(find(render({}, { apiVersions: MONITORING }).docs, 'ServiceMonitor')).to.equal(undefined)
  })

  it('should ship the repository\'s alert rules and dashboard, with runbook links made absolute on request', () => {
    const alertsFile = readFileSync(join(root, 'deploy/prometheus/alerts.yml'), 'utf8')
    const dashboardFile = readFileSync(join(root, 'deploy/grafana/dashboards/herald.json'), 'utf8')
    expect(readFileSync(join(chartDir, 'files/alerts.yml'), 'utf8')).to.equal(alertsFile)
    expect(readFileSync(join(chartDir, 'files/herald-dashboard.json'), 'utf8')).to.equal(dashboardFile)
    const alerts = YAML.parse(alertsFile)
    const plain = find(render({ prometheusRule: { enabled: true } }, { apiVersions: MONITORING }).docs, 'PrometheusRule')
    expect(plain.spec).to.deep.equal(alerts)
    const based = find(render({ prometheusRule: { enabled: true, docsBaseUrl: 'https://git.example.org/herald/-/blob/main/' } }, { apiVersions: MONITORING }).docs, 'PrometheusRule')
    const urls = based.spec.groups[0].rules.map((r: any) => r.annotations.runbook_url)
    expect(urls).to.have.length(alerts.groups[0].rules.length)
    for (const u of urls) expect(u).to.match(/^https:\/\/git\.example\.org\/herald\/-\/blob\/main\/docs\/OPERATIONS\.md#heraldd?[a-z]+$/)
    const cm = find(render({ dashboard: { enabled: true } }).docs, 'ConfigMap', 'herald-dashboard')
    expect(cm.metadata.labels.grafana_dashboard).to.equal('1')
    expect(JSON.parse(cm.data['herald.json'])).to.deep.equal(JSON.parse(dashboardFile))
  })

  it('should document every value in the chart README and reference only values that exist', () => {
    const values = YAML.parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8'))
    const readme = readFileSync(join(chartDir, 'README.md'), 'utf8')
    const documented = new Set([...readme.matchAll(/^\| `([A-Za-z0-9_.]+)` \|/gm)].map(m => m[1]))
    const leaves = (o: any, prefix: string): string[] => Object.entries(o).flatMap(([k, v]) => {
      const path = prefix === '' ? k : `${prefix}.${k}`
      if (documented.has(path)) return [path]
      return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0 ? leaves(v, path) : [path]
    })
    for (const path of leaves(values, '')) expect(documented.has(path), `values.yaml ${path} in README.md`).to.equal(true)
    for (const f of readdirSync(join(chartDir, 'templates'))) {
      for (const [, path] of readFileSync(join(chartDir, 'templates', f), 'utf8').matchAll(/\.Values\.([A-Za-z0-9_.]+)/g)) {
        expect(path.split('.').reduce<any>((o, k) => o?.[k], values), `${f}: .Values.${path}`).to.not.equal(undefined)
      }
    }
    const notes = render().notes
    expect(notes).to.include('kubectl exec herald-seed-0 -- cat /var/lib/herald/publisher.pub')
    expect(notes).to.include('install -d -o 10001 -g 10001 -m 0700 /var/lib/herald')
  })
})
