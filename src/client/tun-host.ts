/**
 * TUN capture of the host itself (`gsa-emu up --tun`): a TUN device in this namespace, the
 * stack behind it glued to the client (`attachTun`), and policy routing that sends the
 * host's IPv4 into it (`setupHostRouting`), while the emulator's own connections stay out.
 *
 * Loop avoidance (docs/decisions/tun-host-source-binding.md): every socket of the
 * emulator that leaves loopback (the remote edge's API and tunnels, bypassed flows, the
 * DNS upstream) is bound to the host's own address (`sourceAddress`, by default the
 * preferred source of the default route), and `from <sourceAddress> lookup main` is the
 * first rule. With the in-process demo edge nothing of the emulator leaves loopback, which
 * the `local` table keeps off the TUN, and the source rule is left out.
 *
 * Two steps, because the client must know the source address before it connects:
 * `prepareHostTun()` (checks, host-wide lock, stale cleanup, source and DNS detection),
 * then `attachHostTun(client, plan)` (device, address, stack, routes). `close()` undoes it
 * in reverse order; a process `exit` hook removes the routes if nothing else did, and a
 * run killed with SIGKILL leaves them to the next run's stale cleanup (the lock names a
 * dead pid).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addonUnavailable,
  openTun,
  type PacketDevice,
  tunNameTemplateProblem,
} from '../capture/tun/device.js';
import {
  HOST_ROUTING_PREF,
  HOST_ROUTING_TABLE,
  hostRoutingInUse,
  removeHostRouting,
  setupHostRouting,
} from '../capture/tun/host-routing.js';
import { GsaError, TunUnavailableError, UsageError } from '../errors.js';
import { isLoopbackIp } from '../forward/resolver.js';
import { ipFamily, parseIPv4 } from '../util/ip.js';
import { acquirePidLock, ownNetNamespace } from '../util/pid-lock.js';
import { makeDirs } from '../util/state-dir.js';
import type { RunningClient } from './client.js';
import { attachTun, type TunCapture } from './tun-capture.js';

/** The stack's default TUN address (a /30 with the NAT peer 10.255.0.2). */
export const HOST_TUN_ADDRESS = '10.255.0.1';
export const HOST_TUN_NAME = 'gsa0';
const CAP_NET_ADMIN = 12;

function hasNetAdmin(): boolean {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? (BigInt(`0x${m[1]}`) & (1n << BigInt(CAP_NET_ADMIN))) !== 0n : false;
  } catch {
    return false;
  }
}

/** Why `up --tun` cannot run here (one line: what is missing and how to get it), or null. */
export function hostTunUnavailable(): string | null {
  if (process.platform !== 'linux') {
    return `not Linux (this is ${process.platform}): TUN capture is Linux-only; run \`gsa-emu up\` without --tun for the SOCKS/HTTP capture`;
  }
  if (!hasNetAdmin()) {
    return 'needs root (creating a TUN device and routing rules): run it with sudo, or grant CAP_NET_ADMIN';
  }
  if (!existsSync('/dev/net/tun')) {
    return '/dev/net/tun is missing: modprobe tun, or pass --device /dev/net/tun to the container';
  }
  const r = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    return 'the `ip` command (iproute2) is missing: install iproute2';
  }
  return addonUnavailable();
}

function ipJson(args: string[]): Array<Record<string, unknown>> {
  const r = spawnSync('ip', ['-j', ...args], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  try {
    const v = JSON.parse(r.stdout || '[]') as unknown;
    return Array.isArray(v) ? (v as Array<Record<string, unknown>>) : [];
  } catch {
    return [];
  }
}

/**
 * What is wrong with `name` as the TUN interface's name (`--tun-name`), or null. The
 * kernel's rules (dev_valid_name): 1 to 15 bytes (IFNAMSIZ - 1; a longer name would be cut
 * short), no '/', ':' or whitespace, not "." or "..". With `existing` (default), an
 * interface of that name in this namespace must be a TUN device: opening another kind
 * fails with "Invalid argument".
 */
export function tunNameProblem(name: string, existing = true): string | null {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > 15) return `give an interface name of 1 to 15 bytes (not ${bytes})`;
  if (name === '.' || name === '..') return 'not an interface name';
  if (/[\s/:\0]/.test(name)) return "an interface name has no '/', ':' or whitespace";
  const template = tunNameTemplateProblem(name);
  if (template) return template;
  if (!existing) return null;
  const link = ipJson(['-d', 'link', 'show', 'dev', name])[0];
  if (!link) return null;
  const info = link.linkinfo as { info_kind?: unknown; info_data?: { type?: unknown } } | undefined;
  if (info?.info_kind === 'tun' && info.info_data?.type !== 'tap') return null;
  const kind = info?.info_data?.type ?? info?.info_kind ?? link.link_type;
  return `${name} is an existing interface${typeof kind === 'string' ? ` (${kind})` : ''}, not a TUN device: give another name`;
}

/**
 * The host's address for the emulator's own connections: the preferred source of the
 * IPv4 default route (no packet is sent), or null without a default route (then every
 * route but the default stays direct anyway, see host-routing.ts).
 */
export function detectSourceAddress(): string | null {
  const def = ipJson(['-4', 'route', 'show', 'default'])[0];
  if (!def) return null;
  const gw = typeof def.gateway === 'string' ? def.gateway : '1.0.0.0';
  const dev = typeof def.dev === 'string' ? ['oif', def.dev] : [];
  const got = ipJson(['-4', 'route', 'get', gw, ...dev])[0];
  return got && typeof got.prefsrc === 'string' ? got.prefsrc : null;
}

/**
 * The first IPv4, non-loopback `nameserver` of the first of `files` that has one (a
 * loopback stub such as systemd-resolved's 127.0.0.53 cannot be the upstream: its own
 * queries go into the TUN and would come back to it; its real servers are in
 * /run/systemd/resolve/resolv.conf).
 */
export function systemDnsServer(
  files: readonly string[] = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'],
): string | null {
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (m && ipFamily(m[1]!) === 4 && !isLoopbackIp(m[1]!)) return m[1]!;
    }
  }
  return null;
}

/** `ip` or `ip:port` (IPv4) -> { host, port }. */
export function parseDnsServer(v: string): { host: string; port: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(v.trim());
  const port = m?.[2] !== undefined ? Number(m[2]) : 53;
  if (!m || ipFamily(m[1]!) !== 4 || !(port >= 1 && port <= 65535)) {
    throw new UsageError(`--tun-dns "${v}" is not an IPv4 address[:port]`);
  }
  return { host: m[1]!, port };
}

/** Whether `ip` is in the TUN's subnet, HOST_TUN_ADDRESS/30 (the listener and the NAT peer). */
function inTunSubnet(ip: string): boolean {
  const n = parseIPv4(ip);
  const net = parseIPv4(HOST_TUN_ADDRESS);
  return n >= 0 && n - (n % 4) === net - (net % 4);
}

/**
 * What already uses the TUN's subnet (10.255.0.0/30) in this network namespace: an address
 * in it, or a route to it or to part of it, which would take the stack's NAT packets (the
 * TUN's own connected route would come second: flows time out, none is recorded); null when
 * it is free. `addrs`: `ip -j -4 addr show`, `routes`: `ip -j -4 route show` (main table).
 */
export function tunSubnetInUse(
  addrs: ReadonlyArray<Record<string, unknown>>,
  routes: ReadonlyArray<Record<string, unknown>>,
): string | null {
  for (const link of addrs) {
    const info = Array.isArray(link.addr_info) ? (link.addr_info as Record<string, unknown>[]) : [];
    for (const a of info) {
      if (a.family === 'inet' && typeof a.local === 'string' && inTunSubnet(a.local)) {
        return `the address ${a.local}/${String(a.prefixlen)} on ${String(link.ifname)}`;
      }
    }
  }
  for (const r of routes) {
    if (typeof r.dst !== 'string') continue;
    const [ip = '', len] = r.dst.split('/');
    if ((len === undefined || Number(len) >= 30) && inTunSubnet(ip)) {
      return `the route ${r.dst}${typeof r.dev === 'string' ? ` dev ${r.dev}` : ''}`;
    }
  }
  return null;
}

export interface HostTunOptions {
  /**
   * The address the emulator's own non-loopback sockets bind to; undefined: detect it
   * (`detectSourceAddress`); null: none (only when nothing of the emulator leaves loopback).
   */
  sourceAddress?: string | null;
  /** Does the emulator open non-loopback sockets (a remote edge, real DNS)? */
  ownTraffic: boolean;
  /** Upstream DNS for names no rule acquires, `ip[:port]`; default: `systemDnsServer()` (with ownTraffic). */
  dns?: string;
  /** The lock file; default /run/gsa-emu/host-tun-net-<netns inode>.lock (one per namespace). */
  lockFile?: string;
  /** Routing table and first rule preference (defaults 2025 and 10000). */
  table?: number;
  pref?: number;
}

export interface HostTunPlan {
  sourceAddress: string | null;
  dnsUpstream: { host: string; port: number; localAddress?: string } | null;
  table: number;
  pref: number;
  /** Release the host-wide lock (after the routes are removed). Idempotent. */
  release(): void;
}

/** One lock per network namespace (routing is per namespace): its inode names the file. */
function defaultLockFile(): string {
  const link = ownNetNamespace();
  const ns = link === null ? 'net' : `net-${/\[(\d+)\]/.exec(link)?.[1] ?? 'x'}`;
  for (const dir of ['/run/gsa-emu', join(tmpdir(), 'gsa-emu')]) {
    try {
      makeDirs(dir, 0o700);
      return join(dir, `host-tun-${ns}.lock`);
    } catch {}
  }
  return join(tmpdir(), `gsa-emu-host-tun-${ns}.lock`);
}

/**
 * Checks that host TUN capture can run, takes the host-wide lock (one `up --tun` per
 * network namespace; the routes of a dead one are removed first) and works out the source address and
 * the DNS upstream. Throws TunUnavailableError, GsaError GSA_ERR_BUSY or UsageError, before
 * anything was changed.
 */
export function prepareHostTun(o: HostTunOptions): HostTunPlan {
  const missing = hostTunUnavailable();
  if (missing) throw new TunUnavailableError(missing);
  const table = o.table ?? HOST_ROUTING_TABLE;
  const pref = o.pref ?? HOST_ROUTING_PREF;
  const release = acquirePidLock(
    o.lockFile ?? defaultLockFile(),
    'up --tun',
    "the host's TUN routing",
    'one `gsa-emu up --tun` per network namespace (this host, or this container): stop it first',
    () => removeHostRouting({ table, pref }),
  );
  try {
    const busy = hostRoutingInUse({ table, pref });
    if (busy) {
      throw new GsaError(
        'GSA_ERR_BUSY',
        `the host's TUN routing is in use: ${busy}, not by a running gsa-emu: remove it (\`ip rule del pref N\`, \`ip route flush table ${table}\`) and start again`,
      );
    }
    const used = tunSubnetInUse(ipJson(['-4', 'addr', 'show']), ipJson(['-4', 'route', 'show']));
    if (used) {
      throw new GsaError(
        'GSA_ERR_BUSY',
        `the TUN's subnet ${HOST_TUN_ADDRESS}/30 is in use in this network namespace: ${used}; free it, or run \`gsa-emu up --tun\` in a network namespace of its own (docs/tun.md, "In CI")`,
      );
    }
    let source: string | null = null;
    if (o.ownTraffic) {
      source = o.sourceAddress === undefined ? detectSourceAddress() : o.sourceAddress;
      if (source !== null && ipFamily(source) !== 4) {
        throw new UsageError(`--tun-source "${source}" is not an IPv4 address`);
      }
      if (source !== null && ipJson(['-4', 'addr', 'show', 'to', source]).length === 0) {
        throw new UsageError(`--tun-source ${source} is not an address of this host`);
      }
    }
    let dnsUpstream: HostTunPlan['dnsUpstream'] = null;
    if (o.dns !== undefined || o.ownTraffic) {
      const server = o.dns ?? systemDnsServer();
      if (server === null) {
        throw new UsageError(
          'no DNS server for names no rule acquires: /etc/resolv.conf lists none but loopback resolvers (whose own queries the TUN would capture); pass --tun-dns <address>',
        );
      }
      const d = parseDnsServer(server);
      dnsUpstream = { ...d, ...(source ? { localAddress: source } : {}) };
    }
    return { sourceAddress: source, dnsUpstream, table, pref, release };
  } catch (err) {
    release();
    throw err;
  }
}

export interface HostTun {
  readonly capture: TunCapture;
  readonly tunName: string;
  readonly tunAddress: string;
  readonly sourceAddress: string | null;
  /** Remove the routes, stop the stack, close the device, release the lock. Idempotent. */
  close(): Promise<void>;
}

export interface AttachHostTunOptions {
  /** Interface name (default gsa0). */
  tunName?: string;
  /** Answer names from this map with a local resolver instead of `plan.dnsUpstream` (demo). */
  hostsForDns?: Record<string, string>;
  icmpOnDrop?: boolean;
}

/** Creates the TUN, attaches the client to it and routes the host into it. */
export async function attachHostTun(
  client: RunningClient,
  plan: HostTunPlan,
  o: AttachHostTunOptions = {},
): Promise<HostTun> {
  let dev: PacketDevice | null = null;
  let capture: TunCapture | null = null;
  let undo: (() => void) | null = null;
  const onExit = (): void => undo?.();
  try {
    const nameProblem = o.tunName !== undefined ? tunNameProblem(o.tunName) : null;
    if (nameProblem) throw new UsageError(`--tun-name "${o.tunName}": ${nameProblem}`);
    dev = openTun({ name: o.tunName ?? HOST_TUN_NAME });
    const r = spawnSync('ip', ['-4', 'addr', 'add', `${HOST_TUN_ADDRESS}/30`, 'dev', dev.name], {
      encoding: 'utf8',
    });
    if (r.status !== 0) {
      throw new Error(`ip addr add ${HOST_TUN_ADDRESS}/30 dev ${dev.name}: ${r.stderr.trim()}`);
    }
    capture = await attachTun(client, {
      device: dev,
      ...(o.hostsForDns ? { hostsForDns: o.hostsForDns } : { dnsUpstream: plan.dnsUpstream }),
      ...(o.icmpOnDrop !== undefined ? { icmpOnDrop: o.icmpOnDrop } : {}),
      stack: { tunAddress: HOST_TUN_ADDRESS },
    });
    process.once('exit', onExit);
    undo = setupHostRouting({
      tunName: dev.name,
      sourceAddress: plan.sourceAddress,
      // Without the source rule our own DNS upstream would be captured too.
      captureDns: plan.sourceAddress !== null || o.hostsForDns !== undefined,
      table: plan.table,
      pref: plan.pref,
    });
  } catch (err) {
    undo?.();
    process.off('exit', onExit);
    if (capture) await capture.close();
    else dev?.close();
    plan.release();
    throw err;
  }
  const cap = capture;
  const name = dev.name;
  let closing: Promise<void> | null = null;
  return {
    capture: cap,
    tunName: name,
    tunAddress: HOST_TUN_ADDRESS,
    sourceAddress: plan.sourceAddress,
    close() {
      closing ??= (async () => {
        undo?.();
        process.off('exit', onExit);
        await cap.close().catch(() => {});
        plan.release();
      })();
      return closing;
    },
  };
}
