/**
 * `--add-host <name=address>` (repeatable) and the config key `hosts` of `gsa-emu up` and
 * `gsa-emu netns`: names of the user's own test servers, answered like /etc/hosts entries
 * by everything the command runs (world.ts says where each entry goes). A name is exact or
 * `*.suffix` (any name under suffix, not suffix itself); an address is an IPv4 or IPv6
 * literal, without a port.
 *
 * Contract: `parseAddHosts` throws UsageError naming the bad flag value; `checkHostsConfig`
 * throws ConfigError naming every bad entry (`hosts["x y"]`); both return lowercase names
 * without a trailing dot. A later entry for the same name wins.
 */
import type { Demo } from '../client/demo.js';
import { demoDnsHosts } from '../client/tun-capture.js';
import { ConfigError, type ConfigIssue, UsageError } from '../errors.js';
import { splitHostPort } from '../util/hosts-map.js';
import { ipFamily } from '../util/ip.js';
import { isHostName, normalizeName } from '../util/names.js';

/** Why `name` cannot be a hosts entry's name, or null. */
function nameProblem(name: string): string | null {
  const n = normalizeName(name);
  if (ipFamily(n) !== 0) return `"${name}" is an address, not a name`;
  if (n === '*') return `"${name}" matches every name`;
  const bare = n.startsWith('*.') ? n.slice(2) : n;
  if (bare.includes('*')) return `"${name}": only a leading "*." wildcard is allowed`;
  return isHostName(bare) ? null : `"${name}" is not a host name`;
}

function addressProblem(address: string): string | null {
  return ipFamily(address.trim()) === 0
    ? `"${address}" is not an IPv4 or IPv6 address (no port: the flow's own port is kept)`
    : null;
}

/** `--add-host` values (`name=address`) as a hosts map. */
export function parseAddHosts(entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf('=');
    if (eq === -1) throw new UsageError(`--add-host "${e}": expected name=address`);
    const name = e.slice(0, eq);
    const address = e.slice(eq + 1);
    const bad = nameProblem(name) ?? addressProblem(address);
    // The whole entry, then what is wrong with it: repeated flags are told apart.
    if (bad) throw new UsageError(`--add-host "${e}": ${bad}`);
    out[normalizeName(name)] = address.trim();
  }
  return out;
}

/** The config file's `hosts` value (`{ name: address }`), checked. */
export function checkHostsConfig(v: unknown, file: string): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ConfigError([{ path: 'hosts', message: 'must be an object of name: address' }], file);
  }
  const out: Record<string, string> = {};
  const issues: ConfigIssue[] = [];
  for (const [name, address] of Object.entries(v)) {
    const path = `hosts[${JSON.stringify(name)}]`;
    if (typeof address !== 'string') {
      issues.push({ path, message: `must be an address string, not ${JSON.stringify(address)}` });
      continue;
    }
    const bad = nameProblem(name) ?? addressProblem(address);
    if (bad) issues.push({ path, message: bad });
    else out[normalizeName(name)] = address.trim();
  }
  if (issues.length) throw new ConfigError(issues, file);
  return out;
}

/** The IPv4 entries only (the TUN's DNS answers A records). */
export function ipv4Hosts(hosts: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(hosts).filter(([, a]) => ipFamily(a) === 4));
}

/**
 * What the DNS of a TUN capture answers: the demo servers' names, then the IPv4 `hosts`
 * entries over them (its DNS answers A records only).
 */
export function tunDnsHosts(demo: Demo, hosts: Record<string, string>): Record<string, string> {
  return { ...demoDnsHosts(demo), ...ipv4Hosts(hosts) };
}

/**
 * `user` over `base`, a hosts map in the edge's syntax (`name[:port]` -> `ip[:port]`): every
 * entry of `base` for a name `user` has is dropped, `name:port` ones included (those would
 * win the lookup for their port), then `user`'s entries are added.
 */
export function overlayHosts(
  base: Record<string, string>,
  user: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    const host = splitHostPort(k)?.host;
    if (host === undefined || !(normalizeName(host) in user)) out[k] = v;
  }
  return { ...out, ...user };
}
