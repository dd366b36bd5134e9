// Trusted publisher keys from configuration: each entry is a key's text form, or the path of a file
// holding one (as the seed writes it to <data dir>/publisher.pub).
import { readFile } from 'node:fs/promises'
import { HeraldError } from '../errors.js'

export async function loadTrustedKeys (entries: string[]): Promise<string[]> {
  const keys: string[] = []
  for (const entry of entries) {
    if (entry.startsWith('/') || entry.startsWith('./') || entry.startsWith('../')) {
      try {
        keys.push((await readFile(entry, 'utf8')).trim())
      } catch (err: any) {
        throw new HeraldError('INVALID_CONFIG', `trustedPublishers: cannot read key file ${entry}: ${err.code ?? err.message}`, { cause: err })
      }
    } else {
      keys.push(entry.trim())
    }
  }
  return keys
}
