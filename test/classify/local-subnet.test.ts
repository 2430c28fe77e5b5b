import t, { type Test } from 'tap';
import { compile, OracleClassifier, REASON_NO_MATCH } from '../../src/classify/index.js';
import {
  carveRange,
  localSubnetsOf,
  mergeSubnets,
  normalizeLocalSubnet,
} from '../../src/classify/local-subnets.js';
import { type Classifier, type Decision, newFlow, PROTO_TCP } from '../../src/classify/types.js';
import { interfaceSubnets } from '../../src/client/client.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import { loadTenant } from '../../src/policy/graph.js';
import type { ClientState, TenantSpec } from '../../src/policy/model.js';
import { loadPlatform } from '../../src/policy/platform.js';
import { formatIPv4, parseIPv4 } from '../../src/util/ip.js';
import { flow, IOS, PLAIN, policy, profile, rule, state, summary, tenant } from './helpers.js';
import { hostLan, privateSegmentsTenant } from './local-subnet-fixtures.js';

/** Private segments (IP and name), then Internet rules: a bypass for 10/8, a catch-all forward. */
function lan(): TenantSpec {
  return tenant([
    profile('private', [
      policy('LAN app', [
        rule(['10.1.0.0/16'], { id: 'pa-subnet', ports: ['443'], protocols: ['tcp'] }),
        rule(['10.1.2.3'], { id: 'pa-addr', ports: ['22'] }),
        rule(['10.1.5.0-10.2.0.255'], { id: 'pa-range', ports: ['8443'] }),
        rule(['10.1.9.0/24', 'app.corp.test'], { id: 'pa-mixed', ports: ['9000'] }),
        rule(['*.corp.test'], { id: 'pa-names', ports: ['443'] }),
      ]),
    ]),
    profile('internet', [
      policy('Default Bypass', [rule(['10.0.0.0/8'], { id: 'ia-db', action: 'bypass' })]),
      policy('Custom Acquire', [rule(['10.1.7.0/24'], { id: 'ia-fwd', ports: ['8443'] })]),
    ]),
  ]);
}

function both(spec: TenantSpec, st: ClientState): { c: Classifier; o: OracleClassifier } {
  return { c: compile(spec, st), o: new OracleClassifier(spec, st) };
}

/** The compiled decision, after checking that the oracle says the same. */
function decide(
  t: Test,
  k: { c: Classifier; o: OracleClassifier },
  ...args: Parameters<typeof flow>
): Decision {
  const f = flow(...args);
  const got = k.c.decide(f);
  t.equal(summary(got), summary(k.o.decide(f)), `compiled == oracle for ${args.join(' ')}`);
  t.same(got, k.o.decide(f));
  return got;
}

const LOCAL = (cidr: string) =>
  `in the device's local subnet ${cidr}, Private Access does not tunnel it`;

t.test('no local subnets (the library default): Private IP segments tunnel', async (t) => {
  const k = both(lan(), state());
  const d = decide(t, k, '10.1.0.5', 443);
  t.equal(d.action, 'tunnel');
  t.equal(d.ruleId, 'pa-subnet');
  t.equal(
    decide(t, both(lan(), { ...state(), localSubnets: [] }), '10.1.0.5', 443).action,
    'tunnel',
  );
});

t.test('in a local subnet: the Private IP segment does not match; later rules do', async (t) => {
  const k = both(lan(), { ...state(), localSubnets: ['10.1.0.0/24'] });
  // ipSubnet: the Internet Default Bypass takes it, and the reason says why.
  let d = decide(t, k, '10.1.0.5', 443);
  t.equal(d.action, 'bypass');
  t.equal(d.channel, null);
  t.equal(d.ruleId, 'ia-db', 'the next matching rule decides');
  t.equal(d.matched, '10.0.0.0/8');
  t.equal(
    d.reason,
    `${LOCAL('10.1.0.0/24')} by IP segment; Internet Access rule "ia-db" bypasses it (goes direct)`,
  );
  // ipAddress.
  d = decide(t, k, '10.1.0.3', 22);
  t.equal(d.ruleId, 'ia-db');
  // Outside the local subnet the same segment still tunnels.
  d = decide(t, k, '10.1.1.5', 443);
  t.equal(d.action, 'tunnel');
  t.equal(d.ruleId, 'pa-subnet');
  t.equal(d.reason, 'Private Access rule "pa-subnet" tunnels it on the private channel');
  // A port the rule does not take: the rule never matched, so no local-subnet reason.
  d = decide(t, k, '10.1.0.5', 80);
  t.equal(d.ruleId, 'ia-db');
  t.equal(d.reason, 'Internet Access rule "ia-db" bypasses it (goes direct)');
});

t.test('an ipRange across the local subnet is cut at its edges', async (t) => {
  const k = both(lan(), { ...state(), localSubnets: ['10.1.6.0/23'] });
  for (const [ip, rid] of [
    ['10.1.5.255', 'pa-range'],
    ['10.1.6.0', 'ia-db'],
    ['10.1.7.9', 'ia-db'],
    ['10.1.7.255', 'ia-db'],
    ['10.1.8.0', 'pa-range'],
    ['10.2.0.255', 'pa-range'],
  ] as const) {
    t.equal(decide(t, k, ip, 8443).ruleId, rid, `${ip}:8443 -> ${rid}`);
  }
  // Internet Access IP rules are not Private Access segments: the local subnet changes nothing.
  const inet = both(
    tenant([
      profile('internet', [policy('Custom Acquire', [rule(['10.1.7.0/24'], { id: 'ia' })])]),
    ]),
    { ...state(), localSubnets: ['10.1.6.0/23'] },
  );
  const d = decide(t, inet, '10.1.7.9', 8443);
  t.equal(d.action, 'tunnel');
  t.equal(d.channel, 'internet');
});

t.test('no later rule: direct, saying why', async (t) => {
  const spec = tenant([
    profile('private', [policy('LAN', [rule(['192.168.0.0/16'], { id: 'pa' })])]),
  ]);
  const k = both(spec, { ...state(), localSubnets: ['192.168.1.77/24'] });
  const d = decide(t, k, '192.168.1.10', 443);
  t.equal(d.action, 'bypass');
  t.equal(d.ruleId, null);
  t.equal(d.reason, `${LOCAL('192.168.1.0/24')} (goes direct)`, 'host bits cleared in the reason');
  t.equal(decide(t, k, '192.168.2.10', 443).action, 'tunnel', 'outside it: tunneled');
  // QUIC on iOS: the static decision is rewritten as any other bypass would be.
  const q = both(spec, { ...state(IOS), localSubnets: ['192.168.1.0/24'] });
  t.equal(decide(t, q, '192.168.1.10', 443, 'udp').action, 'drop');
  t.equal(
    decide(t, q, '192.168.1.10', 3389, 'udp').reason,
    `${LOCAL('192.168.1.0/24')} (goes direct)`,
  );
});

t.test('names are unaffected; the first local subnet holding the address is named', async (t) => {
  const k = both(lan(), { ...state(), localSubnets: ['10.1.0.0/16', '10.0.0.0/8'] });
  // An FQDN segment with the address in a local subnet: tunneled by name.
  let d = decide(t, k, '10.1.0.5', 443, 'tcp', 'web.corp.test');
  t.equal(d.action, 'tunnel');
  t.equal(d.ruleId, 'pa-names');
  t.equal(
    d.reason,
    `${LOCAL('10.1.0.0/16')} by IP segment; Private Access rule "pa-names" tunnels it on the private channel`,
  );
  // Same rule, the name destination after the skipped IP one.
  d = decide(t, k, '10.1.9.1', 9000, 'tcp', 'app.corp.test');
  t.equal(d.ruleId, 'pa-mixed');
  t.equal(d.matched, 'app.corp.test');
  t.equal(d.action, 'tunnel');
  // Name only (no address): nothing to do with subnets.
  d = decide(t, k, 'web.corp.test', 443);
  t.equal(d.reason, 'Private Access rule "pa-names" tunnels it on the private channel');
  // An address in the second subnet only.
  d = decide(
    t,
    both(lan(), { ...state(), localSubnets: ['10.3.0.0/16', '10.1.0.0/16'] }),
    '10.1.0.5',
    443,
  );
  t.match(d.reason, LOCAL('10.1.0.0/16'));
});

t.test('IPv6, junk entries and a private channel off', async (t) => {
  const spec = tenant([
    profile('private', [policy('v6', [rule(['2001:db8::/32', '10.9.0.0/16'], { id: 'pa' })])]),
  ]);
  const k = both(spec, { ...state(PLAIN), localSubnets: ['2001:db8::/32', 'junk', '10.9.0.0/16'] });
  t.equal(decide(t, k, '2001:db8::1', 443).action, 'tunnel', 'IPv6 segments are not affected');
  t.equal(decide(t, k, '10.9.1.1', 443).reason, `${LOCAL('10.9.0.0/16')} (goes direct)`);
  const off = both(spec, { ...state(PLAIN, { private: false }), localSubnets: ['10.9.0.0/16'] });
  t.equal(
    decide(t, off, '10.9.1.1', 443).reason,
    REASON_NO_MATCH,
    'no active Private rule: no local reason',
  );
});

t.test('helpers: normalize, merge, carve', async (t) => {
  t.equal(normalizeLocalSubnet('192.0.2.2/24'), '192.0.2.0/24');
  t.equal(normalizeLocalSubnet(' 10.0.0.1 '), '10.0.0.1/32');
  t.equal(normalizeLocalSubnet('::1/128'), null);
  t.equal(normalizeLocalSubnet('10.0.0.0/33'), null);
  t.equal(normalizeLocalSubnet(''), null);
  const subs = localSubnetsOf(['10.0.1.0/24', '10.0.0.0/24', '10.0.0.128/25', '10.0.3.0/24']);
  t.same(mergeSubnets(subs), [
    [parseIPv4('10.0.0.0'), parseIPv4('10.0.1.255')],
    [parseIPv4('10.0.3.0'), parseIPv4('10.0.3.255')],
  ]);
  const pieces: string[] = [];
  const add = (tag: string) => (f: number, l: number) =>
    pieces.push(`${tag} ${formatIPv4(f)}-${formatIPv4(l)}`);
  carveRange(
    parseIPv4('9.255.255.0'),
    parseIPv4('10.0.4.0'),
    mergeSubnets(subs),
    add('out'),
    add('in'),
  );
  t.same(pieces, [
    'out 9.255.255.0-9.255.255.255',
    'in 10.0.0.0-10.0.1.255',
    'out 10.0.2.0-10.0.2.255',
    'in 10.0.3.0-10.0.3.255',
    'out 10.0.4.0-10.0.4.0',
  ]);
  pieces.length = 0;
  carveRange(0, 0xffffffff, mergeSubnets(localSubnetsOf(['0.0.0.0/0'])), add('out'), add('in'));
  t.same(pieces, ['in 0.0.0.0-255.255.255.255']);
});

// Moved from test/review/fidelity.test.ts (the review's reproduction), now with the local
// subnets the client takes by default: those of this machine's interfaces.
// gsa-facts.md:29 "IP-based tunneling only for ranges outside the device's local subnet."
t.test('Private Access: an IP segment covering the device LAN is not tunneled', async (t) => {
  const lan = hostLan();
  if (!lan) {
    t.comment('skipped: no non-internal IPv4 interface to take as the device subnet');
    return;
  }
  const spec = loadTenant(privateSegmentsTenant([lan.cidr]));
  const c = compile(spec, {
    channels: { m365: true, private: true, internet: true },
    platform: loadPlatform('ios'),
    localSubnets: interfaceSubnets(),
  });
  const f = newFlow();
  f.proto = PROTO_TCP;
  f.family = 4;
  f.ip4 = parseIPv4(lan.neighbour);
  f.port = 443;
  const d = c.decide(f);
  t.not(
    d.action,
    'tunnel',
    `${lan.neighbour}:443 is on this device's subnet (${lan.cidr}, own ${lan.own}): real GSA sends it direct; gsa-emu: ${d.action} on ${d.channel} (${d.reason})`,
  );
  t.match(d.reason, /^in the device's local subnet \S+, Private Access does not tunnel it/);
});

t.test('the default tenant: its IP segments are loopback, never a local subnet', async (t) => {
  // Tests that run the client with the default tenant must not depend on this machine's
  // interfaces: its Private IP segments (127.77.0.0/16, 127.78.0.10-20) are loopback, and
  // interfaceSubnets() skips internal (loopback) interfaces.
  const lo = parseIPv4('127.77.0.0');
  const hi = parseIPv4('127.78.0.20');
  for (const s of localSubnetsOf(interfaceSubnets())) {
    t.ok(s.last < lo || s.first > hi, `${s.text} holds no default-tenant IP segment`);
  }
  const k = both(loadDefaultTenant(), { ...state(IOS), localSubnets: interfaceSubnets() });
  t.equal(decide(t, k, '127.77.0.5', 3389).channel, 'private');
});

t.test('the local-subnet path allocates nothing and never throws', async (t) => {
  const c = compile(lan(), { ...state(IOS), localSubnets: ['10.1.0.0/24', '10.1.6.0/23'] });
  const flows = [
    flow('10.1.0.5', 443),
    flow('10.1.0.5', 443, 'udp'),
    flow('10.1.0.5', 443, 'tcp', 'web.corp.test'),
    flow('10.1.7.9', 8443),
    flow('10.1.1.5', 443),
    flow('10.1.0.3', 22),
    flow('10.1.9.1', 9000, 'tcp', 'app.corp.test'),
    flow('10.1.0.9', 80),
  ];
  const weird = newFlow();
  weird.family = 4;
  weird.ip4 = 167837953.5;
  t.doesNotThrow(() => c.decide(weird));
  const run = (n: number) => {
    let local = 0;
    for (let i = 0; i < n; i++) if (c.decide(flows[i & 7]!).reason.length > 80) local++;
    return local;
  };
  run(200_000);
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage().heapUsed;
  const local = run(1_000_000);
  const grown = process.memoryUsage().heapUsed - before;
  t.ok(local > 0, `${local} decisions with the local-subnet reason`);
  t.ok(grown < 2 * 1024 * 1024, `heap grew ${grown} bytes over 1e6 decisions`);
});
