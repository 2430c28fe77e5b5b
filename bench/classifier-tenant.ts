/**
 * Synthetic tenants for the classifier benchmark: `n` rules (one destination each) spread
 * over the three profiles like a large real tenant (a few M365 rules, many Private Access
 * segments, many Internet Access custom rules), plus flows that hit and miss them.
 * Deterministic (seeded), so runs compare.
 */
import { type Flow, newFlow } from '../src/classify/types.js';
import type {
  ClientState,
  DestinationSpec,
  PlatformSpec,
  PolicySpec,
  PortRange,
  ProfileSpec,
  Protocol,
  RuleSpec,
  TenantSpec,
} from '../src/policy/model.js';
import { formatIPv4, formatIPv6 } from '../src/util/ip.js';

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  'app',
  'api',
  'portal',
  'files',
  'mail',
  'cdn',
  'login',
  'sync',
  'data',
  'hr',
  'git',
  'wiki',
  'crm',
  'erp',
  'build',
  'ci',
  'docs',
  'shop',
  'media',
  'img',
  'static',
  'edge',
];
const TLDS = ['com', 'net', 'org', 'io', 'test', 'cloud', 'dev'];

/** The bench platform: acquires IPv6 (so IPv6 lookups are measured), iOS-like QUIC. */
export const BENCH_PLATFORM: PlatformSpec = {
  name: 'bench',
  acquireIPv6: true,
  quic: {
    ports: [443, 80],
    tunnel: [{ profile: 'm365', group: 'exchange' }],
    otherwise: 'drop',
    scope: 'all',
  },
};
export const BENCH_STATE: ClientState = {
  channels: { m365: true, private: true, internet: true },
  platform: BENCH_PLATFORM,
};

/** What the flow generator needs to hit rules. */
export interface Targets {
  v4: Array<[number, number]>;
  v6: Array<[number, number]>; // word0 and word1 prefix (the rest random)
  names: string[];
}

export interface BenchTenant {
  spec: TenantSpec;
  targets: Targets;
}

export function syntheticTenant(n: number, seed = 1): BenchTenant {
  const rnd = prng(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const targets: Targets = { v4: [], v6: [], names: [] };
  let id = 0;
  const domain = () => `${pick(WORDS)}${int(1 << 20).toString(36)}.${pick(TLDS)}`;
  const dest = (): DestinationSpec => {
    const r = rnd();
    if (r < 0.4) {
      const prefix = pick([32, 32, 30, 28, 24, 24, 22, 20, 16]);
      const size = 2 ** (32 - prefix);
      const base = Math.floor(int(2 ** 32) / size) * size;
      targets.v4.push([base, base + size - 1]);
      if (rnd() < 0.15) {
        return { type: 'ipRange', begin: formatIPv4(base), end: formatIPv4(base + size - 1) };
      }
      return { type: 'ipSubnet', value: `${formatIPv4(base)}/${prefix}` };
    }
    if (r < 0.55) {
      const w0 = (0x20000000 + int(1 << 28)) >>> 0;
      const w1 = int(2 ** 32) >>> 0;
      targets.v6.push([w0, w1]);
      const w = Uint32Array.of(w0, w1, 0, 0);
      return { type: 'ipSubnet', value: `${formatIPv6(w)}/64` };
    }
    const d = domain();
    const f = rnd();
    if (f < 0.6) {
      const name = `${pick(WORDS)}.${d}`;
      targets.names.push(name);
      return { type: 'fqdn', value: name };
    }
    if (f < 0.88) {
      targets.names.push(`${pick(WORDS)}${int(100)}.${d}`);
      return { type: 'fqdn', value: `*.${d}` };
    }
    if (f < 0.94) {
      targets.names.push(`autodiscover.${pick(WORDS)}.${d}`);
      return { type: 'fqdn', value: `autodiscover.*.${d}` };
    }
    targets.names.push(`${pick(WORDS)}.corp.${d}`);
    return { type: 'dnsSuffix', value: `corp.${d}` };
  };
  const rule = (action: 'forward' | 'bypass'): RuleSpec => {
    const r = rnd();
    let ports: PortRange[];
    let protocols: Protocol[];
    if (r < 0.5) {
      ports = [
        { from: 80, to: 80 },
        { from: 443, to: 443 },
      ];
      protocols = ['tcp'];
    } else if (r < 0.7) {
      ports = [];
      protocols = [];
    } else {
      const p = 1024 + int(60000);
      ports = [{ from: p, to: p + int(3) * 100 }];
      protocols = [pick(['tcp', 'udp'] as const)];
    }
    const rid = `rule-${++id}`;
    return {
      id: rid,
      name: `Rule ${id}`,
      action,
      protocols,
      ports,
      destinations: [dest()],
      path: rid,
    };
  };
  const policies = (count: number, action: () => 'forward' | 'bypass', per: number): PolicySpec[] =>
    Array.from({ length: Math.max(1, Math.ceil(count / per)) }, (_, k) => ({
      linkId: `link-${seed}-${id}-${k}`,
      linkState: 'enabled',
      id: `pol-${seed}-${id}-${k}`,
      name: `Policy ${k}`,
      rules: Array.from({ length: Math.min(per, count - k * per) }, () => rule(action())),
    }));
  const m = Math.max(1, Math.round(n * 0.05));
  const p = Math.round(n * 0.35);
  const i = n - m - p;
  const m365: ProfileSpec = {
    id: 'm365',
    name: 'Microsoft 365',
    type: 'm365',
    state: 'enabled',
    priority: 100,
    fallback: 'bypass',
    policies: policies(m, () => 'forward', 500).map((q, k) => ({
      ...q,
      group: (['exchange', 'sharepoint', 'common'] as const)[k % 3]!,
    })),
  };
  const priv: ProfileSpec = {
    id: 'private',
    name: 'Private Access',
    type: 'private',
    state: 'enabled',
    priority: 200,
    fallback: 'block',
    policies: policies(p, () => 'forward', 50),
  };
  const internet: ProfileSpec = {
    id: 'internet',
    name: 'Internet Access',
    type: 'internet',
    state: 'enabled',
    priority: 300,
    fallback: 'bypass',
    policies: policies(i, () => (rnd() < 0.3 ? 'bypass' : 'forward'), 1000),
  };
  return {
    spec: { tenantId: 'bench', name: `bench ${n}`, profiles: [m365, priv, internet] },
    targets,
  };
}

export type FlowKind = 'ipv4' | 'ipv6' | 'fqdn' | 'mixed';

/** `count` flows of a kind; about half hit a rule's destination, half miss. */
export function benchFlows(t: Targets, kind: FlowKind, count: number, seed = 2): Flow[] {
  const rnd = prng(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const out: Flow[] = [];
  for (let i = 0; i < count; i++) {
    const f = newFlow();
    f.proto = rnd() < 0.85 ? 6 : 17;
    f.port = rnd() < 0.8 ? 443 : 1024 + int(60000);
    const k = kind === 'mixed' ? (['ipv4', 'ipv6', 'fqdn', 'both'] as const)[i & 3]! : kind;
    const hit = rnd() < 0.5;
    if (k === 'ipv4' || k === 'both') {
      f.family = 4;
      if (hit && t.v4.length) {
        const [a, b] = t.v4[int(t.v4.length)]!;
        f.ip4 = a + int(b - a + 1);
      } else f.ip4 = int(2 ** 32) >>> 0;
    }
    if (k === 'ipv6') {
      f.family = 6;
      if (hit && t.v6.length) {
        const [w0, w1] = t.v6[int(t.v6.length)]!;
        f.ip6.set([w0, w1, int(2 ** 32), int(2 ** 32)]);
      } else f.ip6.set([(0x20000000 + int(1 << 28)) >>> 0, int(2 ** 32), 0, 1]);
    }
    if (k === 'fqdn' || k === 'both') {
      if (k === 'fqdn') f.family = 0;
      f.host =
        hit && t.names.length
          ? t.names[int(t.names.length)]!
          : `${WORDS[int(WORDS.length)]}.${WORDS[int(WORDS.length)]}${int(1 << 20).toString(36)}.${TLDS[int(TLDS.length)]}`;
    }
    // Flat, as a parser hands them over (Buffer#toString); a concatenated (cons) string
    // would make every charCodeAt take V8's slow path.
    if (f.host !== null) f.host = Buffer.from(f.host, 'latin1').toString('latin1');
    out.push(f);
  }
  return out;
}
