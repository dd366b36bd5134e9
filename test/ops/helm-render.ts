// Renders deploy/helm/herald the way `helm template` does, for the subset of Go templates and Sprig
// functions the chart uses (no helm client can be installed from Debian or npm here). A construct
// outside that subset throws, so a template change that this renderer cannot follow fails the tests
// instead of being skipped over: teach it the construct, or keep the chart simple.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import YAML from 'yaml'

export class TemplateFail extends Error {
  constructor (message: string) { super(message); this.name = 'TemplateFail' }
}

type Node =
  | { t: 'text', s: string }
  | { t: 'act', expr: string }
  | { t: 'if', branches: Array<{ cond: string, body: Node[] }>, otherwise: Node[] }
  | { t: 'with', expr: string, body: Node[], otherwise: Node[] }
  | { t: 'define', name: string, body: Node[] }

interface Scope { dot: any, root: any, vars: Map<string, any>, defines: Map<string, Node[]> }

/** Split into text and actions, applying `{{-` / `-}}` whitespace trimming. */
function lex (src: string): Array<{ text?: string, action?: string }> {
  const out: Array<{ text?: string, action?: string }> = []
  let i = 0
  let trimNext = false
  while (i < src.length) {
    const open = src.indexOf('{{', i)
    let text = src.slice(i, open < 0 ? src.length : open)
    if (trimNext) text = text.replace(/^\s+/, '')
    if (open < 0) { out.push({ text }); break }
    const close = src.indexOf('}}', open)
    if (close < 0) throw new Error('unclosed {{')
    let inner = src.slice(open + 2, close)
    if (inner.startsWith('- ')) { text = text.replace(/\s+$/, ''); inner = inner.slice(2) }
    trimNext = inner.endsWith(' -')
    if (trimNext) inner = inner.slice(0, -2)
    out.push({ text }, { action: inner.trim() })
    i = close + 2
  }
  return out
}

function parse (src: string): Node[] {
  const tokens = lex(src)
  let pos = 0
  const block = (): { nodes: Node[], stop: string } => {
    const nodes: Node[] = []
    while (pos < tokens.length) {
      const tok = tokens[pos++]
      if (tok.text != null) { if (tok.text !== '') nodes.push({ t: 'text', s: tok.text }); continue }
      const a = tok.action!
      if (a.startsWith('/*')) continue
      if (a === 'end' || a === 'else' || a.startsWith('else if ')) return { nodes, stop: a }
      if (a.startsWith('if ')) {
        const branches = [{ cond: a.slice(3), body: [] as Node[] }]
        let otherwise: Node[] = []
        for (;;) {
          const r = block()
          if (r.stop.startsWith('else if ')) { branches.at(-1)!.body = r.nodes; branches.push({ cond: r.stop.slice(8), body: [] }); continue }
          branches.at(-1)!.body = r.nodes
          if (r.stop === 'else') { const e = block(); if (e.stop !== 'end') throw new Error('else without end'); otherwise = e.nodes }
          break
        }
        nodes.push({ t: 'if', branches, otherwise })
      } else if (a.startsWith('with ')) {
        const r = block()
        let otherwise: Node[] = []
        if (r.stop === 'else') otherwise = block().nodes
        nodes.push({ t: 'with', expr: a.slice(5), body: r.nodes, otherwise })
      } else if (a.startsWith('define ')) {
        const r = block()
        nodes.push({ t: 'define', name: JSON.parse(a.slice(7).trim()), body: r.nodes })
      } else if (/^(range|template|block|break|continue)\b/.test(a)) {
        throw new Error(`helm-render does not support {{ ${a} }}`)
      } else {
        nodes.push({ t: 'act', expr: a })
      }
    }
    return { nodes, stop: '' }
  }
  return block().nodes
}

const truthy = (v: any): boolean => !(v == null || v === false || v === 0 || v === '' ||
  (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && typeof v !== 'function' && Object.keys(v).length === 0))

function mergeOverwrite (dst: any, src: any): any {
  for (const [k, v] of Object.entries(src ?? {})) {
    dst[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && typeof dst[k] === 'object' && dst[k] !== null && !Array.isArray(dst[k])
      ? mergeOverwrite(dst[k], v)
      : structuredClone(v)
  }
  return dst
}

const indentLines = (n: number, s: string): string => s.split('\n').map(l => ' '.repeat(n) + l).join('\n')

/** Tokens of one pipeline: strings, numbers, parens, |, :=, =, names, .paths, $vars. */
function tokenize (expr: string): string[] {
  const re = /\s*("(?:[^"\\]|\\.)*"|\(|\)|\||:=|=|[^\s()|]+)/y
  const out: string[] = []
  let m: RegExpExecArray | null
  while (re.lastIndex < expr.length && (m = re.exec(expr)) != null) out.push(m[1])
  return out
}

function execute (nodes: Node[], scope: Scope): string {
  let out = ''
  for (const n of nodes) {
    if (n.t === 'text') out += n.s
    else if (n.t === 'define') scope.defines.set(n.name, n.body)
    else if (n.t === 'act') {
      const assign = n.expr.match(/^(\$[A-Za-z0-9_]+)\s*(:=|=)\s*(.*)$/s)
      if (assign != null) { scope.vars.set(assign[1], evalPipeline(assign[3], scope)); continue }
      const v = evalPipeline(n.expr, scope)
      out += v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v)
    } else if (n.t === 'if') {
      const hit = n.branches.find(b => truthy(evalPipeline(b.cond, scope)))
      out += execute(hit?.body ?? n.otherwise, scope)
    } else {
      const v = evalPipeline(n.expr, scope)
      out += truthy(v) ? execute(n.body, { ...scope, dot: v }) : execute(n.otherwise, scope)
    }
  }
  return out
}

function evalPipeline (expr: string, scope: Scope): any {
  const toks = tokenize(expr)
  let pos = 0
  const operand = (): any => {
    const t = toks[pos++]
    if (t === '(') { const v = pipeline(); if (toks[pos++] !== ')') throw new Error(`missing ) in ${expr}`); return v }
    if (t.startsWith('"')) return JSON.parse(t)
    if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t)
    if (t === 'true' || t === 'false') return t === 'true'
    if (t === '.') return scope.dot
    if (t.startsWith('.')) return t.slice(1).split('.').reduce((o, k) => o?.[k], scope.dot)
    if (t.startsWith('$')) {
      const [name, ...path] = t.split('.')
      const base = name === '$' ? scope.root : scope.vars.get(name)
      if (name !== '$' && !scope.vars.has(name)) throw new Error(`undefined variable ${name}`)
      return path.reduce((o, k) => o?.[k], base)
    }
    return { fn: t }
  }
  const command = (piped: any[]): any => {
    const parts: any[] = []
    while (pos < toks.length && toks[pos] !== '|' && toks[pos] !== ')') parts.push(operand())
    const [head, ...args] = parts
    if (head != null && typeof head === 'object' && 'fn' in head) return call(head.fn, [...args, ...piped], scope)
    if (typeof head === 'function') return head(...args, ...piped)
    if (args.length > 0 || piped.length > 0) throw new Error(`cannot call a value in ${expr}`)
    return head
  }
  const pipeline = (): any => {
    let v = command([])
    while (toks[pos] === '|') { pos++; v = command([v]) }
    return v
  }
  const v = pipeline()
  if (pos !== toks.length) throw new Error(`unparsed tail in ${expr}`)
  return v
}

function call (fn: string, a: any[], scope: Scope): any {
  switch (fn) {
    case 'quote': return JSON.stringify(a[0] == null ? '' : String(a[0]))
    case 'toString': return a[0] == null ? '<nil>' : String(a[0]) // as Sprig: nil prints as <nil>
    case 'trim': return String(a[0]).trim()
    case 'trimSuffix': return String(a[1]).endsWith(a[0]) ? String(a[1]).slice(0, -String(a[0]).length) : String(a[1])
    case 'replace': return String(a[2]).split(a[0]).join(a[1])
    case 'printf': { let i = 1; return String(a[0]).replace(/%s/g, () => String(a[i++])) } // %s only (Helm's numbers are float64)
    case 'toYaml': return truthy(a[0]) || typeof a[0] !== 'object' ? YAML.stringify(a[0]).trimEnd() : (Array.isArray(a[0]) ? '[]' : '{}')
    case 'toPrettyJson': return JSON.stringify(a[0], null, 2)
    case 'nindent': return '\n' + indentLines(a[0], String(a[1]))
    case 'indent': return indentLines(a[0], String(a[1]))
    case 'not': return !truthy(a[0])
    case 'and': return a.find(x => !truthy(x)) ?? a.at(-1)
    case 'or': return a.find(x => truthy(x)) ?? a.at(-1)
    case 'eq': return a.slice(1).some(x => x === a[0])
    case 'ternary': return truthy(a[2]) ? a[0] : a[1]
    case 'default': return truthy(a[1]) ? a[1] : a[0]
    case 'deepCopy': return structuredClone(a[0])
    case 'mustMergeOverwrite': return a.slice(1).reduce((d, s) => mergeOverwrite(d, s), a[0])
    case 'fail': throw new TemplateFail(String(a[0]))
    case 'required': if (!truthy(a[1])) throw new TemplateFail(String(a[0])); return a[1]
    case 'include': {
      const body = scope.defines.get(a[0])
      if (body == null) throw new Error(`no template ${String(a[0])}`)
      return execute(body, { ...scope, dot: a[1], vars: new Map() })
    }
    default: throw new Error(`helm-render does not support the function ${fn}`)
  }
}

export interface RenderOptions { values?: Record<string, any>, apiVersions?: string[], releaseName?: string }

export interface Rendered { docs: any[], files: Map<string, string>, notes: string }

/** Render every template of the chart; throws TemplateFail where the chart calls fail/required. */
export function renderChart (chartDir: string, opts: RenderOptions = {}): Rendered {
  const chart = YAML.parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'))
  const values = mergeOverwrite(YAML.parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')), opts.values ?? {})
  const apis = new Set(opts.apiVersions ?? ['v1', 'apps/v1'])
  const root = {
    Values: values,
    Release: { Name: opts.releaseName ?? 'herald', Namespace: 'default', Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
    Capabilities: { APIVersions: { Has: (v: string) => apis.has(v) } },
    Files: { Get: (p: string) => readFileSync(join(chartDir, p), 'utf8') }
  }
  const scope: Scope = { dot: root, root, vars: new Map(), defines: new Map() }
  const dir = join(chartDir, 'templates')
  const names = readdirSync(dir).sort()
  for (const f of names.filter(f => f.startsWith('_'))) execute(parse(readFileSync(join(dir, f), 'utf8')), scope)
  const files = new Map<string, string>()
  const docs: any[] = []
  for (const f of names.filter(f => !f.startsWith('_') && f.endsWith('.yaml'))) {
    const text = execute(parse(readFileSync(join(dir, f), 'utf8')), { ...scope, vars: new Map() })
    files.set(f, text)
    for (const doc of YAML.parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${f}: ${doc.errors.map(e => e.message).join('; ')}\n${text}`)
      const js = doc.toJS()
      if (js != null) docs.push(js)
    }
  }
  const notes = names.includes('NOTES.txt') ? execute(parse(readFileSync(join(dir, 'NOTES.txt'), 'utf8')), { ...scope, vars: new Map() }) : ''
  return { docs, files, notes }
}
