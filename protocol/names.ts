// Release names: `dataset@version`, e.g. `uniprot@2024-03`.
import { InvalidNameError } from './errors.js'

const DATASET = /^[a-z0-9][a-z0-9._-]{0,63}$/
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/

export function validDataset (s: string): boolean { return DATASET.test(s) }
export function validVersion (s: string): boolean { return VERSION.test(s) && !s.includes('..') }

export function parseReleaseName (s: string): { dataset: string, version: string } {
  if (typeof s !== 'string') throw new InvalidNameError('a release name must be a string')
  const at = s.indexOf('@')
  if (at < 0 || at !== s.lastIndexOf('@')) throw new InvalidNameError(`release name must be dataset@version, got ${JSON.stringify(s.slice(0, 140))}`)
  const dataset = s.slice(0, at)
  const version = s.slice(at + 1)
  if (!validDataset(dataset)) throw new InvalidNameError(`invalid dataset ${JSON.stringify(dataset.slice(0, 80))}: lower-case letters, digits, '.', '_', '-', at most 64`)
  if (!validVersion(version)) throw new InvalidNameError(`invalid version ${JSON.stringify(version.slice(0, 80))}: letters, digits, '.', '_', '+', '-', at most 64`)
  return { dataset, version }
}

export function formatReleaseName (dataset: string, version: string): string {
  if (!validDataset(dataset) || !validVersion(version)) throw new InvalidNameError(`invalid release name ${dataset}@${version}`)
  return `${dataset}@${version}`
}
