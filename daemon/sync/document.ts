// DatabaseSync documents: the desired state of a lab, one or more YAML or JSON documents per file, read
// from a file or every *.yaml / *.yml / *.json file of a directory (a Kubernetes ConfigMap mount).
// Unknown keys are refused; a problem is reported with the file and the path of the bad key.
import { readFile, readdir, stat } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { Cron } from 'croner'
import { parseAllDocuments } from 'yaml'
import { z } from 'zod'
import { parseCid } from '../../protocol/cid.js'
import { validDataset, validVersion } from '../../protocol/names.js'
import { MAX_DOCUMENT_BYTES, MAX_DOCUMENT_FILES } from './constants.js'
import { SyncDocumentError } from './errors.js'

/** `version: latest` follows the newest signed release of the dataset (see docs/OPERATIONS.md). */
export const LATEST = 'latest'

/** a manifest CID (any base), kept in its canonical text form (base32 CIDv1, as `herald ls --json` prints it) */
const ManifestPin = z.string().max(200).transform((v, ctx) => {
  try {
    return parseCid(v).toString()
  } catch {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v.slice(0, 80))} is not a manifest CID (as \`herald ls --json\` shows it)` })
    return z.NEVER
  }
})

const EntrySchema = z.object({
  /** the dataset, e.g. uniprot */
  name: z.string().refine(validDataset, 'a dataset name: lower-case letters, digits, ".", "_", "-", at most 64'),
  /** the version, or `latest` */
  version: z.string().refine(v => v === LATEST || validVersion(v), 'a version: letters, digits, ".", "_", "+", "-", at most 64, or "latest"'),
  /** the manifest CID the release must be signed for (the issue's `sha256`): anything else is refused */
  sha256: ManifestPin.optional(),
  /** the same, under its precise name; give one of the two */
  manifestCid: ManifestPin.optional(),
  /** this entry's release is the dataset's `current` (default: the last entry listed for the dataset) */
  current: z.boolean().optional(),
  /** releases of this dataset held in all: listed ones, then the newest other pinned ones; the rest are unpinned and collected */
  keep: z.number().int().min(1).max(100).optional()
}).strict().refine(e => e.sha256 == null || e.manifestCid == null || e.sha256 === e.manifestCid, { message: 'sha256 and manifestCid differ: give one', path: ['manifestCid'] })

const PolicySchema = z.object({
  /** cron expression (5 or 6 fields): when a window of changes opens; absent: always open */
  schedule: z.string().superRefine((v, ctx) => {
    try { new Cron(v, { paused: true }).stop() } catch (err: any) { ctx.addIssue({ code: 'custom', message: `not a cron expression: ${String(err.message)}` }) }
  }).optional(),
  /** how long each window stays open, minutes */
  windowMinutes: z.number().int().min(1).max(7 * 24 * 60).optional(),
  /** IANA time zone of the schedule (default: the host's) */
  timezone: z.string().min(1).optional(),
  /** required: re-hash a fetched release (herald verify) before it is counted as held */
  validation: z.enum(['required', 'none']).optional(),
  /** default `keep` of the entries */
  keep: z.number().int().min(1).max(100).optional()
}).strict()

export const DocumentSchema = z.object({
  apiVersion: z.literal('herald.io/v1'),
  kind: z.literal('DatabaseSync'),
  metadata: z.object({
    name: z.string().min(1).max(253),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional()
  }).strict(),
  spec: z.object({
    databases: z.array(EntrySchema).max(1000),
    updatePolicy: PolicySchema.optional()
  }).strict()
}).strict()

export type SyncDocument = z.infer<typeof DocumentSchema>
export type SyncEntrySpec = z.infer<typeof EntrySchema>
export type UpdatePolicy = z.infer<typeof PolicySchema>

/** One desired release, as the reconciler sees it. */
export interface DesiredEntry {
  /** the document it comes from: `file#metadata.name` */
  source: string
  dataset: string
  version: string
  manifestCid?: string
  current: boolean
  keep: number
  validation: 'required' | 'none'
  schedule?: string
  windowMinutes?: number
  timezone?: string
  /** set once a `version: latest` entry is resolved to the newest announced version */
  tracksLatest?: boolean
}

/** `spec.databases[1].sha256` for a zod issue path. */
export function keyPath (path: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : (out === '' ? '' : '.') + String(p)
  return out === '' ? '(top level)' : out
}

/** Parse the text of one file: every document in it, validated. */
export function parseDocuments (file: string, text: string): SyncDocument[] {
  if (Buffer.byteLength(text) > MAX_DOCUMENT_BYTES) throw new SyncDocumentError(file, [`larger than ${MAX_DOCUMENT_BYTES} bytes`])
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true })
  const list = Array.isArray(docs) ? docs : [docs]
  const out: SyncDocument[] = []
  list.forEach((doc, i) => {
    const where = list.length > 1 ? `document ${i + 1}: ` : ''
    if (doc.errors.length > 0) throw new SyncDocumentError(file, doc.errors.map(e => `${where}${e.message.split('\n')[0]}`))
    const raw = doc.toJS({ maxAliasCount: 100 })
    if (raw == null) return
    const r = DocumentSchema.safeParse(raw)
    if (!r.success) throw new SyncDocumentError(file, r.error.issues.map(issue => `${where}${keyPath(issue.path)}: ${issue.message}`))
    out.push(r.data)
  })
  return out
}

/** The files a path names: itself, or the documents of a directory (hidden names, as ConfigMap's `..data`, skipped). */
export async function documentFiles (path: string): Promise<string[]> {
  const st = await stat(path)
  if (!st.isDirectory()) return [path]
  const names = (await readdir(path)).filter(n => !n.startsWith('.') && ['.yaml', '.yml', '.json'].includes(extname(n).toLowerCase())).sort()
  if (names.length > MAX_DOCUMENT_FILES) throw new SyncDocumentError(path, [`more than ${MAX_DOCUMENT_FILES} document files`])
  const files: string[] = []
  for (const n of names) {
    // a ConfigMap entry is a symlink into ..data: stat follows it; a dangling one (mid-swap) is skipped
    const s = await stat(join(path, n)).catch(() => undefined)
    if (s?.isFile() === true) files.push(join(path, n))
  }
  return files
}

export interface LoadedState {
  files: string[]
  documents: Array<{ file: string, doc: SyncDocument }>
  entries: DesiredEntry[]
}

/** Read and validate every document under `path`, then flatten them into desired entries. */
export async function loadDesiredState (path: string): Promise<LoadedState> {
  let files: string[]
  try {
    files = await documentFiles(path)
  } catch (err: any) {
    if (err instanceof SyncDocumentError) throw err
    throw new SyncDocumentError(path, [`cannot read: ${String(err.code ?? err.message)}`], { cause: err })
  }
  const documents: LoadedState['documents'] = []
  for (const file of files) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err: any) {
      throw new SyncDocumentError(file, [`cannot read: ${String(err.code ?? err.message)}`], { cause: err })
    }
    for (const doc of parseDocuments(file, text)) documents.push({ file, doc })
  }
  return { files, documents, entries: flatten(documents) }
}

/** Entries of every document; a release listed twice with different pins, or two `current` entries for one dataset, is refused. */
export function flatten (documents: LoadedState['documents']): DesiredEntry[] {
  const entries: DesiredEntry[] = []
  const byRelease = new Map<string, DesiredEntry>()
  for (const { file, doc } of documents) {
    const policy = doc.spec.updatePolicy ?? {}
    doc.spec.databases.forEach((e, i) => {
      const entry: DesiredEntry = {
        source: `${file}#${doc.metadata.name}`,
        dataset: e.name,
        version: e.version,
        manifestCid: e.manifestCid ?? e.sha256,
        current: e.current ?? false,
        keep: e.keep ?? policy.keep ?? 1,
        validation: policy.validation ?? 'none',
        schedule: policy.schedule,
        windowMinutes: policy.windowMinutes,
        timezone: policy.timezone
      }
      const key = `${e.name}@${e.version}`
      const seen = byRelease.get(key)
      if (seen != null) {
        if (seen.manifestCid !== entry.manifestCid) throw new SyncDocumentError(file, [`spec.databases[${i}]: ${key} is also listed by ${seen.source} with another manifest pin`])
        return
      }
      byRelease.set(key, entry)
      entries.push(entry)
    })
  }
  // one current per dataset: the entry marked so, else the last one listed
  for (const dataset of new Set(entries.map(e => e.dataset))) {
    const of = entries.filter(e => e.dataset === dataset)
    const marked = of.filter(e => e.current)
    if (marked.length > 1) throw new SyncDocumentError(marked[1].source.split('#')[0], [`${dataset}: ${marked.map(e => e.version).join(' and ')} are both marked current`])
    if (marked.length === 0) of[of.length - 1].current = true
  }
  return entries
}
