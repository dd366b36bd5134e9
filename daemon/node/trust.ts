// Trusted publisher keys from configuration. An entry is `[NAMES=]KEY`: KEY is a key's text form
// (`ed25519:…`) or the path of a file holding one (as the seed writes it to <data dir>/publisher.pub);
// NAMES is a dataset name or a pattern with `*` (`uniprot`, `ncbi-*`) the key is trusted for. A bare KEY is
// trusted for every name, which suits a site with one publisher. The same key may appear in several entries;
// its scopes add up.
import { readFile } from 'node:fs/promises'
import { validDataset } from '../../protocol/names.js'
import { parsePublisherKey, publisherKeyText, type TrustedKey } from '../../protocol/release.js'
import { HeraldError } from '../errors.js'

const KEY_PREFIX = 'ed25519:'

export interface TrustEntry {
  /** undefined: every name */
  names?: string
  /** key text or file path */
  source: string
}

/** Split an entry into its name scope and key source; checks the scope's syntax. */
export function parseTrustEntry (entry: string): TrustEntry {
  const text = entry.trim()
  const eq = text.indexOf('=')
  // a key's base64url text has no '=', and a path holding one is written with a scope in front
  if (eq < 0 || text.startsWith(KEY_PREFIX)) return { source: text }
  const names = text.slice(0, eq).trim()
  const source = text.slice(eq + 1).trim()
  if (names !== '*' && !validDataset(names.replaceAll('*', 'x'))) {
    throw new HeraldError('INVALID_CONFIG', `trustedPublishers: ${JSON.stringify(names)} is not a dataset name or pattern (lower-case letters, digits, '.', '_', '-', and '*')`)
  }
  if (source === '') throw new HeraldError('INVALID_CONFIG', `trustedPublishers: ${JSON.stringify(entry)} names no key`)
  return { names: names === '*' ? undefined : names, source }
}

async function readKey (source: string): Promise<Uint8Array> {
  let text = source
  if (!source.startsWith(KEY_PREFIX)) {
    try {
      text = (await readFile(source, 'utf8')).trim()
    } catch (err: any) {
      throw new HeraldError('INVALID_CONFIG', `trustedPublishers: cannot read key file ${source}: ${err.code ?? err.message}`, { cause: err })
    }
  }
  try {
    return parsePublisherKey(text)
  } catch (err: any) {
    const where = source.startsWith(KEY_PREFIX) ? 'key' : `key in ${source}`
    throw new HeraldError('INVALID_CONFIG', `trustedPublishers: ${where} is not a publisher key: ${err.message}`, { cause: err })
  }
}

/** The configured keys with their scopes, entries for one key merged. */
export async function loadTrustedKeys (entries: string[]): Promise<TrustedKey[]> {
  const byKey = new Map<string, TrustedKey>()
  for (const entry of entries) {
    const { names, source } = parseTrustEntry(entry)
    const key = await readKey(source)
    const id = publisherKeyText(key)
    const known = byKey.get(id)
    if (known == null) {
      byKey.set(id, { key, names: names == null ? undefined : [names] })
    } else if (names == null) {
      known.names = undefined
    } else if (known.names != null) {
      known.names.push(names)
    }
  }
  return [...byKey.values()]
}

/** A warning for a site that trusts more than one key for every name (each could replace the other's datasets). */
export function unscopedWarning (trusted: TrustedKey[]): string | undefined {
  const unscoped = trusted.filter(t => t.names == null)
  if (unscoped.length < 2) return undefined
  return `${unscoped.length} publisher keys are trusted for every dataset name, so each can replace the others' releases: scope them with --trust NAME=KEY`
}
