// The HAVE batch interval grows with the number of watchers a node serves, so that the updates a node sends
// (each wakes a scheduling pass at the watcher) stay about constant as more peers trade a release.
import { expect } from 'chai'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { haveBatchMs, haveExchange, HAVE_BATCH_MS, HAVE_MAX_BATCH_MS, type HaveExchange } from '../../../protocol/exchange/have-exchange.js'

type Node = Libp2p<{ have: HaveExchange }>

describe('have-exchange batch interval', function () {
  this.timeout(30_000)
  const manifestCid = CID.parse('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yje')
  const COUNT = 4096
  let listeners: Array<(i: number[], c: boolean) => void> = []
  const nodes: Node[] = []

  async function node (): Promise<Node> {
    const n = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        have: haveExchange({
          getHave: cid => cid.equals(manifestCid) ? { bitmap: new Uint8Array(COUNT / 8), count: COUNT } : undefined,
          subscribe: (_cid, l) => { listeners.push(l); return () => { listeners = listeners.filter(x => x !== l) } }
        })
      }
    }) as unknown as Node
    nodes.push(n)
    return n
  }

  afterEach(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
    nodes.length = 0
    listeners = []
  })

  it('should scale the interval with watchers, between its bounds', () => {
    expect(haveBatchMs(0)).to.equal(HAVE_BATCH_MS)
    expect(haveBatchMs(1)).to.equal(HAVE_BATCH_MS)
    expect(haveBatchMs(2)).to.equal(HAVE_BATCH_MS)
    expect(haveBatchMs(4)).to.equal(2 * HAVE_BATCH_MS)
    expect(haveBatchMs(8)).to.equal(HAVE_MAX_BATCH_MS)
    expect(haveBatchMs(100)).to.equal(HAVE_MAX_BATCH_MS)
  })

  it('should send each of four watchers at most one update per 500 ms, and every index', async () => {
    const holder = await node()
    const watchers = await Promise.all([0, 1, 2, 3].map(async () => await node()))
    const arrivals: number[][] = watchers.map(() => [])
    const received: Array<Set<number>> = watchers.map(() => new Set())
    const done = watchers.map(async (w, k) => {
      await w.dial(holder.getMultiaddrs()[0])
      await w.services.have.watch(holder.peerId, manifestCid, {
        onBitmap: () => {},
        onUpdate: (indices, complete) => {
          arrivals[k].push(performance.now())
          for (const i of indices) received[k].add(i)
          if (complete) received[k].add(-1)
        }
      })
    })
    // every watcher subscribed before any chunk arrives (bounded wait)
    for (let t = 0; listeners.length < 4; t++) {
      if (t > 500) throw new Error('watchers did not subscribe')
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    // a chunk every 20 ms for 2 s, then the last one with `complete`
    for (let i = 0; i < 100; i++) {
      for (const l of listeners) l([i], false)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    for (const l of listeners) l([100], true)
    await Promise.all(done)
    for (const [k, times] of arrivals.entries()) {
      expect(received[k].size, `watcher ${k} indices`).to.equal(102)
      const gaps = times.slice(1).map((t, j) => t - times[j])
      // 500 ms between sends; arrival gaps can be a little shorter than send gaps
      expect(Math.min(...gaps), `watcher ${k} gaps ${gaps.map(g => g.toFixed(0)).join(',')}`).to.be.greaterThan(400)
    }
  })
})
