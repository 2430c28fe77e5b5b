/**
 * Random tenants (fast-check arbitraries) and flows biased to hit rule edges: range
 * boundaries and +-1, wildcard instances, dnsSuffix parents, port edges, odd case, garbage.
 */
import fc from 'fast-check';
import { type Flow, newFlow } from '../../src/classify/types.js';
import type {
  ChannelName,
  ClientState,
  DestinationSpec,
  M365Group,
  PlatformSpec,
  PolicySpec,
  PortRange,
  ProfileSpec,
  RuleSpec,
  TenantSpec,
} from '../../src/policy/model.js';
import { privateDnsOf } from '../../src/policy/private-dns.js';
import { formatIPv4, formatIPv6, parseCidr, parseIPv4, parseIPv6 } from '../../src/util/ip.js';

const V4_BASES = [0, 0x0a000000, 0x28600000, 0x14be8000, 0xfffffe00];
const V6_BASES = [0n, 0x26031006n << 96n, 0x262001ecn << 96n, (1n << 128n) - 512n];
const LABELS = [
  'a',
  'b',
  'x',
  'contoso',
  'com',
  'sharepoint',
  'onmicrosoft',
  'autodiscover',
  'corp',
];

const v4Addr = fc
  .tuple(fc.constantFrom(...V4_BASES), fc.integer({ min: 0, max: 511 }))
  .map(([b, o]) => formatIPv4((b + o) >>> 0));
const v6Big = fc
  .tuple(fc.constantFrom(...V6_BASES), fc.integer({ min: 0, max: 511 }))
  .map(([b, o]) => b + BigInt(o));
function big2words(v: bigint): Uint32Array {
  return Uint32Array.of(
    Number((v >> 96n) & 0xffffffffn),
    Number((v >> 64n) & 0xffffffffn),
    Number((v >> 32n) & 0xffffffffn),
    Number(v & 0xffffffffn),
  );
}
const v6Addr = v6Big.map((v) => formatIPv6(big2words(v)));
const label = fc.constantFrom(...LABELS);

const destination: fc.Arbitrary<DestinationSpec> = fc.oneof(
  v4Addr.map((value) => ({ type: 'ipAddress' as const, value })),
  fc
    .tuple(v4Addr, fc.constantFrom(32, 31, 30, 28, 24, 23, 16, 8, 0))
    .map(([a, p]) => ({ type: 'ipSubnet' as const, value: `${a}/${p}` })),
  fc.tuple(v4Addr, fc.integer({ min: 0, max: 300 })).map(([a, n]) => {
    const b = parseIPv4(a);
    return { type: 'ipRange' as const, begin: a, end: formatIPv4(Math.min(b + n, 0xffffffff)) };
  }),
  v6Addr.map((value) => ({ type: 'ipAddress' as const, value })),
  fc
    .tuple(v6Addr, fc.constantFrom(128, 127, 120, 119, 64, 40, 0))
    .map(([a, p]) => ({ type: 'ipSubnet' as const, value: `${a}/${p}` })),
  fc.tuple(v6Big, fc.integer({ min: 0, max: 300 })).map(([b, n]) => {
    const e = b + BigInt(n) > (1n << 128n) - 1n ? (1n << 128n) - 1n : b + BigInt(n);
    return {
      type: 'ipRange' as const,
      begin: formatIPv6(big2words(b)),
      end: formatIPv6(big2words(e)),
    };
  }),
  fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => ({
    type: 'fqdn' as const,
    value: l.join('.'),
  })),
  // Wildcards anywhere but last, at least one named label (the loader's rule).
  fc
    .tuple(
      fc.array(label, { minLength: 1, maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    )
    .map(([l, stars]) => {
      const out = l.map((x, i) => (i < l.length - 1 && stars[i] ? '*' : x));
      if (out.length === 1 || out.every((x) => x === '*' || x === out[out.length - 1])) {
        out.unshift('*');
      }
      return { type: 'fqdn' as const, value: out.join('.') };
    }),
  fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => ({
    type: 'dnsSuffix' as const,
    value: l.join('.'),
  })),
);

const portRange = fc.oneof(
  fc.constantFrom(53, 80, 443, 444, 3389).map((p) => ({ from: p, to: p })),
  fc.constantFrom({ from: 1000, to: 2000 }, { from: 3478, to: 3481 }, { from: 0, to: 65535 }),
);

let ruleSeq = 0;
const ruleArb: fc.Arbitrary<RuleSpec> = fc
  .record({
    action: fc.constantFrom('forward' as const, 'forward' as const, 'bypass' as const),
    protocols: fc.constantFrom<Array<'tcp' | 'udp'>>([], ['tcp'], ['udp'], ['tcp', 'udp']),
    ports: fc.oneof(
      fc.constant<PortRange[]>([]),
      fc.array<PortRange>(portRange, { minLength: 1, maxLength: 3 }),
    ),
    destinations: fc.array(destination, { minLength: 1, maxLength: 4 }),
  })
  .map((r) => {
    const id = `r${++ruleSeq}`;
    return { id, name: `rule ${id}`, path: id, ...r };
  });

const GROUPS: M365Group[] = ['exchange', 'sharepoint', 'common', 'teams', 'other'];
function policyArb(type: ChannelName): fc.Arbitrary<PolicySpec> {
  return fc
    .record({
      enabled: fc.constantFrom(true, true, true, false),
      group: fc.constantFrom(...GROUPS),
      rules: fc.array(ruleArb, { minLength: 0, maxLength: 6 }),
    })
    .map(({ enabled, group, rules }) => {
      const id = `p${++ruleSeq}`;
      const p: PolicySpec = {
        linkId: `l${id}`,
        linkState: enabled ? 'enabled' : 'disabled',
        id,
        name: `policy ${id}`,
        rules,
      };
      if (type === 'm365') p.group = group;
      return p;
    });
}
function profileArb(type: ChannelName): fc.Arbitrary<ProfileSpec> {
  return fc
    .record({
      enabled: fc.constantFrom(true, true, true, false),
      fallback: fc.constantFrom('bypass' as const, 'block' as const),
      policies: fc.array(policyArb(type), { minLength: 1, maxLength: 3 }),
    })
    .map(({ enabled, fallback, policies }) => ({
      id: `prof-${type}-${++ruleSeq}`,
      name: `${type} profile`,
      type,
      state: enabled ? 'enabled' : 'disabled',
      priority: 0,
      fallback,
      policies,
    }));
}

export const tenantArb: fc.Arbitrary<TenantSpec> = fc
  .tuple(
    fc.array(profileArb('m365'), { minLength: 0, maxLength: 2 }),
    fc.array(profileArb('private'), { minLength: 0, maxLength: 1 }),
    fc.array(profileArb('internet'), { minLength: 0, maxLength: 2 }),
  )
  .chain(([a, b, c]) =>
    fc.shuffledSubarray([...a, ...b, ...c], { minLength: a.length + b.length + c.length }),
  )
  .map((profiles) => ({ tenantId: 't', name: 'random', profiles }));

const platformArb: fc.Arbitrary<PlatformSpec> = fc.record({
  name: fc.constantFrom('ios', 'windows'),
  acquireIPv6: fc.constantFrom(true, true, false),
  quic: fc.record({
    ports: fc.constantFrom([443, 80], [443], []),
    tunnel: fc.constantFrom<PlatformSpec['quic']['tunnel']>(
      [{ profile: 'm365', group: 'exchange' }],
      [{ profile: 'm365' }, { profile: 'private' }],
      [],
    ),
    otherwise: fc.constantFrom('drop' as const, 'bypass' as const),
    scope: fc.constantFrom('all' as const, 'acquired' as const),
  }),
});

/** A local subnet: mostly around the tenants' bases (host bits set or not), sometimes junk. */
const localSubnet: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(v4Addr, fc.constantFrom(32, 30, 28, 24, 23, 16, 8))
      .map(([a, p]) => `${a}/${p}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '10.0.0.0/8',
      '0.0.0.0/0',
      'not-a-cidr',
      '2603:1006::/40',
      '10.0.0.1',
    ),
  },
);

export const stateArb: fc.Arbitrary<ClientState> = fc.record(
  {
    channels: fc.record({
      m365: fc.constantFrom(true, true, true, false),
      private: fc.constantFrom(true, true, true, false),
      internet: fc.constantFrom(true, true, true, false),
    }),
    platform: platformArb,
    // Absent, empty, or one to three (overlapping ones too).
    localSubnets: fc.oneof(
      fc.constant<string[]>([]),
      fc.array(localSubnet, { minLength: 1, maxLength: 3 }),
      fc.array(localSubnet, { minLength: 1, maxLength: 3 }),
    ),
  },
  { requiredKeys: ['channels', 'platform'] },
);

/** A tenant with an enabled Private Access profile (and at most one Microsoft profile). */
export const privateTenantArb: fc.Arbitrary<TenantSpec> = fc
  .tuple(
    fc.array(profileArb('m365'), { minLength: 0, maxLength: 1 }),
    profileArb('private'),
    fc.array(profileArb('internet'), { minLength: 0, maxLength: 2 }),
  )
  .map(([a, b, c]) => ({
    tenantId: 't',
    name: 'random, private',
    profiles: [...a, { ...b, state: 'enabled' as const }, ...c],
  }));

/** A state with the private channel on and at least one local subnet. */
export const localStateArb: fc.Arbitrary<ClientState> = stateArb.map((st) => ({
  ...st,
  channels: { ...st.channels, private: true },
  localSubnets: st.localSubnets?.length ? st.localSubnets : ['0.0.0.0/32'],
}));

/**
 * `st` with, when it has local subnets, one more around an IPv4 destination of a Private
 * Access rule of `spec` (random prefix): random subnets alone seldom meet one.
 */
export function withTenantSubnet(
  spec: TenantSpec,
  st: ClientState,
  rnd: () => number,
): ClientState {
  if (!st.localSubnets?.length) return st;
  const addrs: string[] = [];
  for (const p of spec.profiles) {
    if (p.type !== 'private') continue;
    for (const q of p.policies) {
      for (const r of q.rules) {
        for (const d of r.destinations) {
          if (d.type === 'ipRange' && parseIPv4(d.begin) >= 0) addrs.push(d.begin, d.end);
          else if (
            (d.type === 'ipSubnet' || d.type === 'ipAddress') &&
            parseIPv4(d.value.split('/')[0]!) >= 0
          ) {
            addrs.push(d.value.split('/')[0]!);
          }
        }
      }
    }
  }
  if (addrs.length === 0) return st;
  const a = addrs[Math.floor(rnd() * addrs.length)]!;
  const p = [32, 31, 28, 24, 20, 16][Math.floor(rnd() * 6)]!;
  return { ...st, localSubnets: [...st.localSubnets, `${a}/${p}`] };
}

/** Add the edges of `st`'s local subnets to `e` (flows then hit their boundaries too). */
export function addLocalSubnetEdges(e: Edges, st: ClientState): Edges {
  const v4 = new Set(e.v4);
  for (const s of st.localSubnets ?? []) {
    const c = parseCidr(s);
    if (typeof c === 'string' || c.family !== 4) continue;
    for (const x of [c.first - 1, c.first, c.first + 1, c.last - 1, c.last, c.last + 1]) {
      if (x >= 0 && x <= 0xffffffff) v4.add(x);
    }
  }
  return { ...e, v4: [...v4] };
}

/** Edge values of a tenant, from which flows are drawn. */
export interface Edges {
  v4: number[];
  v6: bigint[];
  names: string[];
  ports: number[];
}

export function edgesOf(spec: TenantSpec): Edges {
  const v4 = new Set<number>([0, 0xffffffff]);
  const v6 = new Set<bigint>([0n, (1n << 128n) - 1n]);
  const names = new Set<string>(['', '.', 'com', 'a.b', 'A.Contoso.COM']);
  const ports = new Set<number>([80, 443, 22]);
  const add4 = (a: number, b: number) => {
    for (const x of [a - 1, a, a + 1, b - 1, b, b + 1]) if (x >= 0 && x <= 0xffffffff) v4.add(x);
  };
  const add6 = (a: bigint, b: bigint) => {
    for (const x of [a - 1n, a, a + 1n, b - 1n, b, b + 1n])
      if (x >= 0n && x < 1n << 128n) v6.add(x);
  };
  const w2b = (w: Uint32Array) =>
    (BigInt(w[0]!) << 96n) | (BigInt(w[1]!) << 64n) | (BigInt(w[2]!) << 32n) | BigInt(w[3]!);
  for (const p of spec.profiles) {
    for (const q of p.policies) {
      for (const r of q.rules) {
        for (const pr of r.ports)
          for (const x of [pr.from - 1, pr.from, pr.to, pr.to + 1]) ports.add(x);
        for (const d of r.destinations) {
          if (d.type === 'fqdn' || d.type === 'dnsSuffix') {
            const v = d.value;
            names.add(v.replace(/\*/g, 'x'));
            names.add(v.replace(/\*/g, 'a.b'));
            names.add(v.replace(/\*\./g, ''));
            names.add(`corp.${v}`.replace(/\*/g, 'q'));
            names.add(`x.${v}`.toUpperCase().replace(/\*/g, 'Z'));
            names.add(v.slice(1));
            continue;
          }
          if (d.type === 'ipRange') {
            const b = parseIPv4(d.begin);
            if (b >= 0) add4(b, parseIPv4(d.end));
            else {
              const x = new Uint32Array(4);
              const y = new Uint32Array(4);
              parseIPv6(d.begin, x);
              parseIPv6(d.end, y);
              add6(w2b(x), w2b(y));
            }
            continue;
          }
          const c = parseCidr(d.value);
          if (typeof c === 'string') continue;
          if (c.family === 4) add4(c.first, c.last);
          else add6(w2b(c.first), w2b(c.last));
        }
      }
    }
  }
  // Private DNS: names under the single-label suffix (both classifiers derive its rule).
  const pd = privateDnsOf(spec);
  if (pd) for (const n of ['fs1', 'a.b', 'FS1']) names.add(`${n}.${pd.suffix}`);
  return { v4: [...v4], v6: [...v6], names: [...names], ports: [...ports] };
}

/** A small deterministic PRNG (mulberry32). */
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

/** Fill `f` with a random flow biased to the tenant's edges (sometimes garbage). */
export function randomFlow(e: Edges, rnd: () => number, f: Flow = newFlow()): Flow {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const r = rnd();
  f.proto = r < 0.45 ? 6 : r < 0.95 ? 17 : pick([1, 0, 58]);
  f.port = rnd() < 0.97 ? pick(e.ports) : pick([Number.NaN, -1, 70000, 1.5]);
  const fam = rnd();
  f.host = null;
  f.ip6 = new Uint32Array(4);
  if (fam < 0.4) {
    f.family = 4;
    f.ip4 = pick(e.v4);
    if (rnd() < 0.3) f.host = pick(e.names);
  } else if (fam < 0.7) {
    f.family = 6;
    const v = pick(e.v6);
    f.ip6 = big2words(v);
    if (rnd() < 0.2) f.host = pick(e.names);
  } else if (fam < 0.97) {
    f.family = 0;
    f.host = pick(e.names);
  } else {
    f.family = pick([9, Number.NaN, 4, 6]);
    f.ip4 = pick([Number.NaN, -1, 2 ** 32, 1.5, 0x0a000001]);
    f.host = pick([null, '', 'a..com', 'SHAREPOINT.COM.']);
  }
  return f;
}

/** Every Decision field, for comparing two classifiers. */
export function fields(d: object): string {
  return JSON.stringify(d, Object.keys(d).sort());
}
