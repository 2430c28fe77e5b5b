/**
 * Private Access at the edge: which destinations the tenant's application segments allow
 * (`PrivateApps`), and the private network connector that resolves them (`Connector`).
 *
 * Contract: `PrivateApps.match()` is a linear check over the enabled private profile's
 * enabled policies' forward rules (per flow, not per packet), first match in document
 * order; it never throws. A segment allows a flow when protocol, port and destination all
 * match: FQDN / dnsSuffix destinations against the name the client sent (`meta.host`),
 * address destinations against the IP the client sent (`meta.ip`). The connector resolves
 * names only through its hosts map (it stands for the customer network's DNS).
 */
import type { DestinationSpec, Protocol, RuleSpec, TenantSpec } from '../policy/model.js';
import { type PrivateDns, privateDnsOf, withPrivateDns } from '../policy/private-dns.js';
import { type HostsConfig, HostsMap, type Target } from '../util/hosts-map.js';
import { cmp6, ipFamily, parseCidr, parseIPv4, parseIPv6 } from '../util/ip.js';
import { NamePatterns, normalizeName } from '../util/names.js';

export interface SegmentMatch {
  policyId: string;
  policyName: string;
  ruleId: string;
  ruleName: string;
  appId: string | null;
}

type IpTest = (v4: number, v6: Uint32Array | null) => boolean;

interface CompiledRule {
  match: SegmentMatch;
  protocols: Protocol[];
  ports: Array<{ from: number; to: number }>;
  names: NamePatterns<true> | null;
  ips: IpTest[];
}

function compileIp(d: DestinationSpec): IpTest | null {
  if (d.type === 'ipAddress' || d.type === 'ipSubnet') {
    const c = parseCidr(d.value);
    if (typeof c === 'string') return null;
    if (c.family === 4) return (v4) => v4 >= 0 && v4 >= c.first && v4 <= c.last;
    return (_v4, v6) => v6 !== null && cmp6(v6, c.first) >= 0 && cmp6(v6, c.last) <= 0;
  }
  if (d.type === 'ipRange') {
    const b4 = parseIPv4(d.begin);
    const e4 = parseIPv4(d.end);
    if (b4 >= 0 && e4 >= 0) return (v4) => v4 >= 0 && v4 >= b4 && v4 <= e4;
    const b6 = new Uint32Array(4);
    const e6 = new Uint32Array(4);
    if (!parseIPv6(d.begin, b6) || !parseIPv6(d.end, e6)) return null;
    return (_v4, v6) => v6 !== null && cmp6(v6, b6) >= 0 && cmp6(v6, e6) <= 0;
  }
  return null;
}

function compileRule(r: RuleSpec, policyId: string, policyName: string): CompiledRule {
  let names: NamePatterns<true> | null = null;
  const ips: IpTest[] = [];
  for (const d of r.destinations) {
    if (d.type === 'fqdn' || d.type === 'dnsSuffix') {
      names ??= new NamePatterns<true>();
      try {
        names.add(d.type === 'dnsSuffix' ? `*.${normalizeName(d.value)}` : d.value, true);
      } catch {
        // The loader validated the document; an unusable pattern simply matches nothing.
      }
    } else {
      const t = compileIp(d);
      if (t) ips.push(t);
    }
  }
  return {
    match: { policyId, policyName, ruleId: r.id, ruleName: r.name, appId: r.appId ?? null },
    protocols: r.protocols,
    ports: r.ports,
    names,
    ips,
  };
}

export class PrivateApps {
  private readonly rules: CompiledRule[] = [];
  /** Private DNS for single-label names (null: not configured). */
  readonly privateDns: PrivateDns | null;

  constructor(given: TenantSpec) {
    this.privateDns = privateDnsOf(given);
    // Names under the single-label suffix match the Private DNS app's rules.
    const tenant = withPrivateDns(given);
    for (const p of tenant.profiles) {
      if (p.type !== 'private' || p.state !== 'enabled') continue;
      for (const pol of p.policies) {
        if (pol.linkState !== 'enabled') continue;
        for (const r of pol.rules) {
          if (r.action === 'forward') this.rules.push(compileRule(r, pol.id, pol.name));
        }
      }
    }
  }

  get size(): number {
    return this.rules.length;
  }

  /** The segment allowing `proto host|ip:port`, or null. */
  match(
    proto: Protocol,
    host: string | null,
    ip: string | null,
    port: number,
  ): SegmentMatch | null {
    let v4 = -1;
    let v6: Uint32Array | null = null;
    if (ip) {
      v4 = parseIPv4(ip);
      if (v4 < 0 && ipFamily(ip) === 6) {
        v6 = new Uint32Array(4);
        if (!parseIPv6(ip, v6)) v6 = null;
      }
    }
    for (const r of this.rules) {
      if (r.protocols.length > 0 && !r.protocols.includes(proto)) continue;
      if (r.ports.length > 0 && !r.ports.some((pr) => port >= pr.from && port <= pr.to)) continue;
      if (host && r.names?.match(host)) return r.match;
      if ((v4 >= 0 || v6) && r.ips.some((t) => t(v4, v6))) return r.match;
    }
    return null;
  }
}

export interface ConnectorOptions {
  id?: string;
  name?: string;
  /** The private network's names (and address remaps). */
  hosts?: HostsConfig;
  /**
   * Connect to an IP destination the hosts map does not remap (true), or refuse it (false).
   * Default false: tests and demos never reach a real private address by accident.
   */
  directIp?: boolean;
  /**
   * The connector's DNS search suffixes, for single-label names (`fs1` -> `fs1.<suffix>`,
   * first that resolves). Default: the tenant's Private DNS suffixes.
   */
  searchSuffixes?: readonly string[];
}

/** The private network connector: resolves private names and addresses. */
export class Connector {
  readonly id: string;
  readonly name: string;
  private readonly hosts: HostsMap;
  private readonly directIp: boolean;
  /** The configured search suffixes, or null: the tenant's Private DNS suffixes. */
  readonly searchSuffixes: readonly string[] | null;

  constructor(opts: ConnectorOptions = {}) {
    this.id = opts.id ?? 'connector-1';
    this.name = opts.name ?? 'gsa-emu connector';
    this.hosts = new HostsMap(opts.hosts ?? {}, 'connectorHosts');
    this.directIp = opts.directIp ?? false;
    this.searchSuffixes = opts.searchSuffixes ? opts.searchSuffixes.map(normalizeName) : null;
  }

  /**
   * A single-label name as the connector's resolver takes it: `label.<suffix>` for each
   * search suffix in order (the configured ones, else `tenantList`), the first the
   * connector can resolve.
   */
  resolveSingleLabel(label: string, tenantList: readonly string[], port: number): Target | string {
    const list = this.searchSuffixes ?? tenantList;
    for (const suffix of list) {
      const t = this.hosts.lookup(`${label}.${suffix}`, port);
      if (t) return t;
    }
    return list.length === 0
      ? `connector cannot resolve ${label}: it has no DNS search suffixes`
      : `connector cannot resolve ${label} (search suffixes: ${list.join(', ')})`;
  }

  /** Where the connector sends `host|ip:port`, or a reason it cannot. */
  resolve(host: string | null, ip: string | null, port: number): Target | string {
    if (host) {
      const t = this.hosts.lookup(host, port);
      if (t) return t;
      // Known, only not on this port (the demo maps intranet.contoso.test:80 and :443): the
      // ports it knows. Short: the reason reaches the client in an RST, cut at 100 bytes
      // (egress); "cannot resolve" is what the client reads as host unreachable (refusal.ts).
      const ports = this.hosts.portsOf(host);
      return ports
        ? `connector cannot resolve ${host}:${port} (it knows port${ports.length === 1 ? '' : 's'} ${ports.join(', ')})`
        : `connector cannot resolve ${host}`;
    }
    if (ip) {
      const t = this.hosts.lookup(ip, port);
      if (t) return t;
      if (this.directIp && ipFamily(ip) !== 0) return { ip, port };
      return `connector has no route to ${ip}`;
    }
    return 'no destination';
  }
}
