/**
 * Name resolution and direct-connect targets for the forwarder.
 *
 * - `resolve(name)`: what DNS would answer, used to classify a name by address and sent to
 *   the edge as OpenMeta.ip: a hosts map first, then the system resolver (`dns.lookup`,
 *   IPv4 first, as the real client's "IPv4 preferred" health check expects) bounded by a
 *   timeout. Never throws: a name that does not resolve in time yields null.
 * - `dialTarget(host, ip, port)`: where a bypassed flow really connects. A dial map (the
 *   edge's HostsMap, util/hosts-map.ts: `name[:port]` or `ip[:port]` -> `ip[:port]`,
 *   wildcard names allowed) remaps demo and test destinations to loopback servers; with
 *   `directIp: false` nothing outside loopback and the dial map is ever dialed, so demos
 *   cannot reach the internet even when a flow is bypassed.
 */
import { lookup } from 'node:dns/promises';
import { HostsMap } from '../util/hosts-map.js';
import { ipFamily, parseIPv4 } from '../util/ip.js';

/**
 * Whether a direct connection to `dest` binds `local`: same family, and a loopback local
 * address only for loopback destinations (a 127.0.0.x source cannot reach anything else).
 */
export function useLocal(local: string, dest: string): boolean {
  if (ipFamily(local) !== ipFamily(dest)) return false;
  return !isLoopbackIp(local) || isLoopbackIp(dest);
}

export function isLoopbackIp(ip: string): boolean {
  if (ip === '::1') return true;
  const v4 = parseIPv4(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
  return v4 >= 0 && v4 >>> 24 === 127;
}

export interface ResolverOptions {
  /** name (lowercase, no trailing dot) -> IP literal. `*.suffix` keys match any name under it. */
  hosts?: Record<string, string> | Map<string, string>;
  /** Use the system resolver for names not in `hosts`. Default true. */
  system?: boolean;
  /** System lookup timeout in ms. Default 3,000. */
  timeoutMs?: number;
  /**
   * Direct-connect remaps, in the edge's hosts-map syntax: `name[:port]` / `ip[:port]` /
   * wildcard name -> `ip[:port]`. A bad entry is a ConfigError (path `dial["key"]`).
   */
  dial?: Record<string, string> | Map<string, string>;
  /** Dial addresses that are neither loopback nor in `dial`. Default true. */
  directIp?: boolean;
}

export interface DialTarget {
  ip: string;
  port: number;
}

export class Resolver {
  private readonly hosts: Map<string, string>;
  private readonly system: boolean;
  private readonly timeoutMs: number;

  constructor(opts: ResolverOptions = {}) {
    const h = opts.hosts;
    this.hosts = new Map();
    if (h) {
      for (const [k, v] of h instanceof Map ? h : Object.entries(h)) {
        this.hosts.set(k.toLowerCase().replace(/\.$/, ''), v);
      }
    }
    this.system = opts.system ?? true;
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.directIp = opts.directIp ?? true;
    const d = opts.dial;
    this.dial =
      d && (d instanceof Map ? d.size : Object.keys(d).length) > 0
        ? new HostsMap(d instanceof Map ? Object.fromEntries(d) : d, 'dial')
        : null;
  }

  private readonly dial: HostsMap | null;
  readonly directIp: boolean;

  /**
   * The remapped target of a direct connection, from the dial map (by name, then by
   * address), or null when the destination is not remapped.
   */
  dialTarget(host: string | null, ip: string | null, port: number): DialTarget | null {
    if (this.dial === null) return null;
    return (
      (host !== null ? this.dial.lookup(host, port) : null) ??
      (ip !== null ? this.dial.lookup(ip, port) : null)
    );
  }

  /** May a bypassed flow connect to `ip` (not remapped)? */
  mayDial(ip: string): boolean {
    return this.directIp || isLoopbackIp(ip);
  }

  /** The hosts-map answer for `name`, or undefined. Synchronous (no DNS). */
  fromHosts(name: string): string | undefined {
    const n = name.toLowerCase();
    const exact = this.hosts.get(n);
    if (exact !== undefined) return exact;
    for (let i = n.indexOf('.'); i !== -1; i = n.indexOf('.', i + 1)) {
      const w = this.hosts.get(`*${n.slice(i)}`);
      if (w !== undefined) return w;
    }
    return undefined;
  }

  /** IP literal for `name`, or null (unknown, failed, timed out). */
  async resolve(name: string): Promise<string | null> {
    if (ipFamily(name) !== 0) return name;
    const h = this.fromHosts(name);
    if (h !== undefined) return h;
    // RFC 6761 6.3: `localhost` and names under it are loopback, whatever DNS says, and also
    // when the system resolver is off (no --allow-internet): a developer's app on localhost.
    if (isLocalhostName(name)) return '127.0.0.1';
    if (!this.system) return null;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        lookup(name, { family: 0, order: 'ipv4first' }).then((r) => r.address),
        new Promise<null>((res) => {
          timer = setTimeout(() => res(null), this.timeoutMs);
        }),
      ]);
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** `localhost`, `*.localhost` (any case, a trailing dot allowed): loopback by RFC 6761. */
export function isLocalhostName(name: string): boolean {
  const n = (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
  return n === 'localhost' || n.endsWith('.localhost');
}
