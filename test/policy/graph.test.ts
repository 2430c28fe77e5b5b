import fc from 'fast-check';
import t from 'tap';
import { compile } from '../../src/classify/index.js';
import { ConfigError } from '../../src/errors.js';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import {
  EXPAND_ALL,
  expandPolicy,
  expandProfiles,
  type GraphDocument,
  internetKindOf,
  loadTenant,
  m365GroupOf,
  normalizeFqdn,
  parsePort,
  setPolicyLinkState,
} from '../../src/policy/graph.js';
import { flow, state } from '../classify/helpers.js';
import { issuesOf, mutate } from './helpers.js';

const NS = '#microsoft.graph.networkaccess.';
// biome-ignore lint/suspicious/noExplicitAny: test documents are mutated freely
type J = Record<string, any>;

/** A small valid document: one private profile, one policy, one rule per call to `rules`. */
function doc(rule: J, type = 'private'): J {
  const kind =
    type === 'm365'
      ? 'm365ForwardingRule'
      : type === 'internet'
        ? 'internetAccessForwardingRule'
        : 'privateAccessForwardingRule';
  return {
    tenantId: 't1',
    name: 'Test',
    forwardingProfiles: [
      {
        id: 'p0',
        name: 'Profile',
        trafficForwardingType: type,
        policies: [
          { id: 'l0', state: 'enabled', policy: { id: 'q0', name: 'Policy', policyRules: [] } },
          {
            id: 'l1',
            state: 'enabled',
            policy: {
              id: 'q1',
              name: 'Policy 1',
              policyRules: [
                {
                  '@odata.type': NS + kind,
                  id: 'r0',
                  name: 'R0',
                  action: 'forward',
                  destinations: [{ '@odata.type': `${NS}fqdn`, value: 'a.test' }],
                },
                {
                  '@odata.type': NS + kind,
                  id: 'r1',
                  name: 'R1',
                  action: 'forward',
                  destinations: [{ '@odata.type': `${NS}fqdn`, value: 'b.test' }],
                },
                {
                  '@odata.type': NS + kind,
                  id: 'r2',
                  name: 'R2',
                  action: 'forward',
                  destinations: [{ '@odata.type': `${NS}fqdn`, value: 'c.test' }],
                },
                { '@odata.type': NS + kind, id: 'r3', name: 'R3', action: 'forward', ...rule },
              ],
            },
          },
        ],
      },
    ],
  };
}
const R3 = 'forwardingProfiles[0].policies[1].policy.policyRules[3]';
const dest = (type: string, v: J) => ({ destinations: [{ '@odata.type': NS + type, ...v }] });

t.test('every destination kind is normalized', async (t) => {
  const cases: Array<[J, unknown]> = [
    [dest('fqdn', { value: 'WWW.Contoso.Test.' }), { type: 'fqdn', value: 'www.contoso.test' }],
    [dest('fqdn', { value: '*.contoso.test' }), { type: 'fqdn', value: '*.contoso.test' }],
    [
      dest('fqdn', { value: 'autodiscover.*.onmicrosoft.com' }),
      { type: 'fqdn', value: 'autodiscover.*.onmicrosoft.com' },
    ],
    [
      dest('dnsSuffix', { value: '.Corp.Contoso.Test' }),
      { type: 'dnsSuffix', value: 'corp.contoso.test' },
    ],
    [dest('ipAddress', { value: '10.1.2.3' }), { type: 'ipAddress', value: '10.1.2.3' }],
    [dest('ipAddress', { value: '2001:db8::1' }), { type: 'ipAddress', value: '2001:db8::1' }],
    [dest('ipSubnet', { value: '10.0.0.0/8' }), { type: 'ipSubnet', value: '10.0.0.0/8' }],
    [dest('ipSubnet', { value: '2603:1006::/40' }), { type: 'ipSubnet', value: '2603:1006::/40' }],
    [
      dest('ipRange', { beginAddress: '10.0.0.1', endAddress: '10.0.0.9' }),
      { type: 'ipRange', begin: '10.0.0.1', end: '10.0.0.9' },
    ],
    [
      dest('ipRange', { beginAddress: '2001:db8::1', endAddress: '2001:db8::1' }),
      { type: 'ipRange', begin: '2001:db8::1', end: '2001:db8::1' },
    ],
    // The namespace without the leading '#' is accepted too.
    [
      { destinations: [{ '@odata.type': 'microsoft.graph.networkaccess.fqdn', value: 'x.test' }] },
      { type: 'fqdn', value: 'x.test' },
    ],
  ];
  for (const [rule, want] of cases) {
    const tenant = loadTenant(doc(rule));
    const r = tenant.profiles[0]!.policies[1]!.rules[3]!;
    t.same(r.destinations, [want], JSON.stringify(rule));
    t.equal(r.path, R3);
  }
});

t.test('rule fields: ports, protocols, defaults per profile type', async (t) => {
  const priv = loadTenant(
    doc({
      ...dest('fqdn', { value: 'a.test' }),
      ports: ['80', '400-500'],
      protocol: 'tcp,udp',
      appId: 'app-1',
    }),
  );
  const r = priv.profiles[0]!.policies[1]!.rules[3]!;
  t.same(r.ports, [
    { from: 80, to: 80 },
    { from: 400, to: 500 },
  ]);
  t.same(r.protocols, ['tcp', 'udp']);
  t.equal(r.appId, 'app-1');
  t.same(
    loadTenant(doc(dest('fqdn', { value: 'a.test' }))).profiles[0]!.policies[1]!.rules[3]!
      .protocols,
    [],
    'private: missing protocol = any',
  );
  const m = loadTenant(doc(dest('fqdn', { value: 'a.test' }), 'm365')).profiles[0]!;
  t.same(m.policies[1]!.rules[3]!.protocols, ['tcp'], 'm365: missing protocol = tcp');
  t.equal(m.policies[1]!.rules[3]!.category, 'default');
  t.equal(m.fallback, 'bypass');
  t.equal(m.priority, 0);
  t.equal(m.policies[1]!.group, 'other');
  const i = loadTenant(doc({ ...dest('fqdn', { value: 'a.test' }), protocol: 'udp' }, 'internet'))
    .profiles[0]!;
  t.same(i.policies[1]!.rules[3]!.protocols, ['udp']);
  t.equal(i.priority, 2);
  t.equal(i.policies[1]!.kind, undefined);
  t.equal(i.state, 'enabled');
});

t.test('each validation error names its path (table)', async (t) => {
  const d = (type: string, v: J, extra: J = {}) => doc({ ...dest(type, v), ...extra });
  const table: Array<[string, J, string, RegExp]> = [
    [
      'CIDR prefix',
      d('ipSubnet', { value: '10.0.0.0/33' }),
      `${R3}.destinations[0].value`,
      /^"10\.0\.0\.0\/33" is not a CIDR$/,
    ],
    [
      'ipRangeCidr as a destination type (it is the ruleType)',
      d('ipRangeCidr', { value: '192.168.0.0/16' }),
      `${R3}.destinations[0].@odata.type`,
      /ruleType ipRangeCidr holds #microsoft\.graph\.networkaccess\.ipSubnet destinations/,
    ],
    [
      'CIDR bare address',
      d('ipSubnet', { value: '10.0.0.0' }),
      `${R3}.destinations[0].value`,
      /is not a CIDR/,
    ],
    [
      'CIDR v6 garbage',
      d('ipSubnet', { value: '2603:zz::/40' }),
      `${R3}.destinations[0].value`,
      /is not a CIDR/,
    ],
    [
      'ipAddress',
      d('ipAddress', { value: '300.1.1.1' }),
      `${R3}.destinations[0].value`,
      /is not an IP address/,
    ],
    [
      'ipRange order',
      d('ipRange', { beginAddress: '10.0.0.9', endAddress: '10.0.0.1' }),
      `${R3}.destinations[0]`,
      /beginAddress 10\.0\.0\.9 is after endAddress 10\.0\.0\.1/,
    ],
    [
      'ipRange v6 order',
      d('ipRange', { beginAddress: '2001:db8::9', endAddress: '2001:db8::1' }),
      `${R3}.destinations[0]`,
      /is after/,
    ],
    [
      'ipRange family',
      d('ipRange', { beginAddress: '10.0.0.1', endAddress: '::1' }),
      `${R3}.destinations[0]`,
      /same address family/,
    ],
    [
      'ipRange begin',
      d('ipRange', { beginAddress: 'x', endAddress: '10.0.0.1' }),
      `${R3}.destinations[0].beginAddress`,
      /not an IP address/,
    ],
    [
      'ipRange end missing',
      d('ipRange', { beginAddress: '10.0.0.1' }),
      `${R3}.destinations[0].endAddress`,
      /missing/,
    ],
    [
      'fqdn glued wildcard',
      d('fqdn', { value: '*contoso.com' }),
      `${R3}.destinations[0].value`,
      /"\*" must be a whole label/,
    ],
    [
      'fqdn trailing wildcard',
      d('fqdn', { value: 'contoso.*' }),
      `${R3}.destinations[0].value`,
      /cannot be the last label/,
    ],
    [
      'fqdn empty label',
      d('fqdn', { value: 'a..contoso.com' }),
      `${R3}.destinations[0].value`,
      /empty label/,
    ],
    ['fqdn empty', d('fqdn', { value: '' }), `${R3}.destinations[0].value`, /must not be empty/],
    [
      'fqdn only wildcard',
      d('fqdn', { value: '*' }),
      `${R3}.destinations[0].value`,
      /cannot be the last label|no label/,
    ],
    [
      'fqdn is an IP',
      d('fqdn', { value: '10.0.0.1' }),
      `${R3}.destinations[0].value`,
      /is an IP address/,
    ],
    [
      'fqdn bad chars',
      d('fqdn', { value: 'a b.test' }),
      `${R3}.destinations[0].value`,
      /spaces or non-ASCII/,
    ],
    ['fqdn bad label', d('fqdn', { value: '-a.test' }), `${R3}.destinations[0].value`, /bad label/],
    [
      'fqdn not a string',
      d('fqdn', { value: 7 }),
      `${R3}.destinations[0].value`,
      /must be a string/,
    ],
    [
      'dnsSuffix wildcard',
      d('dnsSuffix', { value: '*.corp.test' }),
      `${R3}.destinations[0].value`,
      /wildcards are not allowed/,
    ],
    [
      'destination type unknown',
      d('ipv9', { value: 'x' }),
      `${R3}.destinations[0].@odata.type`,
      /not a known destination type/,
    ],
    [
      'destination url',
      d('url', { value: 'https://x.test/' }),
      `${R3}.destinations[0].@odata.type`,
      /filtering policies/,
    ],
    [
      'destination type missing',
      doc({ destinations: [{ value: 'a.test' }] }),
      `${R3}.destinations[0].@odata.type`,
      /missing/,
    ],
    [
      'destination not object',
      doc({ destinations: ['a.test'] }),
      `${R3}.destinations[0]`,
      /must be an object/,
    ],
    ['destinations empty', doc({ destinations: [] }), `${R3}.destinations`, /must not be empty/],
    ['destinations missing', doc({}), `${R3}.destinations`, /missing/],
    [
      'port too big',
      d('fqdn', { value: 'a.test' }, { ports: ['70000'] }),
      `${R3}.ports[0]`,
      /out of range/,
    ],
    [
      'port range order',
      d('fqdn', { value: 'a.test' }, { ports: ['80', '500-400'] }),
      `${R3}.ports[1]`,
      /start is after its end/,
    ],
    [
      'port syntax',
      d('fqdn', { value: 'a.test' }, { ports: ['http'] }),
      `${R3}.ports[0]`,
      /not a port/,
    ],
    [
      'port number',
      d('fqdn', { value: 'a.test' }, { ports: [80] }),
      `${R3}.ports[0]`,
      /not a port string/,
    ],
    [
      'ports not array',
      d('fqdn', { value: 'a.test' }, { ports: '80' }),
      `${R3}.ports`,
      /must be an array/,
    ],
    [
      'protocol',
      d('fqdn', { value: 'a.test' }, { protocol: 'sctp' }),
      `${R3}.protocol`,
      /not a protocol/,
    ],
    [
      'protocol: a Graph networkingProtocol besides tcp and udp',
      d('fqdn', { value: 'a.test' }, { protocol: 'icmp' }),
      `${R3}.protocol`,
      /"icmp" is a Graph networkingProtocol that GSA forwarding rules do not use/,
    ],
    [
      'action',
      d('fqdn', { value: 'a.test' }, { action: 'allow' }),
      `${R3}.action`,
      /"allow" is not one of forward, bypass/,
    ],
    [
      'action missing',
      d('fqdn', { value: 'a.test' }, { action: undefined }),
      `${R3}.action`,
      /missing/,
    ],
    [
      'rule id duplicate',
      d('fqdn', { value: 'a.test' }, { id: 'r1' }),
      `${R3}.id`,
      /duplicate rule id "r1" \(also at forwardingProfiles\[0\]\.policies\[1\]\.policy\.policyRules\[1\]\)/,
    ],
    ['rule id missing', d('fqdn', { value: 'a.test' }, { id: undefined }), `${R3}.id`, /missing/],
    [
      'rule name empty',
      d('fqdn', { value: 'a.test' }, { name: ' ' }),
      `${R3}.name`,
      /must not be empty/,
    ],
    [
      'rule odata type',
      d('fqdn', { value: 'a.test' }, { '@odata.type': `${NS}bogusRule` }),
      `${R3}.@odata.type`,
      /not a known rule type/,
    ],
    [
      'rule in wrong profile',
      d('fqdn', { value: 'a.test' }, { '@odata.type': `${NS}m365ForwardingRule` }),
      `${R3}.@odata.type`,
      /cannot be in a private profile/,
    ],
    [
      'ruleType unknown',
      d('fqdn', { value: 'a.test' }, { ruleType: 'hostname' }),
      `${R3}.ruleType`,
      /not one of/,
    ],
    [
      'ruleType of a filtering rule',
      d('fqdn', { value: 'a.test' }, { ruleType: 'url' }),
      `${R3}.ruleType`,
      /"url" belongs to filtering policies/,
    ],
    [
      'ruleType mismatch',
      d('fqdn', { value: 'a.test' }, { ruleType: 'ipSubnet' }),
      `${R3}.destinations[0]`,
      /fqdn destination in a rule of ruleType ipSubnet/,
    ],
    [
      'category on private',
      d('fqdn', { value: 'a.test' }, { category: 'default' }),
      `${R3}.category`,
      /only Microsoft profile/,
    ],
  ];
  for (const [name, json, path, re] of table) {
    const issues = issuesOf(json);
    const hit = issues.find((i) => i.path === path && re.test(i.message));
    t.ok(hit, `${name}: ${JSON.stringify(issues)}`);
  }
});

t.test('profile, link and policy errors', async (t) => {
  const P = 'forwardingProfiles[0]';
  const mut = (f: (d: J) => void): J => {
    const d = doc(dest('fqdn', { value: 'a.test' }));
    f(d);
    return d;
  };
  const table: Array<[string, J, string, RegExp]> = [
    [
      'state',
      mut((d) => {
        d.forwardingProfiles[0].state = 'on';
      }),
      `${P}.state`,
      /"on" is not one of enabled, disabled/,
    ],
    [
      'type',
      mut((d) => {
        d.forwardingProfiles[0].trafficForwardingType = 'web';
      }),
      `${P}.trafficForwardingType`,
      /not one of m365, private, internet/,
    ],
    [
      'type missing',
      mut((d) => {
        delete d.forwardingProfiles[0].trafficForwardingType;
      }),
      `${P}.trafficForwardingType`,
      /missing/,
    ],
    [
      'fallback',
      mut((d) => {
        d.forwardingProfiles[0].clientFallbackAction = 'allow';
      }),
      `${P}.clientFallbackAction`,
      /not one of bypass, block/,
    ],
    [
      'priority',
      mut((d) => {
        d.forwardingProfiles[0].priority = '1';
      }),
      `${P}.priority`,
      /must be a number/,
    ],
    [
      'profile odata',
      mut((d) => {
        d.forwardingProfiles[0]['@odata.type'] = `${NS}filteringProfile`;
      }),
      `${P}.@odata.type`,
      /is not #microsoft\.graph\.networkaccess\.forwardingProfile/,
    ],
    [
      'profile id',
      mut((d) => {
        d.forwardingProfiles[0].id = 3;
      }),
      `${P}.id`,
      /must be a string/,
    ],
    [
      'policies not array',
      mut((d) => {
        d.forwardingProfiles[0].policies = {};
      }),
      `${P}.policies`,
      /must be an array/,
    ],
    [
      'link state',
      mut((d) => {
        d.forwardingProfiles[0].policies[0].state = 'paused';
      }),
      `${P}.policies[0].state`,
      /not one of enabled, disabled/,
    ],
    [
      'link id duplicate',
      mut((d) => {
        d.forwardingProfiles[0].policies[1].id = 'l0';
      }),
      `${P}.policies[1].id`,
      /duplicate policy link id/,
    ],
    [
      'policy missing',
      mut((d) => {
        delete d.forwardingProfiles[0].policies[0].policy;
      }),
      `${P}.policies[0].policy`,
      /\$expand=policies\(\$expand=policy\(\$expand=policyRules\)\)/,
    ],
    [
      'policy id duplicate',
      mut((d) => {
        d.forwardingProfiles[0].policies[1].policy.id = 'q0';
      }),
      `${P}.policies[1].policy.id`,
      /duplicate policy id/,
    ],
    [
      'policy type mismatch',
      mut((d) => {
        d.forwardingProfiles[0].policies[0].policy.trafficForwardingType = 'm365';
      }),
      `${P}.policies[0].policy.trafficForwardingType`,
      /does not match/,
    ],
    [
      'policyRules not array',
      mut((d) => {
        d.forwardingProfiles[0].policies[0].policy.policyRules = 'x';
      }),
      `${P}.policies[0].policy.policyRules`,
      /must be an array/,
    ],
    [
      'second profile of a type',
      mut((d) => {
        d.forwardingProfiles.push({ id: 'p9', name: 'x', trafficForwardingType: 'private' });
      }),
      'forwardingProfiles[1].trafficForwardingType',
      /a second "private" profile/,
    ],
    [
      'profile id duplicate',
      mut((d) => {
        d.forwardingProfiles.push({ id: 'p0', name: 'x', trafficForwardingType: 'm365' });
      }),
      'forwardingProfiles[1].id',
      /duplicate profile id/,
    ],
    [
      'rule not object',
      mut((d) => {
        d.forwardingProfiles[0].policies[1].policy.policyRules[3] = 'r3';
      }),
      R3,
      /must be an object, not "r3"/,
    ],
    [
      'link not object',
      mut((d) => {
        d.forwardingProfiles[0].policies[0] = null;
      }),
      `${P}.policies[0]`,
      /must be an object/,
    ],
    [
      'tenantId',
      mut((d) => {
        delete d.tenantId;
      }),
      'tenantId',
      /missing/,
    ],
    [
      'forwardingProfiles',
      { tenantId: 'x', name: 'y', forwardingProfiles: 5 },
      'forwardingProfiles',
      /must be an array/,
    ],
    ['value', { value: null }, 'value', /must be an array/],
    ['root', [1], '', /expected an object/],
    ['root keys', { profiles: [] }, '', /expected "forwardingProfiles"/],
  ];
  for (const [name, json, path, re] of table) {
    const issues = issuesOf(json);
    t.ok(
      issues.find((i) => i.path === path && re.test(i.message)),
      `${name}: ${JSON.stringify(issues)}`,
    );
  }
});

t.test('all problems are collected into one ConfigError', async (t) => {
  const d = doc({
    destinations: [{ '@odata.type': `${NS}ipSubnet`, value: '10.0.0.0/33' }],
    ports: ['99999'],
  });
  d.forwardingProfiles[0].state = 'bogus';
  const err = t.throws(() => loadTenant(d, { file: 'profiles.json' })) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.code, 'GSA_ERR_CONFIG');
  t.equal(err.file, 'profiles.json');
  t.equal(err.issues.length, 3);
  t.match(err.message, /^profiles\.json: 3 problems\n/);
  t.match(err.message, `${R3}.destinations[0].value: "10.0.0.0/33" is not a CIDR`);
});

t.test('Graph list response form', async (t) => {
  const list = expandProfiles(defaultTenantDocument(), EXPAND_ALL);
  const tenant = loadTenant(list, { tenantId: 'abc', name: 'From Graph' });
  t.equal(tenant.tenantId, 'abc');
  t.equal(tenant.name, 'From Graph');
  t.equal(tenant.profiles.length, 3);
  t.match(
    tenant.profiles[0]!.policies[0]!.rules[0]!.path,
    /^value\[0\]\.policies\[0\]\.policy\.policyRules\[0\]$/,
  );
  const bad = structuredClone(list) as J;
  bad.value[2].policies[0].policy.policyRules[0].destinations[0].value = 'x..test';
  t.ok(
    issuesOf(bad).some(
      (i) => i.path === 'value[2].policies[0].policy.policyRules[0].destinations[0].value',
    ),
  );
});

t.test('derived names', async (t) => {
  t.equal(m365GroupOf('Exchange Online'), 'exchange');
  t.equal(m365GroupOf('SharePoint Online and OneDrive'), 'sharepoint');
  t.equal(m365GroupOf('OneDrive'), 'sharepoint');
  t.equal(m365GroupOf('Microsoft Teams'), 'teams');
  t.equal(m365GroupOf('Microsoft 365 Common and Office Online'), 'common');
  t.equal(m365GroupOf('Office Online'), 'common');
  t.equal(m365GroupOf('Yammer'), 'other');
  t.equal(internetKindOf('Custom Bypass'), 'customBypass');
  t.equal(internetKindOf('Default-Bypass'), 'defaultBypass');
  t.equal(internetKindOf('Microsoft Traffic Bypass'), 'microsoftBypass');
  t.equal(internetKindOf('x', 'Bypass of Microsoft traffic'), 'microsoftBypass');
  t.equal(internetKindOf('Custom Acquisition'), 'customAcquire');
  t.equal(internetKindOf('Default Acquire'), 'defaultAcquire');
  t.equal(internetKindOf('Policy 7', 'Default Acquisition of web'), 'defaultAcquire');
  t.equal(internetKindOf('Policy 7'), undefined);
});

t.test('helpers', async (t) => {
  t.same(parsePort('0'), { from: 0, to: 0 });
  t.same(parsePort('65535'), { from: 65535, to: 65535 });
  t.type(parsePort('65536'), 'string');
  t.type(parsePort('1-'), 'string');
  t.type(parsePort(' 80'), 'string');
  t.equal(normalizeFqdn('A.B.', true).value, 'a.b');
  t.equal(normalizeFqdn('_sip._tls.contoso.test', true).value, '_sip._tls.contoso.test');
  t.ok(normalizeFqdn(`${'a'.repeat(64)}.test`, true).error);
  t.ok(normalizeFqdn(`${'a.'.repeat(127)}test`, true).error);
  t.ok(normalizeFqdn('bücher.test', true).error);
  t.equal(normalizeFqdn('*.*.contoso.test', true).value, '*.*.contoso.test');
});

t.test('setPolicyLinkState', async (t) => {
  const d = defaultTenantDocument();
  const profile = d.forwardingProfiles[0]!;
  const link = profile.policies![0]!;
  const now = new Date('2026-11-26T12:00:00Z');
  t.equal(setPolicyLinkState(d, profile.id, link.id, 'disabled', now), true);
  t.equal(link.state, 'disabled');
  t.equal(link.version, '1.0.1');
  t.equal(profile.version, '1.0.1');
  t.equal(profile.lastModifiedDateTime, '2026-11-26T12:00:00.000Z');
  const tenant = loadTenant(d);
  t.equal(tenant.profiles[0]!.policies[0]!.linkState, 'disabled');
  t.equal(setPolicyLinkState(d, profile.id, 'nope', 'enabled'), false);
  t.equal(setPolicyLinkState(d, 'nope', link.id, 'enabled'), false);
  t.equal(
    setPolicyLinkState(d, d.forwardingProfiles[1]!.id, link.id, 'enabled'),
    false,
    'link of another profile',
  );
  t.throws(() => setPolicyLinkState(d, profile.id, link.id, 'off' as 'enabled'), {
    code: 'GSA_ERR_CONFIG',
  });
  t.equal(setPolicyLinkState(d, profile.id, link.id, 'enabled', now), true);
  t.equal(link.version, '1.0.2');
  // Works on the Graph list form too.
  const list = expandProfiles(d, 'policies($expand=policy)');
  t.equal(setPolicyLinkState(list, profile.id, link.id, 'disabled'), true);
  t.equal(list.value[0]!.policies![0]!.state, 'disabled');
  t.equal(link.state, 'enabled', 'the expanded list is a copy');
});

t.test('expandProfiles', async (t) => {
  const d = defaultTenantDocument();
  const none = expandProfiles(d);
  t.equal(
    none['@odata.context'],
    'https://graph.microsoft.com/beta/$metadata#networkAccess/forwardingProfiles',
  );
  t.equal(none.value.length, 3);
  t.ok(none.value.every((p) => p.policies === undefined));
  t.equal(none.value[0]!.trafficForwardingType, 'm365');
  const links = expandProfiles(d, 'policies');
  t.ok(
    links.value.every(
      (p) =>
        p.policies!.length > 0 &&
        p.policies!.every((l) => l.policy === undefined && l.id && l.state),
    ),
  );
  // As on Graph, a policy's rules are a navigation property: not inlined unless expanded.
  const pols = expandProfiles(d, 'policies( $expand=policy )');
  t.match(pols['@odata.context'], /forwardingProfiles\(policies\(policy\(\)\)\)$/);
  t.ok(
    pols.value.every((p) =>
      p.policies!.every((l) => l.policy?.id && l.policy.name && !('policyRules' in l.policy)),
    ),
    'links carry their policy without policyRules',
  );
  const full = expandProfiles(d, ' policies ( $expand = policy ( $expand = policyRules ) ) ');
  t.match(full['@odata.context'], /forwardingProfiles\(policies\(policy\(policyRules\(\)\)\)\)$/);
  t.same(full.value, d.forwardingProfiles, 'everything, as stored');
  t.same(expandProfiles(d, EXPAND_ALL).value, d.forwardingProfiles);
  full.value[0]!.name = 'changed';
  t.not(d.forwardingProfiles[0]!.name, 'changed');
  // `*` expands one level (OData), nested levels need nested $expand.
  t.same(expandProfiles(d, '*'), links);
  t.same(expandProfiles(d, 'policies($expand=*)'), pols);
  t.same(expandProfiles(d, 'policies($expand=policy($expand=*))').value, d.forwardingProfiles);
  t.same(expandProfiles(d, ''), none);
  for (const bad of [
    'associations',
    'policy',
    'policies,policies',
    'policies(',
    'policies()',
    'policies($expand=policyRules)',
    'policies($select=id)',
    'policies($expand=policy;$expand=policy)',
    'policies($expand=policy($expand=policyRules($expand=x)))',
    'policies/policy',
    'policies)',
    `${'policies($expand=policy('.repeat(20)}`,
    'x'.repeat(2000),
  ]) {
    t.throws(
      () => expandProfiles(d, bad),
      { code: 'GSA_ERR_CONFIG', issues: [{ path: '$expand' }] },
      bad.slice(0, 60),
    );
  }
  t.match(
    (() => {
      try {
        expandProfiles(d, 'policies($expand=rules)');
      } catch (e) {
        return (e as ConfigError).issues[0]!.message;
      }
    })(),
    /"rules" \(offset 17\) is not a navigation property of forwardingPolicyLink \(it has policy\)/,
  );
});

t.test('expandPolicy', async (t) => {
  const pol = defaultTenantDocument().forwardingProfiles[0]!.policies![0]!.policy!;
  const plain = expandPolicy(pol);
  t.equal(
    plain['@odata.context'],
    'https://graph.microsoft.com/beta/$metadata#networkAccess/forwardingPolicies/$entity',
  );
  t.equal(plain.id, pol.id);
  t.notOk('policyRules' in plain, 'no $expand: no policyRules');
  const withRules = expandPolicy(pol, 'policyRules');
  t.match(withRules['@odata.context'], /forwardingPolicies\(policyRules\(\)\)\/\$entity$/);
  t.same(withRules.policyRules, pol.policyRules);
  t.not(withRules.policyRules, pol.policyRules, 'a copy');
  t.same(expandPolicy(pol, '*').policyRules, pol.policyRules);
  t.same(expandPolicy({ id: 'p', name: 'n' }, 'policyRules').policyRules, [], 'none: []');
  t.throws(() => expandPolicy(pol, 'policies'), {
    code: 'GSA_ERR_CONFIG',
    issues: [{ path: '$expand' }],
  });
});

t.test('fuzz: random JSON -> TenantSpec or ConfigError, nothing else', async (t) => {
  const check = (v: unknown): boolean => {
    try {
      const spec = loadTenant(v);
      return typeof spec.tenantId === 'string' && Array.isArray(spec.profiles);
    } catch (e) {
      return e instanceof ConfigError && e.issues.length > 0;
    }
  };
  fc.assert(fc.property(fc.jsonValue(), check), { numRuns: 500 });
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.constantFrom(
          'tenantId',
          'name',
          'forwardingProfiles',
          'value',
          '__proto__',
          'constructor',
        ),
        fc.jsonValue(),
      ),
      check,
    ),
    { numRuns: 500 },
  );
  t.pass('random JSON');
});

t.test('fuzz: mutated valid documents -> TenantSpec or ConfigError', async (t) => {
  const base = defaultTenantDocument();
  const strs = fc.constantFrom(
    '10.0.0.0/33',
    '*contoso.com',
    'a..b',
    '',
    'udp',
    'tcp,udp',
    '500-400',
    '70000',
    '::1',
    '1.2.3.4',
    'x',
    'enabled',
    'bypass',
    `${NS}ipRange`,
    `${NS}fqdn`,
  );
  const vals = fc.oneof(fc.jsonValue(), strs);
  let specs = 0;
  let errors = 0;
  fc.assert(
    fc.property(fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), vals, (pick, v) => {
      const m = mutate(base, pick, v);
      try {
        loadTenant(m);
        specs++;
        return true;
      } catch (e) {
        errors++;
        if (!(e instanceof ConfigError)) return false;
        // Every issue names a path that exists in the mutated document, or its parent does.
        return e.issues.every((i) => typeof i.path === 'string' && i.message.length > 0);
      }
    }),
    { numRuns: 1000 },
  );
  t.ok(specs > 0 && errors > 0, `specs ${specs}, errors ${errors}`);
});

t.test('pathological input: deep nesting, huge strings', async (t) => {
  let deep: unknown = 1;
  for (let i = 0; i < 200_000; i++) deep = [deep];
  const d = {
    tenantId: 't',
    name: 'n',
    forwardingProfiles: [{ id: 'p', name: 'p', trafficForwardingType: 'm365', priority: deep }],
  };
  t.throws(() => loadTenant(d), {
    code: 'GSA_ERR_CONFIG',
    issues: [{ path: 'forwardingProfiles[0].priority', message: 'must be a number, not an array' }],
  });
  const long = `${'a'.repeat(100_000)}.test`;
  const issues = issuesOf(doc(dest('fqdn', { value: long })));
  t.equal(issues.length, 1);
  t.ok(issues[0]!.message.length < 200, 'messages stay short');
});

t.test('a wildcard glued to a label: the hint is the whole corrected name', async (t) => {
  // Review (helper-32): the hint was built from the bad label alone ("*contoso.com" ->
  // write "*.contoso"), naming a different domain.
  const r = normalizeFqdn('*contoso.com', true);
  t.type(r.error, 'string', 'refused');
  t.match(r.error, /\*\.contoso\.com/, 'suggests *.contoso.com');
  t.notMatch(r.error, /"\*\.contoso"/, 'not *.contoso (a different domain)');
  const a = normalizeFqdn('autodiscover*.onmicrosoft.com', true);
  t.type(a.error, 'string', 'refused');
  t.match(a.error, /onmicrosoft\.com"?\)/, 'the suggestion still ends in onmicrosoft.com');

  const hints: Array<[string, string | null]> = [
    ['*contoso.com', '*.contoso.com'],
    ['autodiscover*.onmicrosoft.com', 'autodiscover.*.onmicrosoft.com'],
    ['Mail.*Contoso.com.', 'mail.*.contoso.com'],
    ['a*b.contoso.com', 'a.*.b.contoso.com'],
    ['**x.*y*.contoso.com', '*.x.*.y.*.contoso.com'],
    ['contoso.com*', null],
    ['*contoso.*', null],
    ['*-x.contoso.com', null],
  ];
  for (const [raw, hint] of hints) {
    const e = normalizeFqdn(raw, true).error;
    t.match(e, /"\*" must be a whole label/, raw);
    if (hint === null) t.notMatch(e, /write/, `${raw}: no hint when no valid name is near`);
    else {
      t.ok(e?.endsWith(`(write "${hint}")`), `${raw}: ${e}`);
      t.equal(normalizeFqdn(hint, true).value, hint, `${hint} is accepted`);
    }
  }
  t.equal(
    normalizeFqdn('*contoso.com', false).error,
    '"*contoso.com": wildcards are not allowed here',
  );
});

t.test(
  'a policy without policyRules is an error naming the $expand; [] and null load',
  async (t) => {
    const d = doc({ ...dest('fqdn', { value: 'x.test' }) });
    delete d.forwardingProfiles[0].policies[1].policy.policyRules;
    const issues = issuesOf(d);
    t.equal(issues.length, 1, JSON.stringify(issues));
    t.equal(issues[0]?.path, 'forwardingProfiles[0].policies[1].policy.policyRules');
    t.match(
      issues[0]?.message,
      /is missing: fetch the profiles with \$expand=policies\(\$expand=policy\(\$expand=policyRules\)\)/,
    );
    // The same as a Graph list response saved with only policies($expand=policy).
    const list = {
      value: expandProfiles(
        doc({ ...dest('fqdn', { value: 'x.test' }) }) as GraphDocument,
        'policies($expand=policy)',
      ).value,
    };
    t.match(issuesOf(list)[0]?.path, /^value\[0\]\.policies\[0\]\.policy\.policyRules$/);
    t.same(
      issuesOf(doc({ ...dest('fqdn', { value: 'x.test' }) })),
      [],
      '[] is a policy without rules',
    );
    const n = doc({ ...dest('fqdn', { value: 'x.test' }) });
    n.forwardingProfiles[0].policies[0].policy.policyRules = null;
    t.same(issuesOf(n), [], 'null too');
  },
);

t.test("a rule's own clientFallbackAction wins over its profile's", async (t) => {
  const own = doc(
    { ...dest('fqdn', { value: 'd.test' }), clientFallbackAction: 'block' },
    'internet',
  );
  own.forwardingProfiles[0].clientFallbackAction = 'bypass';
  const tenant = loadTenant(own);
  const rules = tenant.profiles[0]!.policies[1]!.rules;
  t.equal(rules[3]!.fallback, 'block', 'read from the rule');
  t.equal(rules[0]!.fallback, undefined, 'a rule without one has none of its own');
  const c = compile(tenant, state());
  t.equal(c.decide(flow('d.test')).fallback, 'block', "the rule's");
  t.equal(c.decide(flow('a.test')).fallback, 'bypass', "the profile's");
  const bad = doc({ ...dest('fqdn', { value: 'd.test' }), clientFallbackAction: 'allow' });
  t.match(issuesOf(bad), [
    { path: `${R3}.clientFallbackAction`, message: /not one of bypass, block/ },
  ]);
});

t.test(
  'Private Access ruleType ipRangeCidr (gsa-facts section 1): ipSubnet destinations',
  async (t) => {
    const ok = loadTenant(
      doc({ ruleType: 'ipRangeCidr', ...dest('ipSubnet', { value: '10.20.0.0/16' }) }),
    );
    const r3 = ok.profiles[0]!.policies[1]!.rules[3]!;
    t.same(r3.destinations, [{ type: 'ipSubnet', value: '10.20.0.0/16' }]);
    const bad = issuesOf(doc({ ruleType: 'ipRangeCidr', ...dest('fqdn', { value: 'a.test' }) }));
    t.match(bad, [
      {
        path: `${R3}.destinations[0]`,
        message: /fqdn destination in a rule of ruleType ipRangeCidr/,
      },
    ]);
  },
);
