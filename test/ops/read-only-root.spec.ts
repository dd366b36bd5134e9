// The chart runs heraldd with readOnlyRootFilesystem and only the data directory and /tmp writable.
// Checked without a cluster: in a private mount namespace the root filesystem is remounted read-only,
// the data directory and /tmp become tmpfs mounts (the pod's volume and emptyDir), and the entry point
// runs as uid 10001 through start, ready and a clean stop.
import { expect } from 'chai'
import { spawn, spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const UID = 10001

describe('heraldd on a read-only root filesystem', function () {
  this.timeout(90_000)
  let dir: string

  before(function () {
    const probe = process.getuid?.() === 0 ? spawnSync('unshare', ['--mount', 'true']) : undefined
    if (probe?.status !== 0) {
      // needs root and mount namespaces; CI runs as root on a machine that has both
      if (process.env.CI != null) throw new Error('this test needs root and `unshare --mount`')
      this.skip()
    }
  })

  // outside /tmp, which the test mounts over
  beforeEach(async () => { dir = await mkdtemp('/var/tmp/herald-ro-') })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('should start, become ready and stop cleanly with only its data directory and /tmp writable', async () => {
    await chmod(dir, 0o755)
    const bin = join(dir, 'bin')
    const data = join(dir, 'data')
    await mkdir(bin)
    await mkdir(data)
    for (const name of ['heraldd', 'herald']) {
      await chmod(join(root, `build/cli/${name}.js`), 0o755)
      await symlink(join(root, `build/cli/${name}.js`), join(bin, name))
    }
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_'))), PATH: `${bin}:${process.env.PATH ?? ''}`, HERALD_SEED: 'true', HERALD_DATA_DIR: data, HERALD_LOG_LEVEL: 'warn', HOME: '/nonexistent' }
    const script = [
      'set -e',
      'mount --make-rprivate /',
      'mount -o remount,bind,ro /',
      `mount -t tmpfs -o uid=${UID},gid=${UID},mode=0700 tmpfs "${data}"`,
      'mount -t tmpfs -o mode=1777 tmpfs /tmp',
      // proves the root is read-only for the test itself
      'if touch /var/tmp/herald-ro-probe 2>/dev/null; then echo "root is writable"; exit 99; fi',
      `exec setpriv --reuid=${UID} --regid=${UID} --clear-groups sh "${join(root, 'deploy/docker/entrypoint.sh')}" start --listen /ip4/127.0.0.1/tcp/0 --api-port 0 --metrics-port 0`
    ].join('\n')
    const child = spawn('unshare', ['--mount', 'sh', '-c', script], { env })
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { out += b.toString() })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no ready banner in 30 s:\n${out}`)) }, 30_000)
        child.stdout.on('data', () => { if (/heraldd \S+ ready /.test(out)) { clearTimeout(timer); resolve() } })
        void exited.then(code => { clearTimeout(timer); reject(new Error(`exited ${String(code)} before ready:\n${out}`)) })
      })
      expect(out).to.include('seed=true')
      child.kill('SIGTERM')
      expect(await exited, out).to.equal(0)
      expect(out).to.not.match(/EROFS|read-only file system/i)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
