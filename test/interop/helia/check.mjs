// A Helia node with only the trustless-gateway block broker fetches blocks by CID from one gateway URL
// (argv[2]) and prints, as its last line, a JSON list of { cid, bytes, sha256 } (Helia itself refuses a
// block that does not hash to its CID). Setup and traps: see the project's notes on Helia as an HTTP client.
/* global process, AbortSignal, Buffer, console */
import { createHash } from 'node:crypto'
// Helia on Node 20 needs Promise.withResolvers (Node 22 has it)
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new this((a, b) => { resolve = a; reject = b })
    return { promise, resolve, reject }
  }
}
const { createHeliaLight } = await import('helia')
const { trustlessGatewayBlockBroker } = await import('@helia/trustless-gateway-client')
const { fallbackRouter } = await import('@helia/fallback-router')
const { CID } = await import('multiformats/cid')

const [gateway, ...cids] = process.argv.slice(2)
const helia = await createHeliaLight({
  blockBrokers: [trustlessGatewayBlockBroker({ allowInsecure: true, allowLocal: true })],
  // with only fallback routers blockstore.get hangs and ignores its signal: one router that finds nothing
  routers: [fallbackRouter({ gateways: [gateway] }), { name: 'none', async * findProviders () {} }]
})
const out = []
try {
  for (const text of cids) {
    const block = await helia.blockstore.get(CID.parse(text), { signal: AbortSignal.timeout(30_000) })
    let bytes = block
    if (!(bytes instanceof Uint8Array)) {
      // some versions return an async iterable of parts
      const parts = []
      for await (const p of block) parts.push(p)
      bytes = Buffer.concat(parts)
    }
    out.push({ cid: text, bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') })
  }
} finally {
  await helia.stop()
}
console.log(JSON.stringify(out))
