/**
 * The network-namespace harness: a namespace whose only way out is the TUN, for CI jobs
 * and tests that run a command "behind GSA".
 *
 * Layout (the emulator process itself stays in the host namespace):
 *
 *   host netns                               netns gsaemu-<pid>-s<start>-<n>
 *   ┌────────────────────────────┐           ┌──────────────────────────────────┐
 *   │ gsa-emu (node)             │  TUN fd   │ tunX 10.255.0.1/30, mtu 65535    │
 *   │  reads/writes the TUN ◄────┼───────────┼─► default dev tunX               │
 *   │  listener socket (created  │           │   lo up                          │
 *   │   inside the ns, 10.255.0.1)│          │ /etc/netns/NS/resolv.conf:       │
 *   │  edge / bypass / upstream  │           │   nameserver 6.6.255.254         │
 *   │   sockets: host netns ─► out│          │ the user's command               │
 *   └────────────────────────────┘           └──────────────────────────────────┘
 *
 * Loop avoidance: every socket the emulator opens on its own behalf (edge, bypassed
 * flows, DNS upstream) lives in the host namespace, whose routes do not involve the TUN,
 * so they can never re-enter it. Only the TUN device and the TCP listener are created
 * inside the namespace (the addon enters it on the calling thread for those two calls).
 * The namespace has no route to the host network: only the TUN.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { TunUnavailableError } from '../../errors.js';
import { pidAlive, startTicks } from '../../util/pid-lock.js';
import { openTun, type PacketDevice } from './device.js';
import { createTunStack, type TunStack, type TunStackOptions } from './stack.js';

export interface NetnsOptions {
  /**
   * Namespace name (default gsaemu-<pid>-s<start ticks>-<random>: `cleanupStaleNetns` removes
   * it once this process is gone, see there).
   */
  name?: string;
  /**
   * TUN name (default gsat<random>, 15 bytes max). A name with `%d` is a template the kernel
   * fills in (gsat%d: gsat0, gsat1, ...): `Netns.tunName` is the name it chose.
   */
  tunName?: string;
  tunAddress?: string;
  /** Prefix length of the TUN address (default 30: tunAddress and natAddress). */
  prefix?: number;
  mtu?: number;
  /** Nameserver written to /etc/netns/NAME/resolv.conf (default 6.6.255.254, intercepted). */
  dnsAddress?: string;
  /**
   * The host's name-service switch file (default /etc/nsswitch.conf), read for
   * `nsswitchForNetns`: a `hosts:` line naming a host daemon gets a copy for the namespace.
   */
  nsswitchPath?: string;
}

/**
 * NSS host services that ask a daemon of the host over a Unix socket (systemd-resolved,
 * Avahi), which `ip netns exec` does not redirect: a lookup through them leaves the
 * namespace's DNS (6.6.255.254) out, so FQDN rules never see the name.
 */
const HOST_DAEMON_SERVICES = new Set([
  'resolve',
  'mdns',
  'mdns4',
  'mdns6',
  'mdns_minimal',
  'mdns4_minimal',
  'mdns6_minimal',
]);

/**
 * The namespace's nsswitch.conf: the host's `text` with each `hosts:` line's host-daemon
 * services (and the `[...]` actions that follow them) left out and `dns` added when missing,
 * so names are looked up in /etc/hosts and then the namespace's resolv.conf, as glibc does
 * with `hosts: files dns` (Fedora's and Arch's `resolve [!UNAVAIL=return]` would ask the host's
 * systemd-resolved). null when no `hosts:` line needs it: no file is written then.
 */
export function nsswitchForNetns(text: string): string | null {
  let changed = false;
  const lines = text.split('\n').map((line) => {
    const m = /^(\s*hosts\s*:\s*)([^#]*)(#.*)?$/.exec(line);
    if (!m) return line;
    // A service, or an action in brackets (which may hold spaces: `[NOTFOUND = return]`).
    const tokens = (m[2] ?? '').match(/\[[^\]]*\]?|[^\s[]+/g) ?? [];
    const kept: string[] = [];
    let dropping = false;
    for (const tok of tokens) {
      // An action (`[NOTFOUND=return]`) belongs to the service before it.
      if (!tok.startsWith('[')) dropping = HOST_DAEMON_SERVICES.has(tok);
      if (!dropping) kept.push(tok);
    }
    if (!kept.includes('dns')) kept.push('dns');
    if (kept.length === tokens.length && kept.every((k, i) => k === tokens[i])) return line;
    changed = true;
    return `${m[1]}${kept.join(' ')}`;
  });
  return changed ? lines.join('\n') : null;
}

export interface Netns {
  readonly name: string;
  readonly path: string;
  /** The TUN's name as the kernel returned it (a `%d` template filled in). */
  readonly tunName: string;
  readonly device: PacketDevice;
  /** Spawn `command args...` inside the namespace (`ip netns exec`). */
  spawn(
    command: string,
    args: readonly string[],
    opts?: { stdio?: 'inherit' | 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv },
  ): ChildProcess;
  /** Remove the namespace and /etc/netns/NAME; closes the device if still open. Idempotent. */
  destroy(): void;
}

export const NETNS_PREFIX = 'gsaemu-';
/** The signals that end a namespace run cleanly: Ctrl+C, `kill`, a closed terminal. */
export const NETNS_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const live = new Set<Netns>();
let exitHookInstalled = false;

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) {
    throw new TunUnavailableError(
      `the \`ip\` command (iproute2) is needed for the namespace harness: ${r.error.message}`,
    );
  }
  if (r.status !== 0) {
    const msg = (r.stderr || r.stdout || '').trim();
    if (/Operation not permitted|Permission denied/i.test(msg)) {
      throw new TunUnavailableError(
        `ip ${args.join(' ')}: ${msg}: needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN`,
      );
    }
    throw new Error(`ip ${args.join(' ')} failed: ${msg}`);
  }
}

/**
 * The pids still in namespace `name`: `ip netns pids` (the name as this process sees it),
 * and the processes that see the name, in their own mount namespace, bound to the network
 * namespace they are in (`/proc/<pid>/root/run/netns/<name>`). A run started under
 * `ip netns exec` (a private mount namespace) bound the name there only: from the host the
 * name is an empty file, `ip netns pids` finds nothing, and its command, left running by a
 * SIGKILL, is found by the second look alone (it runs in a copy of that mount namespace).
 */
function pidsIn(name: string): number[] {
  const found = new Set<number>();
  const r = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' });
  if (r.status === 0) for (const w of r.stdout.split(/\s+/)) if (w) found.add(Number(w));
  for (const pid of pidsSeeingNetns(name)) found.add(pid);
  return [...found].filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

/** Processes whose own view of /var/run/netns/<name> is the network namespace they are in. */
function pidsSeeingNetns(name: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  // Its real path (/run/netns): under /proc/<pid>/root an absolute link (/var/run -> /run)
  // is followed in this process's view, not in that process's.
  let dir = '/var/run/netns';
  try {
    dir = realpathSync(dir);
  } catch {}
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const own = statSync(`/proc/${e}/ns/net`);
      const seen = statSync(`/proc/${e}/root${dir}/${name}`);
      if (seen.dev === own.dev && seen.ino === own.ino) out.push(Number(e));
    } catch {
      // Gone, not bound there in its view, or not ours to look at.
    }
  }
  return out;
}

/** Ends the processes left in namespace `name`: SIGTERM, up to 1 s, then SIGKILL. */
function endLeftovers(name: string): void {
  const signal = (pids: number[], sig: NodeJS.Signals): void => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {}
    }
  };
  let pids = pidsIn(name);
  if (pids.length === 0) return;
  signal(pids, 'SIGTERM');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 20 && pids.length > 0; i++) {
    Atomics.wait(nap, 0, 0, 50);
    pids = pidsIn(name);
  }
  signal(pids, 'SIGKILL');
}

/**
 * Why the harness cannot run here (one line: what is missing and how to get it, as `up
 * --tun` says it), or null when it can (Linux, root, /dev/net/tun, ip).
 */
export function harnessUnavailable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return 'needs root (creating namespaces and TUN devices): run it with sudo';
  }
  if (!existsSync('/dev/net/tun')) {
    return '/dev/net/tun is missing: modprobe tun, or pass --device /dev/net/tun to the container';
  }
  const r = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'the `ip` command (iproute2) is missing: install iproute2';
  return null;
}

/**
 * The default name of a namespace this process creates: gsaemu-<pid>-s<start>-<random>,
 * <start> the process's start time (field 22 of /proc/<pid>/stat, clock ticks after boot), so
 * that a later process reusing the pid is not taken for its owner. Without /proc: no `s<start>`.
 */
function defaultNetnsName(rand: string): string {
  const ticks = startTicks(process.pid);
  return `${NETNS_PREFIX}${process.pid}-${ticks !== null ? `s${ticks}-` : ''}${rand}`;
}

/** Create the namespace, its TUN (created inside it), address, routes and resolv.conf. */
export function createNetns(opts: NetnsOptions = {}): Netns {
  const rand = randomBytes(4).toString('hex');
  const name = opts.name ?? defaultNetnsName(rand);
  // The kernel fills in a `%d` template (TUNSETIFF): after the open, the device's name.
  let tunName = opts.tunName ?? `gsat${rand}`.slice(0, 15);
  const tunAddress = opts.tunAddress ?? '10.255.0.1';
  const prefix = opts.prefix ?? 30;
  const mtu = opts.mtu ?? 65535;
  const path = `/var/run/netns/${name}`;
  const etc = `/etc/netns/${name}`;
  let device: PacketDevice | null = null;
  let destroyed = false;
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    live.delete(handle);
    try {
      device?.close();
    } catch {}
    // Processes the command left behind (a daemon it started) would outlive the namespace,
    // unnamed and out of reach: end them first (TERM, up to 1 s, then KILL).
    endLeftovers(name);
    spawnSync('ip', ['netns', 'del', name]);
    rmSync(etc, { recursive: true, force: true });
  };
  const handle: Netns = {
    name,
    path,
    get tunName(): string {
      return tunName;
    },
    get device(): PacketDevice {
      return device!;
    },
    spawn(command, args, o = {}) {
      // Through `sh -c 'exec "$0" "$@"'`: a command that cannot start exits 127 (not found)
      // or 126 (not executable), as in a shell; `ip netns exec` alone exits 1 or 255.
      return spawn('ip', ['netns', 'exec', name, 'sh', '-c', 'exec "$0" "$@"', command, ...args], {
        stdio: o.stdio ?? 'inherit',
        env: o.env ?? process.env,
      });
    },
    destroy,
  };
  ip(['netns', 'add', name]);
  live.add(handle);
  installExitHook();
  try {
    mkdirSync(etc, { recursive: true });
    writeFileSync(`${etc}/resolv.conf`, `nameserver ${opts.dnsAddress ?? '6.6.255.254'}\n`);
    // `ip netns exec` bind-mounts each file here over /etc's: only over one that exists.
    const nsswitchPath = opts.nsswitchPath ?? '/etc/nsswitch.conf';
    let nss: string | null = null;
    try {
      nss = nsswitchForNetns(readFileSync(nsswitchPath, 'utf8'));
    } catch {}
    if (nss !== null && existsSync('/etc/nsswitch.conf')) {
      writeFileSync(`${etc}/nsswitch.conf`, nss);
    }
    device = openTun({ name: tunName, mtu, netns: name, up: true });
    tunName = device.name;
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    ip(['-n', name, 'addr', 'add', `${tunAddress}/${prefix}`, 'dev', tunName]);
    ip(['-n', name, 'route', 'add', 'default', 'dev', tunName]);
  } catch (err) {
    destroy();
    throw err;
  }
  return handle;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: synchronous cleanup when the process exits with namespaces still alive.
  process.on('exit', () => {
    for (const n of [...live]) n.destroy();
  });
}

/**
 * Whether the process that created a namespace gsaemu-<pid>-[s<start>-]... still runs:
 * its pid is alive and, when the name records the start time (`createNetns`'s default), the
 * process now holding the pid started then (not a later one that reused the pid). A name
 * without it (older gsa-emu, a name given by the caller): the pid alone.
 */
export function netnsOwnerAlive(pid: number, ticks: string | undefined): boolean {
  if (!pidAlive(pid)) return false;
  if (ticks === undefined) return true;
  const now = startTicks(pid);
  return now === null || String(now) === ticks;
}

/**
 * Remove namespaces left behind by dead gsa-emu processes (gsaemu-<pid>-...; see
 * `netnsOwnerAlive`: a pid reused by another process counts as dead), and end the processes
 * still running in them.
 */
export function cleanupStaleNetns(): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    return removed;
  }
  for (const n of names) {
    const m = /^gsaemu-(\d+)-(?:s(\d+)-)?/.exec(n);
    if (!m) continue;
    if (netnsOwnerAlive(Number(m[1]), m[2])) continue;
    // What the dead run's command left running in it (its command, a daemon it started)
    // would outlive the namespace, unnamed and out of reach: end it first, as destroy() does.
    endLeftovers(n);
    spawnSync('ip', ['netns', 'del', n]);
    rmSync(`/etc/netns/${n}`, { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}

export interface RunInNetnsOptions extends NetnsOptions {
  command: string;
  args?: readonly string[];
  /** Stack options (hooks: classify, onTcp, onUdp, acquire; dns upstream ...). */
  stack?: Omit<TunStackOptions, 'device' | 'netns'>;
  /** Called once the stack runs, before the command starts. */
  onReady?: (stack: TunStack, ns: Netns) => void | Promise<void>;
  stdio?: 'inherit' | 'pipe' | 'ignore';
  env?: NodeJS.ProcessEnv;
}

/**
 * Create a namespace behind the TUN, run `command` in it, tear everything down (also on
 * SIGINT/SIGTERM and on failure) and resolve with the command's exit code (128 + signal
 * number when it died of a signal).
 */
export async function runInNetns(opts: RunInNetnsOptions): Promise<number> {
  const ns = createNetns(opts);
  let stack: TunStack | null = null;
  let child: ChildProcess | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (child && child.exitCode === null) child.kill(sig);
    else {
      void stack?.close();
      ns.destroy();
      process.exit(128 + (osConstants.signals[sig] ?? 15));
    }
  };
  for (const sig of NETNS_SIGNALS) process.on(sig, onSignal);
  try {
    stack = await createTunStack({
      ...(opts.stack ?? {}),
      tunAddress: opts.tunAddress ?? opts.stack?.tunAddress,
      device: ns.device,
      netns: ns.name,
    });
    await opts.onReady?.(stack, ns);
    const c = ns.spawn(opts.command, opts.args ?? [], { stdio: opts.stdio, env: opts.env });
    child = c;
    return await new Promise<number>((resolve) => {
      c.once('error', () => resolve(127));
      c.once('exit', (code, signal) => {
        if (code !== null) resolve(code);
        else resolve(128 + (signal ? (osConstants.signals[signal] ?? 15) : 15));
      });
    });
  } finally {
    for (const sig of NETNS_SIGNALS) process.off(sig, onSignal);
    await stack?.close();
    ns.destroy();
  }
}
