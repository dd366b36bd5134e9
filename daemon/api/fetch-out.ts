// Checks on `out` of POST /v1/fetch, made before the fetch starts: the daemon writes only under the
// directories its configuration allows (the data dir, releasesDir, fetch.outRoots), and never replaces a
// directory it did not make unless the caller says `force`.
import { lstat, readdir, realpath } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path'
import { parseReleaseName } from '../../protocol/names.js'
import { HeraldError } from '../errors.js'

/** The real path of `path`, or of its nearest existing ancestor joined with the rest. */
async function realish (path: string): Promise<string> {
  let head = path
  const tail: string[] = []
  for (;;) {
    try {
      return join(await realpath(head), ...tail.reverse())
    } catch (err: any) {
      if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') throw err
      const up = dirname(head)
      if (up === head) return path
      tail.push(basename(head))
      head = up
    }
  }
}

function inside (root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel))
}

async function nonEmptyDir (path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length > 0
  } catch (err: any) {
    if (err.code === 'ENOENT') return false
    if (err.code === 'ENOTDIR') return true
    throw err
  }
}

/**
 * Validate `out` for fetching `name` into it; returns the path to hand to the fetch. Throws INVALID_PATH
 * (not absolute, or a `..` segment), OUT_NOT_ALLOWED (outside every allowed root, symlinks resolved) or
 * TARGET_NOT_EMPTY (`<out>/<dataset>/<version>` holds files Herald did not put there, or
 * `<out>/<dataset>/current` is not a symlink; `force` allows the first).
 */
export async function checkFetchOut (out: string, name: string, opts: { roots: string[], force?: boolean }): Promise<string> {
  if (!isAbsolute(out)) throw new HeraldError('INVALID_PATH', `out must be an absolute path (the CLI resolves a relative one), got ${JSON.stringify(out)}`)
  if (out.split(/[/\\]+/).includes('..')) throw new HeraldError('INVALID_PATH', `out must not contain a ".." segment: ${out}`)
  const { dataset, version } = parseReleaseName(name)
  const real = await realish(out)
  const roots = await Promise.all(opts.roots.map(realish))
  if (!roots.some(r => inside(r, real))) {
    throw new HeraldError('OUT_NOT_ALLOWED', `${out} is outside the directories this daemon may write releases to (${opts.roots.join(', ')}); add a root to fetch.outRoots in its config`)
  }
  const target = join(out, dataset, version)
  const marker = join(out, dataset, `.${version}.manifest`)
  const ours = await lstat(marker).then(st => st.isFile(), () => false)
  if (!ours && opts.force !== true && await nonEmptyDir(target)) {
    throw new HeraldError('TARGET_NOT_EMPTY', `${target} exists and is not empty; it would be replaced (herald fetch --force to allow it)`)
  }
  const current = join(out, dataset, 'current')
  const st = await lstat(current).catch(() => undefined)
  if (st != null && !st.isSymbolicLink()) {
    throw new HeraldError('TARGET_NOT_EMPTY', `${current} exists and is not a symlink; move it away before fetching into ${out}`)
  }
  return out
}
