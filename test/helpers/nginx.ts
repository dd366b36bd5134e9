// A Debian nginx serving a directory (an exported release) on a free loopback port, with the location
// blocks docs/PROTOCOL.md gives: raw-block content type and immutable cache headers under /ipfs/.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

/** A Debian nginx serving `root` on a free 127.0.0.x port, with the config docs/PROTOCOL.md gives. */
export async function startNginx (dir: string, root: string): Promise<{ url: string, child: ChildProcess }> {
  const prefix = join(dir, 'nginx')
  await execFileP('mkdir', ['-p', join(prefix, 'logs'), join(prefix, 'tmp')])
  // a free port: bind one, release it, give it to nginx (bounded retries if another process takes it)
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const conf = join(prefix, 'nginx.conf')
    await writeFile(conf, nginxConfig(prefix, root, port))
    const child = spawn('nginx', ['-p', prefix, '-e', join(prefix, 'logs', 'error.log'), '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
    const url = `http://127.0.0.1:${port}`
    const up = await waitUp(url, child)
    if (up) return { url, child }
    if (!stderr.includes('Address already in use')) throw new Error(`nginx did not start: ${stderr}`)
  }
  throw new Error('nginx: no free port in 5 attempts')
}

export function nginxConfig (prefix: string, root: string, port: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${prefix}/logs/error.log warn;
pid ${prefix}/logs/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location /ipfs/ {
      types { }
      default_type application/vnd.ipld.raw;
      add_header Cache-Control "public, max-age=29030400, immutable";
      add_header X-Content-Type-Options nosniff;
    }
    location /herald/ {
      types { }
      default_type application/octet-stream;
      add_header Cache-Control "no-cache";
    }
  }
}
`
}

export async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a != null ? a.port : 0
      s.close(() => { resolve(port) })
    })
  })
}

async function waitUp (url: string, child: ChildProcess): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode != null) return false
    try {
      await fetch(url + '/')
      return true
    } catch {}
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return false
}
