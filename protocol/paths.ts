// Manifest paths: relative, '/'-separated, normalised, never escaping the directory they are written into.
import { isAbsolute, relative, resolve, sep } from 'node:path'
import { InvalidPathError, PathEscapeError } from './errors.js'

export const MAX_PATH_LENGTH = 4096

export function normalizeManifestPath (p: string): string {
  if (typeof p !== 'string' || p.length === 0) throw new InvalidPathError('empty path')
  if (p.length > MAX_PATH_LENGTH) throw new InvalidPathError('path too long')
  if (p.includes('\0')) throw new InvalidPathError('path contains NUL')
  if (p.includes('\\')) throw new InvalidPathError(`path contains a backslash: ${JSON.stringify(p.slice(0, 200))}`)
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) throw new InvalidPathError(`absolute path: ${JSON.stringify(p.slice(0, 200))}`)
  const parts = p.split('/').filter(s => s !== '' && s !== '.')
  if (parts.length === 0) throw new InvalidPathError(`empty path: ${JSON.stringify(p)}`)
  for (const part of parts) {
    if (part === '..') throw new InvalidPathError(`path escapes its directory: ${JSON.stringify(p.slice(0, 200))}`)
    if (part.length > 255) throw new InvalidPathError('path component longer than 255')
  }
  return parts.join('/')
}

/** The absolute path of `rel` inside `root`; throws PathEscapeError if it would land outside. */
export function resolveInside (root: string, rel: string): string {
  const base = resolve(root)
  const target = resolve(base, rel)
  const r = relative(base, target)
  if (r === '' || r.startsWith('..' + sep) || r === '..' || isAbsolute(r)) {
    throw new PathEscapeError(`path ${JSON.stringify(rel.slice(0, 200))} escapes ${base}`)
  }
  return target
}
