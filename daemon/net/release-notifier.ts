// New-release notifications over gossipsub. The publisher announces each signed release record on one
// topic; every heraldd checks an announcement exactly as a fetched record (trusted signer for that
// dataset, good signature), keeps the newest record per dataset ("latest", order: protocol/announce.ts
// compareReleases) and tells its listeners. Forged or malformed announcements are rejected (not passed
// on) and counted against the peer that sent them; records that are merely not ours to trust, or older
// than what is known, are ignored. "latest" never goes back, also across restarts (a state file).
import { rename, readFile, writeFile } from 'node:fs/promises'
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { compareReleases, decodeAnnouncement, encodeAnnouncement, RELEASE_TOPIC } from '../../protocol/announce.js'
import { publisherKeyText, verifyRelease, decodeSignedRelease, type SignedRelease, type TrustedKey } from '../../protocol/release.js'
import { DEFAULT_MAX_FUTURE_MS, DEFAULT_REANNOUNCE_MS, REANNOUNCE_DEBOUNCE_MS } from './constants.js'
import type { Log } from '../log.js'
import type { ReleaseAvailable, ReleaseNotifications } from '../types.js'
import type { PeerId } from '@libp2p/interface'

export interface ReleaseNotifierInit {
  pubsub: GossipSub
  trusted: TrustedKey[]
  log: Log
  /** where the latest record per dataset is kept between runs */
  stateFile: string
  /** a peer sent a forged or malformed announcement */
  onMisbehaved?: (peer: PeerId, reason: string) => void
  /** records signed further ahead of the local clock are ignored, ms */
  maxFutureMs?: number
  /** a publisher re-announces its latest records this often (peers that joined late), ms; 0 = never */
  reannounceMs?: number
  /** true on a node that publishes: it re-announces, and when a peer joins the topic */
  publisher?: boolean
  now?: () => number
}

/** Why an announcement was not taken, for logs and tests. */
export type Verdict = 'accepted' | 'known' | 'stale' | 'future' | 'untrusted' | 'forged' | 'malformed'

interface Held { release: ReleaseAvailable, bytes: Uint8Array }

export class ReleaseNotifier implements ReleaseNotifications {
  readonly #init: ReleaseNotifierInit
  readonly #pubsub: GossipSub
  readonly #latest = new Map<string, Held>()
  readonly #listeners = new Set<(r: ReleaseAvailable) => void>()
  readonly #maxFutureMs: number
  readonly #reannounceMs: number
  readonly #now: () => number
  #timer?: ReturnType<typeof setInterval>
  #debounce?: ReturnType<typeof setTimeout>
  #saving: Promise<void> = Promise.resolve()
  #started = false
  /** counts by verdict, for status and tests */
  readonly counts: Record<Verdict, number> = { accepted: 0, known: 0, stale: 0, future: 0, untrusted: 0, forged: 0, malformed: 0 }

  constructor (init: ReleaseNotifierInit) {
    this.#init = init
    this.#pubsub = init.pubsub
    this.#maxFutureMs = init.maxFutureMs ?? DEFAULT_MAX_FUTURE_MS
    this.#reannounceMs = init.reannounceMs ?? DEFAULT_REANNOUNCE_MS
    this.#now = init.now ?? Date.now
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#load()
    this.#pubsub.topicValidators.set(RELEASE_TOPIC, this.#validate)
    this.#pubsub.subscribe(RELEASE_TOPIC)
    if (this.#init.publisher === true) {
      if (this.#reannounceMs > 0) {
        this.#timer = setInterval(() => { void this.#reannounce() }, this.#reannounceMs)
        this.#timer.unref()
      }
      this.#pubsub.addEventListener('subscription-change', this.#onSubscriptionChange)
    }
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    clearInterval(this.#timer)
    clearTimeout(this.#debounce)
    this.#pubsub.removeEventListener('subscription-change', this.#onSubscriptionChange)
    try {
      this.#pubsub.unsubscribe(RELEASE_TOPIC)
    } catch {}
    this.#pubsub.topicValidators.delete(RELEASE_TOPIC)
    await this.#saving
  }

  latest (dataset: string): ReleaseAvailable | undefined {
    const held = this.#latest.get(dataset)
    return held == null ? undefined : { ...held.release }
  }

  onReleaseAvailable (listener: (r: ReleaseAvailable) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /**
   * A record this node signed or verified itself (a publish, a fetch): taken as latest when newer, and,
   * with `publish`, announced on the topic. Never throws for a network problem: announcing is best effort
   * and a record the topic could not carry now reaches peers at the next re-announce or their next fetch.
   */
  async offer (signedBytes: Uint8Array, opts: { publish?: boolean } = {}): Promise<Verdict> {
    let signed: SignedRelease
    try {
      signed = decodeSignedRelease(signedBytes)
    } catch {
      return 'malformed'
    }
    const verdict = await this.#consider(signed, 'local')
    if (opts.publish === true && (verdict === 'accepted' || verdict === 'known')) await this.#publish(signedBytes)
    return verdict
  }

  async #publish (signedBytes: Uint8Array): Promise<void> {
    if (!this.#started) return
    try {
      const { recipients } = await this.#pubsub.publish(RELEASE_TOPIC, encodeAnnouncement(signedBytes, this.#now()))
      this.#init.log.debug({ recipients: recipients.length }, 'release announced')
    } catch (err: any) {
      this.#init.log.warn({ err: err.message }, 'release announcement not sent')
    }
  }

  /** Verify one record and take it as latest when it is newer than the dataset's. */
  async #consider (signed: SignedRelease, from: string): Promise<Verdict> {
    try {
      await verifyRelease(signed, this.#init.trusted)
    } catch (err: any) {
      return err?.code === 'UNTRUSTED_PUBLISHER' ? 'untrusted' : err?.code === 'BAD_SIGNATURE' ? 'forged' : 'malformed'
    }
    const r = signed.record
    if (r.publishedAt > this.#now() + this.#maxFutureMs) return 'future'
    const held = this.#latest.get(r.dataset)
    if (held != null) {
      const order = compareReleases(r, held.release)
      if (order === 0) return 'known'
      if (order < 0) return 'stale'
    }
    const release: ReleaseAvailable = {
      dataset: r.dataset,
      version: r.version,
      manifestCid: r.manifestCid.toString(),
      seq: r.seq,
      publishedAt: r.publishedAt,
      publisher: publisherKeyText(signed.publicKey),
      from,
      receivedAt: this.#now()
    }
    this.#latest.set(r.dataset, { release, bytes: signed.bytes })
    this.#save()
    this.#init.log.info({ release: `${r.dataset}@${r.version}`, seq: r.seq, publishedAt: r.publishedAt, manifest: release.manifestCid, from, receivedAt: release.receivedAt }, 'release available')
    for (const listener of this.#listeners) {
      try {
        listener({ ...release })
      } catch (err: any) {
        this.#init.log.error({ err }, 'release-available listener threw')
      }
    }
    return 'accepted'
  }

  /** gossipsub's validator for the topic: decides what is passed on, and counts forgeries against the sender. */
  readonly #validate = async (peer: PeerId, message: Message): Promise<TopicValidatorResult> => {
    let verdict: Verdict
    try {
      verdict = await this.#consider(decodeAnnouncement(message.data), peer.toString())
    } catch {
      verdict = 'malformed'
    }
    this.counts[verdict]++
    switch (verdict) {
      case 'accepted':
      case 'known':
        // an equal record is passed on too: that is how a re-announce reaches peers that joined late
        return TopicValidatorResult.Accept
      case 'forged':
      case 'malformed':
        this.#init.log.warn({ peer: peer.toString(), verdict }, 'release announcement refused')
        this.#init.onMisbehaved?.(peer, verdict === 'forged' ? 'forged_announcement' : 'bad_announcement')
        return TopicValidatorResult.Reject
      default:
        this.#init.log.debug({ peer: peer.toString(), verdict }, 'release announcement ignored')
        return TopicValidatorResult.Ignore
    }
  }

  readonly #onSubscriptionChange = (evt: CustomEvent<{ subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (!evt.detail.subscriptions.some(s => s.topic === RELEASE_TOPIC && s.subscribe)) return
    // a peer joined the topic: announce again soon, once for a burst of joins
    if (this.#debounce != null) return
    this.#debounce = setTimeout(() => { this.#debounce = undefined; void this.#reannounce() }, REANNOUNCE_DEBOUNCE_MS)
    this.#debounce.unref()
  }

  async #reannounce (): Promise<void> {
    for (const held of this.#latest.values()) await this.#publish(held.bytes)
  }

  async #load (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.#init.stateFile, 'utf8')
    } catch (err: any) {
      if (err.code !== 'ENOENT') this.#init.log.warn({ err: err.message, file: this.#init.stateFile }, 'latest-release state unreadable; starting empty')
      return
    }
    let records: unknown
    try {
      records = JSON.parse(text)?.records
    } catch {
      this.#init.log.warn({ file: this.#init.stateFile }, 'latest-release state is not JSON; starting empty')
      return
    }
    if (records == null || typeof records !== 'object') return
    for (const b64 of Object.values(records as Record<string, unknown>)) {
      if (typeof b64 !== 'string') continue
      try {
        // checked again: the trusted keys may have changed since it was written
        const signed = decodeSignedRelease(new Uint8Array(Buffer.from(b64, 'base64')))
        await verifyRelease(signed, this.#init.trusted)
        const r = signed.record
        const held = this.#latest.get(r.dataset)
        if (held != null && compareReleases(r, held.release) <= 0) continue
        this.#latest.set(r.dataset, {
          bytes: signed.bytes,
          release: { dataset: r.dataset, version: r.version, manifestCid: r.manifestCid.toString(), seq: r.seq, publishedAt: r.publishedAt, publisher: publisherKeyText(signed.publicKey), from: 'local', receivedAt: r.publishedAt }
        })
      } catch (err: any) {
        this.#init.log.warn({ err: err.message }, 'a stored latest record no longer verifies; dropped')
      }
    }
  }

  /** Write the state file (temporary file, then rename), one write at a time. */
  #save (): void {
    const records = Object.fromEntries([...this.#latest].map(([dataset, held]) => [dataset, Buffer.from(held.bytes).toString('base64')]))
    const text = JSON.stringify({ v: 1, records })
    this.#saving = this.#saving.then(async () => {
      const tmp = `${this.#init.stateFile}.tmp`
      await writeFile(tmp, text)
      await rename(tmp, this.#init.stateFile)
    }).catch((err: any) => { this.#init.log.warn({ err: err.message }, 'latest-release state not written') })
  }
}
