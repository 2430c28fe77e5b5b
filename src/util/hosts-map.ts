/**
 * A hosts map: where the edge (internet/M365 egress) or the private network connector sends
 * a destination, and where the client dials a bypassed flow (the resolver's dial map: one
 * syntax and one implementation for all three). Keys are a name, a wildcard name (GSA wildcard rules), or an IP literal,
 * each optionally with `:port`; values are an IP literal, optionally with `:port` (port
 * remap). IPv6 with a port is written `[::1]:8443`.
 *
 * ```json
 * { "intranet.contoso.test": "127.0.0.1",
 *   "*.corp.contoso.test": "127.0.0.1",
 *   "intranet.contoso.test:443": "127.0.0.1:18443",
 *   "10.1.2.3:3389": "127.0.0.1:13389" }
 * ```
 *
 * Contract: the constructor validates every entry and throws ConfigError naming each bad
 * key (`hostsMap["x y"]`); `lookup()` never throws. Lookup order: the most specific name
 * pattern (exact, then longest wildcard suffix, then mid-name wildcards), and for that
 * pattern the `:port` entry before the port-less one.
 */
import { ConfigError, type ConfigIssue } from '../errors.js';
import { ipFamily } from './ip.js';
import { NamePatterns, normalizeName } from './names.js';

export type HostsConfig = Record<string, string>;

export interface Target {
  ip: string;
  port: number;
}

interface Entry {
  any: { ip: string; port: number | null } | null;
  ports: Map<number, { ip: string; port: number | null }>;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`, bare v6 -> parts; null when unparsable. */
export function splitHostPort(s: string): { host: string; port: number | null } | null {
  const t = s.trim();
  if (t.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
    if (!m) return null;
    const port = m[2] === undefined ? null : Number(m[2]);
    if (port !== null && port > 65535) return null;
    return { host: m[1]!, port };
  }
  if (ipFamily(t) === 6) return { host: t, port: null };
  const i = t.lastIndexOf(':');
  if (i === -1) return { host: t, port: null };
  const p = t.slice(i + 1);
  if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) return null;
  return { host: t.slice(0, i), port: Number(p) };
}

export class HostsMap {
  private readonly names = new NamePatterns<Entry>();
  private readonly entries = new Map<string, Entry>();
  private readonly ips = new Map<string, Entry>();
  readonly size: number;

  constructor(cfg: HostsConfig = {}, what = 'hostsMap') {
    const issues: ConfigIssue[] = [];
    let n = 0;
    for (const [key, value] of Object.entries(cfg)) {
      const path = `${what}[${JSON.stringify(key)}]`;
      const k = splitHostPort(key);
      const v = typeof value === 'string' ? splitHostPort(value) : null;
      if (!k || k.host === '') {
        issues.push({ path, message: `"${key}" is not host, host:port, ip or ip:port` });
        continue;
      }
      if (!v || ipFamily(v.host) === 0) {
        issues.push({ path, message: `${JSON.stringify(value)} is not an IP address or ip:port` });
        continue;
      }
      const target = { ip: v.host, port: v.port };
      let entry: Entry | undefined;
      if (ipFamily(k.host) !== 0) {
        const ipKey = k.host.toLowerCase();
        entry = this.ips.get(ipKey);
        if (!entry) {
          entry = { any: null, ports: new Map() };
          this.ips.set(ipKey, entry);
        }
      } else {
        const name = normalizeName(k.host);
        entry = this.entries.get(name);
        if (!entry) {
          entry = { any: null, ports: new Map() };
          try {
            this.names.add(name, entry);
          } catch (err) {
            issues.push({ path, message: (err as Error).message });
            continue;
          }
          this.entries.set(name, entry);
        }
      }
      if (k.port === null) entry.any = target;
      else entry.ports.set(k.port, target);
      n++;
    }
    if (issues.length > 0) throw new ConfigError(issues);
    this.size = n;
  }

  /**
   * The ports the map names `hostOrIp` for when it has no port-less entry (`name:80`,
   * `name:443`), sorted; null when it names it for every port or not at all. For saying why
   * `lookup()` found nothing: the name is known, only not on that port.
   */
  portsOf(hostOrIp: string): number[] | null {
    const entry =
      ipFamily(hostOrIp) !== 0 ? this.ips.get(hostOrIp.toLowerCase()) : this.names.match(hostOrIp);
    if (!entry || entry.any) return null;
    return [...entry.ports.keys()].sort((a, b) => a - b);
  }

  /** Where `hostOrIp:port` goes, or null when the map does not know it. */
  lookup(hostOrIp: string, port: number): Target | null {
    const entry =
      ipFamily(hostOrIp) !== 0 ? this.ips.get(hostOrIp.toLowerCase()) : this.names.match(hostOrIp);
    if (!entry) return null;
    const t = entry.ports.get(port) ?? entry.any;
    return t ? { ip: t.ip, port: t.port ?? port } : null;
  }
}
