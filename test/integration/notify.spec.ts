// New-release notifications over gossipsub, on real daemons: a release published on the seed reaches a
// lab (and a lab behind it) within seconds; forged, untrusted, malformed and older announcements sent by
// a hostile peer change nothing, and the forger is penalised.
import { expect } from 'chai'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { daemonFixture, type DaemonProcess } from '../helpers/daemon-process.js'
import { waitForLog } from '../helpers/log-watch.js'
import { startScriptedPeer, type ScriptedPeer } from '../helpers/scripted-peer.js'
import { generateRelease } from '../fixtures/release-gen.js'
import { encodeAnnouncement, RELEASE_TOPIC } from '../../protocol/announce.js'
import { parseCid } from '../../protocol/cid.js'
import { signRelease } from '../../protocol/release.js'
import { peerIdFromString } from '@libp2p/peer-id'

/** Poll a daemon's peer list until it is connected to `peerId` (bounded). */
async function connectedTo (d: DaemonProcess, peerId: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if ((await d.client.peers()).some(p => p.peerId === peerId)) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`${d.peerId} not connected to ${peerId} in ${timeoutMs} ms`)
}

/** Resolves when the scripted peer sees `peerId` subscribed to the release topic. */
async function subscribed (peer: ScriptedPeer, peerId: string, timeoutMs = 20_000): Promise<void> {
  const pubsub = peer.node.services.pubsub
  if (pubsub.getSubscribers(RELEASE_TOPIC).some(p => p.toString() === peerId)) return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { pubsub.removeEventListener('subscription-change', on); reject(new Error('no subscription')) }, timeoutMs)
    const on = (): void => {
      if (!pubsub.getSubscribers(RELEASE_TOPIC).some(p => p.toString() === peerId)) return
      clearTimeout(timer)
      pubsub.removeEventListener('subscription-change', on)
      resolve()
    }
    pubsub.addEventListener('subscription-change', on)
  })
}

describe('release notifications (gossipsub, real daemons on loopback)', function () {
  this.timeout(120_000)
  const fx = daemonFixture('herald-notify-')
  let scripted: ScriptedPeer | undefined
  afterEach(async () => { await scripted?.node.stop(); scripted = undefined })

  it('should deliver a release published on the seed to labs in under 2 s, and keep it as latest', async () => {
    const input = join(fx.dir, 'in')
    await generateRelease({ seed: 71, entries: 400, dir: input })
    const seed = await fx.start('seed', { seed: true })
    const trust = [`uniprot=${await seed.publisherKey()}`]
    const lab = await fx.start('lab', { bootstrap: seed.listen, trust, logLevel: 'info' })
    // lab2 knows only lab: the announcement reaches it through lab's mesh, not from the seed itself
    const lab2 = await fx.start('lab2', { bootstrap: lab.listen, trust, logLevel: 'info', config: { seeds: [seed.peerId] } })
    await connectedTo(lab, seed.peerId)
    await connectedTo(lab2, lab.peerId)
    expect(await lab.client.latest('uniprot').catch(err => err.code)).to.equal('RELEASE_NOT_FOUND')

    const heard = waitForLog(lab, l => l.msg === 'release available' && l.release === 'uniprot@2024-03', 10_000)
    const heard2 = waitForLog(lab2, l => l.msg === 'release available' && l.release === 'uniprot@2024-03', 10_000)
    const published = await seed.client.publish({ name: 'uniprot@2024-03', dir: input })
    const [event, event2] = await Promise.all([heard, heard2])
    const latency = event.receivedAt - event.publishedAt
    const latency2 = event2.receivedAt - event2.publishedAt
    console.log(`      announcement latency (signed → accepted): lab ${latency} ms, lab behind lab ${latency2} ms`)
    expect(latency).to.be.lessThan(2_000)
    expect(latency2).to.be.lessThan(2_000)
    expect(event.manifest).to.equal(published.manifestCid)
    expect(event.from).to.equal(seed.peerId)

    const latest = await lab2.client.latest('uniprot')
    expect(latest).to.include({ dataset: 'uniprot', version: '2024-03', manifestCid: published.manifestCid, seq: 1 })
    expect(latest.publisher).to.equal(await seed.publisherKey())

    // a newer release replaces it; the latest survives a restart (never going back to nothing)
    const next = waitForLog(lab, l => l.msg === 'release available' && l.release === 'uniprot@2024-04')
    const published2 = await seed.client.publish({ name: 'uniprot@2024-04', dir: input })
    await next
    expect((await lab.client.latest('uniprot')).version).to.equal('2024-04')
    await lab.stop()
    await lab.launch()
    expect((await lab.client.latest('uniprot')).version).to.equal('2024-04')

    // a lab that starts after the publish hears the record too: the seed announces again when it joins,
    // and the mesh passes it on, so it may arrive through a lab that forwarded it first
    const late = await fx.start('late', { bootstrap: seed.listen, trust, logLevel: 'info' })
    const heardLate = await waitForLog(late, l => l.msg === 'release available' && l.release === 'uniprot@2024-04', 10_000)
    expect([seed.peerId, lab.peerId, lab2.peerId]).to.include(heardLate.from)
    expect(heardLate.manifest).to.equal(published2.manifestCid)
    expect((await late.client.latest('uniprot')).publisher).to.equal(await seed.publisherKey())
  })

  it('should refuse forged and malformed announcements, penalise their sender, and ignore untrusted and older ones', async () => {
    const input = join(fx.dir, 'in')
    await generateRelease({ seed: 72, entries: 300, dir: input })
    const seed = await fx.start('seed', { seed: true })
    const lab = await fx.start('lab', { bootstrap: seed.listen, trust: [`uniprot=${await seed.publisherKey()}`], logLevel: 'info' })
    await connectedTo(lab, seed.peerId)
    const first = waitForLog(lab, l => l.msg === 'release available' && l.release === 'uniprot@1')
    const old = await seed.client.publish({ name: 'uniprot@1', dir: input })
    await first
    const second = waitForLog(lab, l => l.msg === 'release available' && l.release === 'uniprot@2')
    const genuine = await seed.client.publish({ name: 'uniprot@2', dir: input })
    await second

    scripted = await startScriptedPeer({ dataDir: join(fx.dir, 'hostile') })
    scripted.node.services.pubsub.subscribe(RELEASE_TOPIC)
    await scripted.connect(lab.listen[0])
    await subscribed(scripted, lab.peerId)
    const pubsub = scripted.node.services.pubsub
    const now = Date.now()

    // genuine records as the seed serves them
    await scripted.connect(seed.listen[0])
    const seedId = peerIdFromString(seed.peerId)
    const fetchRecord = async (version: string): Promise<Uint8Array> => {
      // a loaded machine may reset a fresh stream once: three tries
      for (let attempt = 1; ; attempt++) {
        try {
          const bytes = await scripted!.node.services.releases.fetchRelease(seedId, 'uniprot', version, { signal: AbortSignal.timeout(10_000) })
          if (bytes == null) throw new Error(`seed has no record of uniprot@${version}`)
          return bytes
        } catch (err) {
          if (attempt >= 3) throw err
        }
      }
    }
    // 1. the older genuine record (uniprot@1): ignored, latest does not go back
    await pubsub.publish(RELEASE_TOPIC, encodeAnnouncement(await fetchRecord('1'), now))
    // 2. signed by a key the lab does not trust, newer than anything: ignored
    const stranger = await generateKeyPair('Ed25519')
    const strangerRecord = await signRelease({ dataset: 'uniprot', version: '9', manifestCid: parseCid(genuine.manifestCid), seq: 1, publishedAt: now }, stranger)
    await pubsub.publish(RELEASE_TOPIC, encodeAnnouncement(strangerRecord, now))
    // 3. the seed's genuine record of uniprot@2 with its version changed: the signature no longer matches
    const envelope = dagCbor.decode<any>(await fetchRecord('2'))
    envelope.record.version = '99'
    envelope.record.publishedAt = now
    const forged = dagCbor.encode(envelope)
    const refusedForged = waitForLog(lab, l => l.msg === 'release announcement refused' && l.verdict === 'forged')
    await pubsub.publish(RELEASE_TOPIC, encodeAnnouncement(forged, now))
    await refusedForged
    // 4. not an announcement at all
    const refusedMalformed = waitForLog(lab, l => l.msg === 'release announcement refused' && l.verdict === 'malformed')
    await pubsub.publish(RELEASE_TOPIC, new TextEncoder().encode('{"release":"uniprot@100"}'))
    await refusedMalformed

    const latest = await lab.client.latest('uniprot')
    expect(latest).to.include({ version: '2', manifestCid: genuine.manifestCid })
    expect(latest.manifestCid).to.not.equal(old.manifestCid)
    const hostile = (await lab.client.peers()).find(p => p.peerId === scripted?.node.peerId.toString())
    expect(hostile?.penalties ?? 0, 'the forger is penalised').to.be.greaterThanOrEqual(2)
    expect(lab.output).to.not.match(/"release":"uniprot@(9|99|100)"[^\n]*"release available"/)

    // the lab still takes genuine news after all that
    const third = waitForLog(lab, l => l.msg === 'release available' && l.release === 'uniprot@3')
    await seed.client.publish({ name: 'uniprot@3', dir: input })
    await third
    expect((await lab.client.latest('uniprot')).version).to.equal('3')
  })
})
