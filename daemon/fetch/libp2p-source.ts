// The libp2p chunk exchange as a Source: one peer, over its Noise-encrypted Yamux connection.
import { peerIdFromString } from '@libp2p/peer-id'
import type { Reply, Source, SourceKind } from './source.js'
import type { ChunkExchange } from '../../protocol/exchange/index.js'
import type { PeerId } from '@libp2p/interface'

export class Libp2pChunkSource implements Source {
  readonly id: string
  readonly kind: SourceKind
  readonly transport = 'libp2p' as const
  readonly window: number
  readonly #peer: PeerId
  readonly #chunks: Pick<ChunkExchange, 'fetch'>

  constructor (chunks: Pick<ChunkExchange, 'fetch'>, peerId: string, kind: SourceKind, window: number) {
    this.#chunks = chunks
    this.#peer = peerIdFromString(peerId)
    this.id = peerId
    this.kind = kind
    this.window = window
  }

  request (digests: Uint8Array[], sizes: number[], signal: AbortSignal): AsyncIterable<Reply> {
    // a reply of another size than the manifest's, or a frame that does not decode, ends the request with
    // MALFORMED_MESSAGE; the exchange itself counts it against the peer (onPeerMisbehaved)
    return this.#chunks.fetch(this.#peer, digests, { signal, sizes })
  }
}
