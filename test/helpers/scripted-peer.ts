// A scripted (misbehaving) peer for integration tests: a real js-libp2p node with Herald's transport stack
// and protocol services, whose answers the test decides. It speaks /herald/have, /herald/chunk and
// /herald/release with the project's own protocol code, so the daemon under test sees exactly what a
// hostile heraldd could send.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { ConfigSchema } from '../../daemon/config.js'
import { createHeraldLibp2p } from '../../daemon/node/libp2p.js'
import { chunkExchange, haveExchange, releaseExchange, type StoredChunk } from '../../protocol/exchange/index.js'
import { decodeManifest, manifestChunkIndex, verifyManifest, type Manifest } from '../../protocol/manifest.js'
import type { CID } from 'multiformats/cid'

export interface ScriptedPeerInit {
  dataDir: string
  /** answer every have request with a bitmap claiming this many entries, all held */
  claimAll?: number
  /** how chunk requests are answered; by default never (the request hangs until the asker gives up) */
  getStored?: (digest: Uint8Array) => Promise<StoredChunk | undefined>
}

export type ScriptedPeer = Awaited<ReturnType<typeof startScriptedPeer>>

/** a chunk request that is never answered: it waits until the peer stops */
function never (stopped: Promise<void>): () => Promise<StoredChunk | undefined> {
  return async () => { await stopped; return undefined }
}

export async function startScriptedPeer (init: ScriptedPeerInit) {
  const config = ConfigSchema.parse({ dataDir: init.dataDir, listen: ['/ip4/127.0.0.1/tcp/0'] })
  let onStop = (): void => {}
  const stopped = new Promise<void>(resolve => { onStop = resolve })
  const count = init.claimAll ?? 0
  const bitmap = new Uint8Array(Math.ceil(count / 8)).fill(0xff)
  if (count % 8 !== 0) bitmap[bitmap.length - 1] = (0xff << (8 - count % 8)) & 0xff
  const node = await createHeraldLibp2p(config, await generateKeyPair('Ed25519'), {
    chunks: chunkExchange({ getStored: init.getStored ?? never(stopped), acceptCompressed: true }),
    have: haveExchange({
      getHave: () => count > 0 ? { bitmap, count } : undefined,
      subscribe: () => () => {}
    }),
    releases: releaseExchange({ getRelease: async () => undefined, getManifest: async () => undefined })
  })
  await node.start()
  return {
    node,
    /** dial a daemon (a loaded machine may time a handshake out: three tries) */
    async connect (addr: string): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        try {
          await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(20_000) })
          return
        } catch (err) {
          if (attempt >= 3) throw err
        }
      }
    },
    /** fetch and verify a manifest from a peer */
    async manifest (peer: string, cid: CID): Promise<Manifest> {
      const bytes = await node.services.releases.fetchManifest(peerIdFromString(peer), cid, { signal: AbortSignal.timeout(20_000) })
      if (bytes == null) throw new Error('peer has no such manifest')
      return verifyManifest(cid, bytes)
    },
    async stop (): Promise<void> {
      onStop()
      await node.stop()
    }
  }
}

export { decodeManifest, manifestChunkIndex }
