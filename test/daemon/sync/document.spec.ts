import { expect } from 'chai'
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadDesiredState, parseDocuments } from '../../../daemon/sync/document.js'
import { windowAt } from '../../../daemon/sync/window.js'

const CID = 'bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'

function doc (databases: string, extra = ''): string {
  return `apiVersion: herald.io/v1
kind: DatabaseSync
metadata: { name: production-dbs }
spec:
  databases:
${databases}
${extra}`
}

function expectProblem (fn: () => unknown, ...parts: string[]): void {
  try {
    fn()
  } catch (err: any) {
    expect(err.code).to.equal('INVALID_SYNC_DOCUMENT')
    for (const p of parts) expect(err.message).to.include(p)
    return
  }
  expect.fail('expected INVALID_SYNC_DOCUMENT')
}

describe('DatabaseSync documents', () => {
  it('should read the issue\'s YAML shape with a manifest CID as sha256', () => {
    const [d] = parseDocuments('a.yaml', doc(`    - { name: ncbi-nr, version: "2024-03-15", sha256: "${CID}" }\n    - { name: uniprot, version: "2024-03" }`, '  updatePolicy: { schedule: "0 2 * * SUN", validation: required }'))
    expect(d.spec.databases[0].sha256).to.equal(CID)
    expect(d.spec.updatePolicy?.validation).to.equal('required')
  })

  it('should read JSON, several YAML documents per file, and make the last entry of a dataset its current', () => {
    const json = JSON.stringify({ apiVersion: 'herald.io/v1', kind: 'DatabaseSync', metadata: { name: 'j' }, spec: { databases: [{ name: 'pfam', version: '36' }, { name: 'pfam', version: '37' }] } })
    expect(parseDocuments('a.json', json)).to.have.length(1)
    const two = doc('    - { name: a, version: "1" }') + '---\n' + doc('    - { name: b, version: "1" }')
    expect(parseDocuments('b.yaml', two).map(d => d.spec.databases[0].name)).to.deep.equal(['a', 'b'])
  })

  it('should refuse an unknown key with the file and the path of the key', () => {
    expectProblem(() => parseDocuments('/etc/herald/sync/prod.yaml', doc(`    - { name: uniprot, version: "2024-03", sah256: "${CID}" }`)), '/etc/herald/sync/prod.yaml', 'spec.databases[0]', 'sah256')
    expectProblem(() => parseDocuments('p.yaml', doc('    - { name: uniprot, version: "1" }', '  updatePolicy: { schedul: "* * * * *" }')), 'spec.updatePolicy', 'schedul')
  })

  it('should refuse a pin that is not a CID, a bad cron, a bad name, the wrong kind and YAML syntax errors', () => {
    expectProblem(() => parseDocuments('p.yaml', doc('    - { name: uniprot, version: "1", sha256: "abc123" }')), 'spec.databases[0].sha256', 'not a manifest CID')
    expectProblem(() => parseDocuments('p.yaml', doc('    - { name: uniprot, version: "1" }', '  updatePolicy: { schedule: "every sunday" }')), 'spec.updatePolicy.schedule', 'cron')
    expectProblem(() => parseDocuments('p.yaml', doc('    - { name: UniProt, version: "1" }')), 'spec.databases[0].name')
    expectProblem(() => parseDocuments('p.yaml', doc('    - { name: u, version: "1" }').replace('DatabaseSync', 'Deployment')), 'kind')
    expectProblem(() => parseDocuments('p.yaml', 'spec: [unclosed'), 'p.yaml')
    expectProblem(() => parseDocuments('p.yaml', doc('    - { name: u, version: "1" }', 'metadata: { name: twice }')), 'p.yaml')
  })

  it('should refuse two current entries for one dataset, and one release pinned to two manifests', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'herald-syncdoc-'))
    try {
      await writeFile(join(dir, 'a.yaml'), doc('    - { name: u, version: "1", current: true }\n    - { name: u, version: "2", current: true }'))
      await loadDesiredState(dir).then(() => expect.fail('expected a refusal'), (err) => { expect(err.code).to.equal('INVALID_SYNC_DOCUMENT'); expect(err.message).to.include('both marked current') })
      await writeFile(join(dir, 'a.yaml'), doc(`    - { name: u, version: "1", sha256: "${CID}" }`))
      await writeFile(join(dir, 'b.yaml'), doc('    - { name: u, version: "1", manifestCid: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy" }'))
      await loadDesiredState(dir).then(() => expect.fail('expected a refusal'), (err) => { expect(err.message).to.include('b.yaml').and.include('another manifest pin') })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('should read a ConfigMap mount (files through a ..data symlink) and see the documents after a symlink swap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'herald-syncdoc-'))
    try {
      await mkdir(join(dir, '..2026_1'))
      await writeFile(join(dir, '..2026_1', 'dbs.yaml'), doc('    - { name: u, version: "1" }'))
      await symlink('..2026_1', join(dir, '..data'))
      await symlink('..data/dbs.yaml', join(dir, 'dbs.yaml'))
      const first = await loadDesiredState(dir)
      expect(first.files).to.deep.equal([join(dir, 'dbs.yaml')])
      expect(first.entries.map(e => `${e.dataset}@${e.version}:${String(e.current)}`)).to.deep.equal(['u@1:true'])
      // what the kubelet does: a new timestamped directory, a new ..data link renamed over the old one
      await mkdir(join(dir, '..2026_2'))
      await writeFile(join(dir, '..2026_2', 'dbs.yaml'), doc('    - { name: u, version: "1" }\n    - { name: u, version: "2" }'))
      await symlink('..2026_2', join(dir, '..data_tmp'))
      await rename(join(dir, '..data_tmp'), join(dir, '..data'))
      await rm(join(dir, '..2026_1'), { recursive: true })
      const second = await loadDesiredState(dir)
      expect(second.entries.map(e => `${e.dataset}@${e.version}:${String(e.current)}`)).to.deep.equal(['u@1:false', 'u@2:true'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('should say the schedule window is open only within windowMinutes after a cron time', () => {
    const at = Date.parse('2026-12-06T02:30:00Z')
    expect(windowAt(undefined, at).open).to.equal(true)
    expect(windowAt('0 2 * * SUN', at, 60, 'UTC')).to.deep.include({ open: true, closesAt: Date.parse('2026-12-06T03:00:00Z') })
    const closed = windowAt('0 2 * * SUN', at, 15, 'UTC')
    expect(closed.open).to.equal(false)
    expect(closed.opensAt).to.equal(Date.parse('2026-12-13T02:00:00Z'))
  })
})
