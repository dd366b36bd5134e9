// docs/openapi.yaml describes every route the API server registers, and a live daemon's answers
// validate against its response schemas.
import { expect } from 'chai'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import YAML from 'yaml'
import { startApiServer } from '../../daemon/api/server.js'
import { DaemonProcess } from '../helpers/daemon-process.js'
import { generateRelease } from '../fixtures/release-gen.js'
import type { HeraldService } from '../../daemon/types.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

describe('OpenAPI document', function () {
  this.timeout(120_000)
  let spec: any
  let ajv: Ajv

  before(async () => {
    spec = YAML.parse(await readFile(join(root, 'docs/openapi.yaml'), 'utf8'))
    ajv = new Ajv({ strict: false })
    ajv.addSchema({ $id: 'openapi', components: spec.components })
  })

  function validate (path: string, method: string, status: number, body: unknown): void {
    const op = spec.paths[path]?.[method.toLowerCase()]
    expect(op, `${method} ${path} documented`).to.not.equal(undefined)
    const response = op.responses[String(status)] ?? op.responses.default
    expect(response, `${method} ${path} ${status} documented`).to.not.equal(undefined)
    const resolved = response.$ref != null ? spec.components.responses[response.$ref.split('/').pop()] : response
    const schema = resolved.content['application/json'].schema
    const check = ajv.compile(rewrite(schema))
    expect(check(body), `${method} ${path}: ${ajv.errorsText(check.errors)}`).to.equal(true)
  }

  function rewrite (schema: any): any {
    return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/'))
  }

  it('should document every registered route', async () => {
    const server = await startApiServer({ service: {} as HeraldService, token: 'x'.repeat(20), host: '127.0.0.1', port: 0 })
    try {
      for (const r of server.routes()) {
        const path = r.url.replace(/:([a-zA-Z]+)/g, '{$1}')
        expect(spec.paths[path]?.[r.method.toLowerCase()], `${r.method} ${r.url}`).to.not.equal(undefined)
      }
      expect(server.routes().length).to.be.at.least(15)
    } finally {
      await server.stop()
    }
  })

  it('should match what a live daemon answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'herald-openapi-'))
    const seed = await DaemonProcess.start({ dataDir: join(dir, 'seed'), seed: true })
    try {
      await generateRelease({ seed: 31, entries: 1_000, dir: join(dir, 'in') })
      const auth = { authorization: `Bearer ${seed.token}`, 'content-type': 'application/json' }
      const call = async (method: string, url: string, body?: unknown): Promise<{ status: number, json: unknown }> => {
        const res = await fetch(seed.apiUrl + url, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) })
        return { status: res.status, json: await res.json() }
      }
      // publish is a job: its start, then its end, each as documented
      const started = await call('POST', '/v1/publish', { name: 'api@1', dir: join(dir, 'in') })
      validate('/v1/publish', 'POST', started.status, started.json)
      expect(started.status).to.equal(202)
      await seed.client.followPublish((started.json as any).id, () => {})
      const cases: Array<[string, string, string, unknown?]> = [
        ['GET', '/v1/publish/{id}', `/v1/publish/${String((started.json as any).id)}`],
        ['GET', '/v1/publish/{id}', '/v1/publish/unknown'],
        ['GET', '/healthz', '/healthz'],
        ['GET', '/readyz', '/readyz'],
        ['GET', '/v1/releases', '/v1/releases'],
        ['GET', '/v1/status', '/v1/status'],
        ['GET', '/v1/peers', '/v1/peers'],
        ['GET', '/v1/plan/{name}', '/v1/plan/api@1'],
        ['POST', '/v1/releases/{name}/verify', '/v1/releases/api@1/verify'],
        ['DELETE', '/v1/releases/{name}/pin', '/v1/releases/api@1/pin'],
        ['POST', '/v1/releases/{name}/pin', '/v1/releases/api@1/pin'],
        ['POST', '/v1/gc', '/v1/gc'],
        ['GET', '/v1/sync', '/v1/sync'],
        ['POST', '/v1/sync', '/v1/sync'],
        ['POST', '/v1/fetch', '/v1/fetch', { name: 'api@1' }],
        ['GET', '/v1/fetch/{id}', '/v1/fetch/unknown'],
        ['POST', '/v1/datasets/{dataset}/rollback', '/v1/datasets/api/rollback', {}]
      ]
      for (const [method, path, url, body] of cases) {
        const r = await call(method, url, body)
        validate(path, method, r.status, r.json)
      }
    } finally {
      await seed.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
