/** Hand-built TenantSpecs and flows for the classify tests (no dependency on the policy loader). */
import { type Flow, newFlow } from '../../src/classify/types.js';
import type {
  ChannelName,
  ClientState,
  DestinationSpec,
  InternetPolicyKind,
  M365Group,
  PlatformSpec,
  PolicySpec,
  PortRange,
  ProfileSpec,
  Protocol,
  RuleAction,
  RuleSpec,
  State,
  TenantSpec,
} from '../../src/policy/model.js';
import { ipFamily, parseIPv4, parseIPv6 } from '../../src/util/ip.js';

/** `suffix:corp.x` = dnsSuffix; CIDR = ipSubnet; `a-b` of IPs = ipRange; IP = ipAddress; else fqdn. */
export function dest(s: string): DestinationSpec {
  if (s.startsWith('suffix:')) return { type: 'dnsSuffix', value: s.slice(7) };
  if (s.includes('/')) return { type: 'ipSubnet', value: s };
  const dash = s.indexOf('-');
  if (dash > 0 && ipFamily(s.slice(0, dash)) !== 0) {
    return { type: 'ipRange', begin: s.slice(0, dash), end: s.slice(dash + 1) };
  }
  if (ipFamily(s) !== 0) return { type: 'ipAddress', value: s };
  return { type: 'fqdn', value: s };
}

export function ports(...p: string[]): PortRange[] {
  return p.map((x) => {
    const [a, b] = x.split('-');
    return { from: Number(a), to: Number(b ?? a) };
  });
}

let seq = 0;
export interface RuleOpts {
  id?: string;
  name?: string;
  action?: RuleAction;
  protocols?: Protocol[];
  ports?: string[];
  category?: string;
  appId?: string;
}
export function rule(dests: string[], o: RuleOpts = {}): RuleSpec {
  const id = o.id ?? `r${++seq}`;
  const r: RuleSpec = {
    id,
    name: o.name ?? id,
    action: o.action ?? 'forward',
    protocols: o.protocols ?? [],
    ports: ports(...(o.ports ?? [])),
    destinations: dests.map(dest),
    path: `test.${id}`,
  };
  if (o.category !== undefined) r.category = o.category;
  if (o.appId !== undefined) r.appId = o.appId;
  return r;
}

export function policy(
  name: string,
  rules: RuleSpec[],
  o: { linkState?: State; group?: M365Group; kind?: InternetPolicyKind } = {},
): PolicySpec {
  const p: PolicySpec = {
    linkId: `link-${name}`,
    linkState: o.linkState ?? 'enabled',
    id: `pol-${name}`,
    name,
    rules,
  };
  if (o.group) p.group = o.group;
  if (o.kind) p.kind = o.kind;
  return p;
}

export function profile(
  type: ChannelName,
  policies: PolicySpec[],
  o: { state?: State; fallback?: 'bypass' | 'block'; id?: string } = {},
): ProfileSpec {
  return {
    id: o.id ?? `prof-${type}`,
    name: `${type} profile`,
    type,
    state: o.state ?? 'enabled',
    priority: { m365: 100, private: 200, internet: 300 }[type],
    fallback: o.fallback ?? (type === 'private' ? 'block' : 'bypass'),
    policies,
  };
}

export function tenant(profiles: ProfileSpec[]): TenantSpec {
  return { tenantId: 't', name: 'test tenant', profiles };
}

export const IOS: PlatformSpec = {
  name: 'ios',
  acquireIPv6: false,
  quic: {
    ports: [443, 80],
    tunnel: [{ profile: 'm365', group: 'exchange' }],
    otherwise: 'drop',
    scope: 'all',
  },
};
export const WINDOWS: PlatformSpec = {
  name: 'windows',
  acquireIPv6: false,
  quic: {
    ports: [443, 80],
    tunnel: [{ profile: 'm365' }, { profile: 'private' }],
    otherwise: 'drop',
    scope: 'acquired',
  },
};
/** A platform that acquires IPv6 and has no QUIC ports (plain matching). */
export const PLAIN: PlatformSpec = {
  name: 'plain',
  acquireIPv6: true,
  quic: { ports: [], tunnel: [], otherwise: 'drop', scope: 'acquired' },
};

export function state(
  platform: PlatformSpec = PLAIN,
  channels: Partial<Record<ChannelName, boolean>> = {},
): ClientState {
  return { channels: { m365: true, private: true, internet: true, ...channels }, platform };
}

/** A flow to `target` (IPv4, IPv6 or name) on `port`/`proto`; `host` optional with an IP. */
export function flow(
  target: string,
  port = 443,
  proto: 'tcp' | 'udp' = 'tcp',
  host?: string,
): Flow {
  const f = newFlow();
  f.proto = proto === 'tcp' ? 6 : 17;
  f.port = port;
  const v4 = parseIPv4(target);
  if (v4 >= 0) {
    f.family = 4;
    f.ip4 = v4;
    f.host = host ?? null;
  } else if (target.includes(':') && parseIPv6(target, f.ip6)) {
    f.family = 6;
    f.host = host ?? null;
  } else {
    f.family = 0;
    f.host = target;
  }
  return f;
}

/** The fields two classifiers must agree on. */
export function summary(d: {
  action: string;
  channel: string | null;
  ruleId: string | null;
  matched: string | null;
  reason: string;
}): string {
  return `${d.action}/${d.channel}/${d.ruleId}/${d.matched}/${d.reason}`;
}
