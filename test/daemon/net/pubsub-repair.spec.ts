// Gossipsub does not reopen an outbound stream it lost while the connection stays up; the repair does.
// Two real libp2p nodes (Herald's stack, gossipsub included) on loopback: the stream from A to B is closed
// under gossipsub, A's messages stop reaching B; one repair pass opens it again and they arrive.
import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PubsubRepair } from '../../../daemon/net/pubsub-repair.js'
import { RELEASE_TOPIC } from '../../../protocol/announce.js'
import { startScriptedPeer, type ScriptedPeer } from '../../helpers/scripted-peer.js'

// the stack allows only the release topic; these nodes run no validator on it
const TOPIC = RELEASE_TOPIC

/** resolves with the next message on TOPIC that `peer` receives, or undefined after `ms` */
async function nextMessage (peer: ScriptedPeer, ms: number): Promise<string | undefined> {
  const pubsub = peer.node.services.pubsub
  return await new Promise(resolve => {
    const timer = setTimeout(() => { pubsub.removeEventListener('message', on); resolve(undefined) }, ms)
    const on = (evt: CustomEvent<any>): void => {
      if (evt.detail.topic !== TOPIC) return
      clearTimeout(timer)
      pubsub.removeEventListener('message', on)
      resolve(new TextDecoder().decode(evt.detail.data))
    }
    pubsub.addEventListener('message', on)
  })
}

/** waits (bounded) until `cond` holds, checking on each heartbeat-sized step */
async function until (cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

describe('gossipsub outbound stream repair (two real libp2p nodes)', function () {
  this.timeout(60_000)
  let dir: string
  let a: ScriptedPeer
  let b: ScriptedPeer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-pubsub-repair-'))
    a = await startScriptedPeer({ dataDir: join(dir, 'a') })
    b = await startScriptedPeer({ dataDir: join(dir, 'b') })
  })
  after(async () => {
    await a?.stop()
    await b?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('should reopen a lost outbound stream, after which messages reach the peer again', async () => {
    const ga = a.node.services.pubsub as any
    const gb = b.node.services.pubsub
    ga.subscribe(TOPIC)
    gb.subscribe(TOPIC)
    await a.connect(b.node.getMultiaddrs()[0].toString())
    const bId = b.node.peerId.toString()
    const aId = a.node.peerId.toString()
    await until(() => ga.getSubscribers(TOPIC).some((p: any) => p.toString() === bId) && gb.getSubscribers(TOPIC).some(p => p.toString() === aId), 'both subscribed')
    // the mesh forms on a heartbeat: wait until a message gets through
    let got: string | undefined
    for (let k = 0; k < 20 && got == null; k++) {
      const heard = nextMessage(b, 500)
      await ga.publish(TOPIC, new TextEncoder().encode(`hello ${k}`)).catch(() => {})
      got = await heard
    }
    expect(got).to.match(/^hello/)

    const repair = new PubsubRepair({ pubsub: ga, libp2p: a.node })
    expect(await repair.check()).to.equal(0) // nothing to repair while the stream is there

    // the gap: A's outbound stream to B closes while the connection stays up
    ga.streamsOutbound.get(bId).rawStream.abort(new Error('lost under a burst of connections'))
    await until(() => !ga.streamsOutbound.has(bId), 'the outbound stream to be dropped')
    expect(a.node.getConnections(b.node.peerId).length).to.be.greaterThan(0)
    const lost = nextMessage(b, 1_500)
    await ga.publish(TOPIC, new TextEncoder().encode('lost')).catch(() => {})
    expect(await lost).to.equal(undefined)

    expect(await repair.check()).to.equal(1)
    expect(ga.streamsOutbound.has(bId)).to.equal(true)
    let after: string | undefined
    for (let k = 0; k < 20 && after == null; k++) {
      const heard = nextMessage(b, 500)
      await ga.publish(TOPIC, new TextEncoder().encode(`again ${k}`)).catch(() => {})
      after = await heard
    }
    expect(after).to.match(/^again/)
    expect(repair.repaired).to.equal(1)
  })
})
