// GET /v1/events on the real API server: the stream, its type filter, Last-Event-ID replay, and rollbacks
// through the API reported as release.switched.
import { expect } from 'chai'
import { startApiServer, type ApiServer } from '../../../daemon/api/server.js'
import { ApiClient } from '../../../daemon/api/client.js'
import { EventBus, withSwitchEvents } from '../../../daemon/events/bus.js'
import type { ReleaseEvent } from '../../../daemon/events/types.js'
import type { HeraldService } from '../../../daemon/types.js'

const TOKEN = 't'.repeat(32)

describe('API: release events', function () {
  this.timeout(20_000)
  let server: ApiServer | undefined
  afterEach(async () => { await server?.stop(); server = undefined })

  async function start (bus: EventBus, service: Partial<HeraldService> = {}): Promise<ApiClient> {
    server = await startApiServer({ service: withSwitchEvents(service as HeraldService, bus, '/r'), events: bus, token: TOKEN, host: '127.0.0.1', port: 0 })
    return new ApiClient({ url: server.url, token: TOKEN })
  }

  it('should stream events of the asked types, and replay the buffered ones after Last-Event-ID', async () => {
    const bus = new EventBus({ peerId: 'p' })
    const client = await start(bus)
    bus.publish({ type: 'release.fetched', release: 'u@1', dataset: 'u', version: '1', origin: 'fetch' })
    bus.publish({ type: 'release.switched', release: 'u@1', dataset: 'u', version: '1', origin: 'fetch' })
    const got: ReleaseEvent[] = []
    await client.followEvents(e => { got.push(e); return got.length === 2 }, {
      lastEventId: 0,
      types: ['release.switched', 'release.failed'],
      onOpen: () => { bus.publish({ type: 'release.failed', release: 'u@2', dataset: 'u', version: '2', origin: 'fetch', error: { code: 'NO_SOURCE', message: 'x' } }) }
    })
    expect(got.map(e => `${e.id} ${e.type}`)).to.deep.equal(['2 release.switched', '3 release.failed'])
    await client.followEvents(() => true, { types: ['release.done'] }).then(() => expect.fail('unknown type accepted'), (err) => { expect(err.code).to.equal('BAD_REQUEST') })
  })

  it('should report a rollback through the API as release.switched with the previous version', async () => {
    const bus = new EventBus({ peerId: 'p' })
    const client = await start(bus, {
      rollback: async (dataset: string, to?: string) => ({ dataset, from: '2', to: to ?? '1' }),
      listReleases: async () => [{ name: 'u@1', manifestCid: 'bafy-x' } as any]
    })
    const seen: ReleaseEvent[] = []
    bus.subscribe(e => seen.push(e))
    await client.rollback('u')
    expect(seen).to.have.length(1)
    expect(seen[0]).to.deep.include({ type: 'release.switched', release: 'u@1', previous: '2', manifestCid: 'bafy-x', path: '/r/u/1', origin: 'rollback' })
  })
})
