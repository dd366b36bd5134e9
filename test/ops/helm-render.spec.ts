// test/ops/helm-render.ts against Go template and Sprig behaviour it must copy for the chart's checks to
// mean anything: whitespace trimming, branches, with, variables, nil, and refusing what it cannot do.
import { expect } from 'chai'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { renderChart, TemplateFail } from './helm-render.js'

describe('helm-render', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-chart-'))
    mkdirSync(join(dir, 'templates'))
    writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: t\nversion: 1.0.0\nappVersion: "2.0"\n')
    writeFileSync(join(dir, 'values.yaml'), 'a: { b: 3 }\nempty: ""\nnothing: null\nlist: [x, y]\nmap: { k: v }\nflag: false\n')
  })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  const render = (tpl: string, values = {}): string => {
    writeFileSync(join(dir, 'templates', 't.yaml'), tpl)
    return renderChart(dir, { values }).files.get('t.yaml')!
  }

  it('should trim whitespace like {{- and -}}', () => {
    expect(render('x:\n  {{- " y" }}\nz: {{ "w" -}}\n\n  q')).to.equal('x: y\nz: wq')
  })

  it('should take if / else if / else and with branches by Go truthiness', () => {
    expect(render('{{ if .Values.empty }}a{{ else if .Values.list }}b{{ else }}c{{ end }}')).to.equal('b')
    expect(render('{{ if or .Values.nothing .Values.flag }}a{{ else }}c{{ end }}')).to.equal('c')
    expect(render('{{ with .Values.map }}{{ .k }}{{ end }}{{ with .Values.empty }}no{{ else }}none{{ end }}')).to.equal('vnone')
    expect(render('{{ if and (eq .Values.a.b 3) (not .Values.flag) }}yes{{ end }}')).to.equal('yes')
  })

  it('should evaluate pipelines, variables and the Sprig functions it knows', () => {
    expect(render('{{ $x := .Values.map.k }}{{ $x = printf "%s-%s" "n" $x }}{{ $x | quote }}')).to.equal('"n-v"')
    expect(render('m:{{ toYaml .Values.map | nindent 2 }}')).to.equal('m:\n  k: v')
    expect(render('{{ .Values.nothing | toString }}|{{ default "d" .Values.empty }}|{{ true | ternary "T" "F" }}')).to.equal('<nil>|d|T')
    expect(render('{{ .Chart.AppVersion }} {{ .Release.Name }}')).to.equal('2.0 herald')
  })

  it('should throw TemplateFail for fail and required, and an Error for what it does not support', () => {
    expect(() => render('{{ required "need b" .Values.empty }}')).to.throw(TemplateFail, 'need b')
    expect(() => render('{{ fail "stop" }}')).to.throw(TemplateFail, 'stop')
    expect(() => render('{{ range .Values.list }}{{ . }}{{ end }}')).to.throw(Error, /does not support/)
    expect(() => render('{{ .Values.a.b | b64enc }}')).to.throw(Error, /does not support the function b64enc/)
  })
})
