// Network namespaces for tests that need a LAN (mDNS) or NAT (relay, hole punching): each daemon gets
// its own namespace, joined to others by veth pairs and bridges, with a management link to the test
// process's namespace for its API only. Everything is created under one random prefix and removed by
// `destroy()` (deleting a namespace deletes its interfaces). Needs root and iproute2 (iptables for NAT).
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Why namespace tests cannot run here, or undefined when they can. */
export async function netnsUnavailable (opts: { iptables?: boolean } = {}): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)'
  try {
    await run('ip', ['-V'])
  } catch {
    return 'needs iproute2 (`ip`)'
  }
  if (opts.iptables === true) {
    try {
      await run('iptables', ['--version'])
    } catch {
      return 'needs iptables (apt-get install iptables)'
    }
  }
  const probe = `hprobe${randomBytes(3).toString('hex')}`
  try {
    await run('ip', ['netns', 'add', probe])
    await run('ip', ['netns', 'del', probe])
  } catch (err: any) {
    return `cannot create a network namespace: ${String(err.stderr ?? err.message).trim()}`
  }
  return undefined
}

export class NetLab {
  /** short random prefix of every namespace and interface name (interface names are at most 15 chars) */
  readonly id = randomBytes(2).toString('hex')
  /** second octet of the management addresses 10.<m>.<i>.0/30 */
  readonly #mgmtNet = 200 + Math.floor(Math.random() * 50)
  readonly #namespaces: string[] = []
  #links = 0

  name (role: string): string { return `h${this.id}${role}` }

  async ip (...args: string[]): Promise<string> {
    return (await run('ip', args)).stdout
  }

  async exec (ns: string, cmd: string, ...args: string[]): Promise<string> {
    return (await run('ip', ['netns', 'exec', ns, cmd, ...args])).stdout
  }

  /** A new namespace with its loopback up. */
  async namespace (role: string): Promise<string> {
    const ns = this.name(role)
    await this.ip('netns', 'add', ns)
    this.#namespaces.push(ns)
    await this.exec(ns, 'ip', 'link', 'set', 'lo', 'up')
    return ns
  }

  /** A namespace holding one bridge (`br0`): a switch that namespaces are attached to. */
  async switch (role: string): Promise<string> {
    const ns = await this.namespace(role)
    await this.exec(ns, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
    // flood multicast (mDNS) to every port: no IGMP snooping on a test switch
    await this.exec(ns, 'ip', 'link', 'set', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
    await this.exec(ns, 'ip', 'link', 'set', 'br0', 'up')
    return ns
  }

  /** Connect `ns` to a switch with address `cidr` on interface `ifname` inside `ns`. */
  async attach (ns: string, sw: string, ifname: string, cidr: string): Promise<void> {
    const n = ++this.#links
    const outer = `h${this.id}s${n}`
    await this.ip('link', 'add', ifname, 'netns', ns, 'type', 'veth', 'peer', 'name', outer, 'netns', sw)
    await this.exec(sw, 'ip', 'link', 'set', outer, 'master', 'br0')
    await this.exec(sw, 'ip', 'link', 'set', outer, 'up')
    await this.exec(ns, 'ip', 'addr', 'add', cidr, 'dev', ifname)
    await this.exec(ns, 'ip', 'link', 'set', ifname, 'up')
  }

  /**
   * A point-to-point link from the test's namespace to `ns`, used only to reach a daemon's API: the
   * daemon's libp2p listens elsewhere, and nothing routes between this link and the test networks.
   * Returns the address inside `ns`.
   */
  async management (ns: string): Promise<string> {
    const n = ++this.#links
    const outer = `h${this.id}m${n}`
    const host = `10.${this.#mgmtNet}.${n}.1`
    const inner = `10.${this.#mgmtNet}.${n}.2`
    await this.ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', ns)
    await this.ip('addr', 'add', `${host}/30`, 'dev', outer)
    await this.ip('link', 'set', outer, 'up')
    await this.exec(ns, 'ip', 'addr', 'add', `${inner}/30`, 'dev', 'mgmt0')
    await this.exec(ns, 'ip', 'link', 'set', 'mgmt0', 'up')
    return inner
  }

  /**
   * A NAT router: a namespace on the `wan` switch at `wanCidr` and on its own LAN switch at `lanGateway`
   * (`10.x.y.1/24`), forwarding with iptables MASQUERADE out of its WAN side, and refusing connections
   * started from the WAN (a home or campus NAT). Returns the LAN switch to attach hosts to.
   */
  async natRouter (role: string, wan: string, wanCidr: string, lanGateway: string): Promise<string> {
    const ns = await this.namespace(role)
    await this.attach(ns, wan, 'wan0', wanCidr)
    const lan = await this.switch(`${role}l`)
    await this.attach(ns, lan, 'lan0', lanGateway)
    await this.exec(ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
    await this.exec(ns, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan0', '-j', 'MASQUERADE')
    await this.exec(ns, 'iptables', '-A', 'FORWARD', '-i', 'wan0', '-o', 'lan0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT')
    await this.exec(ns, 'iptables', '-A', 'FORWARD', '-i', 'wan0', '-o', 'lan0', '-j', 'DROP')
    return lan
  }

  /** Route `cidr` (default: everything) from `ns` through `gateway`. */
  async route (ns: string, gateway: string, cidr = 'default'): Promise<void> {
    await this.exec(ns, 'ip', 'route', 'add', cidr, 'via', gateway)
  }

  /** Remove every namespace (and with them every interface) this lab created. */
  async destroy (): Promise<void> {
    for (const ns of this.#namespaces.reverse()) {
      try {
        await this.ip('netns', 'del', ns)
      } catch {}
    }
    this.#namespaces.length = 0
  }
}
