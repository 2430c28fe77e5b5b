/**
 * Private DNS for single-label names (src/policy/private-dns.ts): which names are single
 * labels, which app gives the suffix, the derived rule destination, and the classifier's
 * side of it (compile, oracle, decideSingleLabel).
 */
import fc from 'fast-check';
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { OracleClassifier } from '../../src/classify/oracle.js';
import { decideSingleLabel, newFlow, PROTO_TCP, PROTO_UDP } from '../../src/classify/types.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import type { ClientState, RuleSpec, TenantSpec } from '../../src/policy/model.js';
import { loadPlatform } from '../../src/policy/platform.js';
import {
  isSingleLabel,
  privateDnsOf,
  qualifySingleLabel,
  SINGLE_LABEL_DOMAIN,
  stripSingleLabel,
  withPrivateDns,
} from '../../src/policy/private-dns.js';

const FILE_SHARE_APP = '0be01cca-76cb-5e88-9948-8a09e00e8f62';
const FILE_SHARE_RULE = '1498a3d0-694d-5475-9ac4-7c1191fdbed6';
const SUFFIX = `${FILE_SHARE_APP}.${SINGLE_LABEL_DOMAIN}`;

const state = (over: Partial<ClientState['channels']> = {}): ClientState => ({
  channels: { m365: true, private: true, internet: true, ...over },
  platform: loadPlatform('ios'),
});

/** A private-only tenant from rules: [policy id, link state, rule]. */
function tenantOf(
  rules: Array<[string, 'enabled' | 'disabled', Partial<RuleSpec> & { id: string }]>,
  profileState: 'enabled' | 'disabled' = 'enabled',
): TenantSpec {
  return {
    tenantId: 't',
    name: 't',
    profiles: [
      {
        id: 'p',
        name: 'Private',
        type: 'private',
        state: profileState,
        priority: 1,
        fallback: 'block',
        policies: rules.map(([pid, link, r]) => ({
          linkId: `l-${pid}-${r.id}`,
          linkState: link,
          id: pid,
          name: pid,
          rules: [
            {
              name: r.id,
              action: 'forward',
              protocols: ['tcp'],
              ports: [{ from: 80, to: 80 }],
              destinations: [],
              path: r.id,
              ...r,
            },
          ],
        })),
      },
    ],
  };
}

t.test('isSingleLabel: DNS labels only, not addresses, localhost or WPAD', async (t) => {
  for (const yes of ['fs1', 'a', 'file_share', 'x-1', 'a'.repeat(63), '1a']) {
    t.ok(isSingleLabel(yes), yes);
  }
  for (const no of [
    '',
    'a.b',
    'fs1.',
    '-a',
    'a-',
    'a'.repeat(64),
    'FS1', // callers normalize first
    'localhost',
    'wpad',
    '123',
    '2130706433',
    '0x7f000001',
    'a b',
    'ä',
    '::1',
  ]) {
    t.notOk(isSingleLabel(no), JSON.stringify(no));
  }
});

t.test('qualify and strip: inverse on single labels, null for everything else', async (t) => {
  t.equal(qualifySingleLabel('fs1', SUFFIX), `fs1.${SUFFIX}`);
  t.equal(qualifySingleLabel('fs1.corp.test', SUFFIX), null);
  t.equal(stripSingleLabel(`fs1.${SUFFIX}`, SUFFIX), 'fs1');
  t.equal(stripSingleLabel(`a.fs1.${SUFFIX}`, SUFFIX), null, 'a deeper name is not a label');
  t.equal(stripSingleLabel(SUFFIX, SUFFIX), null, 'the suffix alone');
  t.equal(stripSingleLabel(`.${SUFFIX}`, SUFFIX), null, 'an empty label');
  t.equal(stripSingleLabel(`xfs1${SUFFIX}`, SUFFIX), null, 'no dot before the suffix');
  t.equal(stripSingleLabel(`localhost.${SUFFIX}`, SUFFIX), null);
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      const q = qualifySingleLabel(s, SUFFIX);
      if (q !== null && stripSingleLabel(q, SUFFIX) !== s) return false;
      const back = stripSingleLabel(s, SUFFIX);
      return back === null || qualifySingleLabel(back, SUFFIX) === s;
    }),
    { numRuns: 500 },
  );
});

t.test('the default tenant: the file share app gives the suffix and the search list', async (t) => {
  const tenant = loadDefaultTenant();
  const pd = privateDnsOf(tenant);
  t.ok(pd);
  t.equal(pd!.suffix, SUFFIX);
  t.equal(pd!.appId, FILE_SHARE_APP);
  t.same(pd!.searchList, ['corp.contoso.test']);
  t.same([...pd!.ruleIds], [FILE_SHARE_RULE]);
  const derived = withPrivateDns(tenant);
  t.not(derived, tenant, 'a new tenant object');
  t.equal(withPrivateDns(tenant), derived, 'cached per tenant object');
  const rule = (x: TenantSpec) =>
    x.profiles
      .flatMap((p) => p.policies.flatMap((q) => q.rules))
      .find((r) => r.id === FILE_SHARE_RULE)!;
  t.same(rule(derived).destinations.at(-1), { type: 'dnsSuffix', value: SUFFIX });
  t.equal(rule(tenant).destinations.length, 1, 'the input is not changed');
  const count = (x: TenantSpec) =>
    x.profiles.flatMap((p) => p.policies.flatMap((q) => q.rules.flatMap((r) => r.destinations)))
      .length;
  t.equal(count(derived), count(tenant) + 1, 'one destination added, to that rule only');
});

t.test('which rules configure Private DNS', async (t) => {
  const suffixRule = (id: string, value: string, appId?: string) => ({
    id,
    destinations: [{ type: 'dnsSuffix' as const, value }],
    ...(appId ? { appId } : {}),
  });
  t.equal(privateDnsOf(tenantOf([])), null, 'no rules');
  const none = tenantOf([
    ['qa', 'enabled', { id: 'r1', destinations: [{ type: 'fqdn', value: 'a.test' }] }],
  ]);
  t.equal(privateDnsOf(none), null, 'no dnsSuffix destination');
  t.equal(withPrivateDns(none), none, 'nothing to add: the same object');
  t.equal(
    privateDnsOf(tenantOf([['qa', 'disabled', suffixRule('r1', 'corp.test', 'app1')]])),
    null,
    'a disabled link',
  );
  t.equal(
    privateDnsOf(tenantOf([['qa', 'enabled', suffixRule('r1', 'corp.test', 'app1')]], 'disabled')),
    null,
    'a disabled profile',
  );
  t.equal(
    privateDnsOf(
      tenantOf([['qa', 'enabled', { ...suffixRule('r1', 'corp.test', 'app1'), action: 'bypass' }]]),
    ),
    null,
    'a bypass rule',
  );
  t.equal(
    privateDnsOf(tenantOf([['qa', 'enabled', suffixRule('r1', 'corp.test', 'not a label')]])),
    null,
    'an app id that cannot be a DNS label',
  );
  const two = tenantOf([
    ['qa', 'disabled', suffixRule('r0', 'old.test', 'app0')],
    ['qa', 'enabled', suffixRule('r1', 'corp.test', 'APP1')],
    ['other', 'enabled', suffixRule('r2', 'else.test', 'app2')],
    ['qa2', 'enabled', suffixRule('r3', 'lab.test', 'app1')],
    ['qa2', 'enabled', suffixRule('r4', 'corp.test', 'app1')],
  ]);
  const pd = privateDnsOf(two)!;
  t.equal(pd.suffix, `app1.${SINGLE_LABEL_DOMAIN}`, "the first active app's, lowercase");
  t.same(pd.searchList, ['corp.test', 'lab.test'], "that app's suffixes, in order, once each");
  t.same([...pd.ruleIds].sort(), ['r1', 'r3', 'r4']);
  const noApp = privateDnsOf(tenantOf([['pol-1', 'enabled', suffixRule('r1', 'corp.test')]]))!;
  t.equal(noApp.suffix, `pol-1.${SINGLE_LABEL_DOMAIN}`, 'no appId: the policy id');
});

t.test('classifier: single-label names under Private DNS, compiled and oracle alike', async (t) => {
  const tenant = loadDefaultTenant();
  for (const [name, make] of [
    ['compiled', compile],
    ['oracle', (x: TenantSpec, s: ClientState) => new OracleClassifier(x, s)],
  ] as const) {
    const c = make(tenant, state());
    t.equal(c.singleLabelSuffix, SUFFIX, `${name}: the suffix`);
    t.equal(make(tenant, state({ private: false })).singleLabelSuffix, null, `${name}: off`);
    const f = newFlow();
    f.family = 0;
    f.proto = PROTO_TCP;
    f.port = 445;
    f.host = 'fs1';
    const d = decideSingleLabel(c, f);
    t.equal(d?.ruleId, FILE_SHARE_RULE, `${name}: the file share rule`);
    t.equal(d?.action, 'tunnel');
    t.equal(d?.matched, SUFFIX);
    t.equal(f.host, `fs1.${SUFFIX}`, `${name}: the flow goes by the qualified name`);
    // Not acquired once qualified (a port the rule lacks, UDP): the name stays as it was.
    for (const [proto, port] of [
      [PROTO_TCP, 22],
      [PROTO_UDP, 445],
    ] as const) {
      f.host = 'fs1';
      f.proto = proto;
      f.port = port;
      t.equal(decideSingleLabel(c, f), null, `${name}: ${proto}/${port}`);
      t.equal(f.host, 'fs1');
    }
    f.proto = PROTO_TCP;
    f.port = 80;
    for (const other of ['localhost', 'wpad', 'intranet.contoso.test', '123']) {
      f.host = other;
      t.equal(decideSingleLabel(c, f), null, `${name}: ${other}`);
      t.equal(f.host, other);
    }
    f.host = 'fs1';
    t.equal(decideSingleLabel(make(tenant, state({ private: false })), f), null, 'channel off');
    t.equal(f.host, 'fs1');
  }
});
