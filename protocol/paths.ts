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

/**
 * The normal form of a symlink target stored in a manifest, for a link at manifest path `linkPath`:
 * relative, '/'-separated, any `..` only at the start and never climbing above the release root, then a
 * path that only descends (so no link it passes through can lead it out: every link is checked the same
 * way). `.` for the link's own directory. Throws InvalidPathError naming the link otherwise.
 */
export function normalizeLinkTarget (linkPath: string, target: string): string {
  const what = `symlink ${JSON.stringify(linkPath.slice(0, 200))} → ${JSON.stringify(String(target).slice(0, 200))}`
  if (typeof target !== 'string' || target.length === 0) throw new InvalidPathError(`${what}: empty target`)
  if (target.length > MAX_PATH_LENGTH) throw new InvalidPathError(`${what}: target too long`)
  if (target.includes('\0') || target.includes('\\')) throw new InvalidPathError(`${what}: target contains NUL or a backslash`)
  if (target.startsWith('/') || /^[A-Za-z]:/.test(target)) throw new PathEscapeError(`${what}: absolute target (only relative links inside the release are kept)`)
  const parts = target.split('/').filter(s => s !== '' && s !== '.')
  let ups = 0
  while (ups < parts.length && parts[ups] === '..') ups++
  if (parts.slice(ups).includes('..')) throw new InvalidPathError(`${what}: '..' after a name (write the target without it)`)
  for (const part of parts) if (part.length > 255) throw new InvalidPathError(`${what}: target component longer than 255`)
  const depth = linkPath.split('/').length - 1
  if (ups > depth) throw new PathEscapeError(`${what}: target escapes the release`)
  return parts.length === 0 ? '.' : parts.join('/')
}
