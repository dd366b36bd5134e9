import { expect } from 'chai'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ERROR_CODES, exitCodeFor, HTTP_STATUS_BY_CODE } from '../../daemon/errors.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

async function sources (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await sources(p))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

describe('error vocabulary', () => {
  it('should map every code raised in daemon/, protocol/, store/ and cli/ to an HTTP status and an exit status', async () => {
    const raised = new Set<string>()
    for (const folder of ['daemon', 'protocol', 'store', 'cli']) {
      for (const file of await sources(join(root, folder))) {
        const text = await readFile(file, 'utf8')
        for (const m of text.matchAll(/(?:HeraldError\(|super\(|code: )'([A-Z][A-Z_]{3,})'/g)) raised.add(m[1])
      }
    }
    expect(raised.size).to.be.greaterThan(15)
    const missing = [...raised].filter(c => ERROR_CODES[c] == null)
    expect(missing, 'codes without a row in ERROR_CODES').to.deep.equal([])
  })

  it('should give the store and shutdown codes their own statuses instead of 500 internal error', () => {
    expect(HTTP_STATUS_BY_CODE.STORE_CLOSED).to.equal(503)
    expect(HTTP_STATUS_BY_CODE.SHUTTING_DOWN).to.equal(503)
    expect(HTTP_STATUS_BY_CODE.MALFORMED_MESSAGE).to.equal(502)
    expect(exitCodeFor('DISK_FULL')).to.equal(6)
    expect(exitCodeFor('UNTRUSTED_PUBLISHER')).to.equal(4)
    expect(exitCodeFor('SOMETHING_NEW')).to.equal(1)
    expect(exitCodeFor(undefined)).to.equal(1)
  })
})
