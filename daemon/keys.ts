// The data directory's secrets: the libp2p peer key, the publisher's signing key (seed only) and the API
// token. Each is created once, with mode 0600, and never overwritten.
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { HeraldError } from './errors.js'

export const PEER_KEY_FILE = 'peer.key'
export const PUBLISHER_KEY_FILE = 'publisher.key'
export const PUBLISHER_PUB_FILE = 'publisher.pub'
export const API_TOKEN_FILE = 'api.token'

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err: any) {
    if (err.code === 'ENOENT') return false
    throw err
  }
}

async function writeSecret (path: string, data: Uint8Array | string): Promise<void> {
  // 'wx' refuses to replace an existing file: a key is never overwritten
  await writeFile(path, data, { mode: 0o600, flag: 'wx' })
  await chmod(path, 0o600)
}

async function loadKey (path: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(new Uint8Array(await readFile(path)))
  } catch (err: any) {
    throw new HeraldError('INVALID_CONFIG', `cannot load key ${path}: ${err.code ?? err.name}`, { cause: err })
  }
}

async function loadOrCreateKey (path: string): Promise<{ key: PrivateKey, created: boolean }> {
  if (await exists(path)) return { key: await loadKey(path), created: false }
  const key = await generateKeyPair('Ed25519')
  await writeSecret(path, privateKeyToProtobuf(key))
  return { key, created: true }
}

export async function ensureDataDir (dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
}

export async function loadOrCreatePeerKey (dataDir: string): Promise<{ key: PrivateKey, created: boolean }> {
  await ensureDataDir(dataDir)
  return await loadOrCreateKey(join(dataDir, PEER_KEY_FILE))
}

export async function loadOrCreatePublisherKey (dataDir: string): Promise<{ key: PrivateKey, created: boolean }> {
  await ensureDataDir(dataDir)
  return await loadOrCreateKey(join(dataDir, PUBLISHER_KEY_FILE))
}

export async function loadPublisherKey (dataDir: string): Promise<PrivateKey | undefined> {
  const path = join(dataDir, PUBLISHER_KEY_FILE)
  return (await exists(path)) ? await loadKey(path) : undefined
}

export async function loadOrCreateApiToken (dataDir: string): Promise<string> {
  await ensureDataDir(dataDir)
  const path = join(dataDir, API_TOKEN_FILE)
  if (await exists(path)) {
    const token = (await readFile(path, 'utf8')).trim()
    if (token.length < 16) throw new HeraldError('INVALID_CONFIG', `API token in ${path} is too short (need ≥ 16 characters)`)
    return token
  }
  const token = randomBytes(32).toString('base64url')
  await writeSecret(path, token + '\n')
  return token
}

export function tokensEqual (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
