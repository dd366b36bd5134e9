import { expect } from 'chai'
import { formatReleaseName, parseReleaseName } from '../../protocol/names.js'
import { normalizeManifestPath, resolveInside } from '../../protocol/paths.js'

describe('release names', () => {
  it('should parse dataset@version', () => {
    expect(parseReleaseName('uniprot@2024-03')).to.deep.equal({ dataset: 'uniprot', version: '2024-03' })
    expect(formatReleaseName('ncbi-nr', 'v5')).to.equal('ncbi-nr@v5')
  })

  it('should reject malformed names with code INVALID_NAME', () => {
    for (const bad of ['uniprot', '@v1', 'Uni@v1', 'a@b@c', 'x@../y', 'x@', 'x@v 1', 'x@..']) {
      try {
        parseReleaseName(bad)
        expect.fail(`accepted ${bad}`)
      } catch (err: any) {
        expect(err.code, bad).to.equal('INVALID_NAME')
      }
    }
  })
})

describe('manifest paths', () => {
  it('should normalise harmless forms', () => {
    expect(normalizeManifestPath('a/./b//c')).to.equal('a/b/c')
    expect(normalizeManifestPath('./x')).to.equal('x')
  })

  it('should reject absolute, escaping, empty and odd paths', () => {
    for (const bad of ['/etc/passwd', '../x', 'a/../../b', 'a/..', '', '.', 'a\\b', 'C:/x', 'a\0b']) {
      expect(() => normalizeManifestPath(bad), JSON.stringify(bad)).to.throw()
    }
  })

  it('should refuse to resolve outside the root', () => {
    expect(resolveInside('/tmp/root', 'a/b')).to.equal('/tmp/root/a/b')
    expect(() => resolveInside('/tmp/root', '../x')).to.throw(/escapes/)
    expect(() => resolveInside('/tmp/root', '/etc')).to.throw(/escapes/)
    expect(() => resolveInside('/tmp/root', '.')).to.throw(/escapes/)
  })
})
