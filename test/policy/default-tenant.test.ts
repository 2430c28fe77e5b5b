import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  DEFAULT_TENANT_ID,
  defaultTenantDocument,
  defaultTenantFile,
  loadDefaultTenant,
} from '../../src/policy/default-tenant.js';
import { loadTenant } from '../../src/policy/graph.js';
import type { ProfileSpec, RuleSpec } from '../../src/policy/model.js';

const tenant = loadDefaultTenant();
const byType = (type: string): ProfileSpec => {
  const p = tenant.profiles.find((x) => x.type === type);
  if (!p) throw new Error(`no ${type} profile`);
  return p;
};
const rulesOf = (p: ProfileSpec): RuleSpec[] => p.policies.flatMap((q) => q.rules);
const values = (rules: RuleSpec[]): string[] =>
  rules.flatMap((r) =>
    r.destinations.map((d) => (d.type === 'ipRange' ? `${d.begin}-${d.end}` : d.value)),
  );

t.test('tenant identity and profile order', async (t) => {
  t.equal(tenant.tenantId, DEFAULT_TENANT_ID);
  t.equal(tenant.name, 'Contoso (gsa-emu default tenant)');
  t.same(
    tenant.profiles.map((p) => [p.type, p.priority, p.fallback, p.state]),
    [
      ['m365', 100, 'bypass', 'enabled'],
      ['private', 200, 'block', 'enabled'],
      ['internet', 300, 'bypass', 'enabled'],
    ],
  );
  t.equal(byType('private').name, 'Private access profile');
});

t.test('Microsoft 365 profile: groups and endpoint data', async (t) => {
  const m = byType('m365');
  t.same(
    m.policies.map((p) => [p.name, p.group]),
    [
      ['Exchange Online', 'exchange'],
      ['SharePoint Online and OneDrive', 'sharepoint'],
      ['Microsoft 365 Common and Office Online', 'common'],
    ],
  );
  const exo = m.policies[0]!.rules;
  t.ok(exo.every((r) => r.action === 'forward'));
  t.ok(exo.some((r) => r.name === 'M365 Exchange Fqdn rule 1'));
  const exoValues = values(exo);
  for (const v of [
    'outlook.cloud.microsoft',
    'outlook.office.com',
    'outlook.office365.com',
    'autodiscover.*.onmicrosoft.com',
    '40.96.0.0/13',
    '132.245.0.0/16',
    '204.79.197.215/32',
    '2603:1006::/40',
    '2620:1ec:a92::153/128',
  ]) {
    t.ok(exoValues.includes(v), v);
  }
  // EXO: TCP 80/443 and UDP 443 on the same destinations.
  const udp = exo.filter((r) => r.protocols.includes('udp'));
  t.ok(udp.length > 0);
  t.ok(
    udp.every((r) => r.ports.length === 1 && r.ports[0]!.from === 443 && r.ports[0]!.to === 443),
  );
  t.ok(values(udp).includes('40.96.0.0/13'));
  t.ok(values(udp).includes('outlook.office365.com'));

  const spo = values(m.policies[1]!.rules);
  for (const v of ['*.sharepoint.com', '13.107.136.0/22', '150.171.40.0/22'])
    t.ok(spo.includes(v), v);

  const common = m.policies[2]!.rules;
  const media = common.find((r) => values([r]).includes('52.112.0.0/14'))!;
  t.same(media.protocols, ['udp']);
  t.same(media.ports, [{ from: 3478, to: 3481 }]);
  for (const v of [
    '20.190.128.0/18',
    '40.126.0.0/18',
    'login.microsoftonline.com',
    'graph.microsoft.com',
    '*.teams.microsoft.com',
    'www.office.com',
  ]) {
    t.ok(values(common).includes(v), v);
  }
  t.ok(rulesOf(m).every((r) => ['default', 'optimized', 'allow'].includes(r.category!)));
});

t.test('Internet Access profile: five policies in GSA order', async (t) => {
  const i = byType('internet');
  t.same(
    i.policies.map((p) => p.kind),
    ['customBypass', 'defaultBypass', 'microsoftBypass', 'customAcquire', 'defaultAcquire'],
  );
  const [custom, dflt, ms, acquire, dAcquire] = i.policies;
  t.same(values(custom!.rules), ['bypass.example.test']);
  t.equal(custom!.rules[0]!.action, 'bypass');
  const bypass = values(dflt!.rules);
  t.equal(bypass.length, 20);
  for (const v of [
    '10.0.0.0/8',
    '127.0.0.0/8',
    '168.63.129.16/32',
    '224.0.0.0/4',
    '255.255.255.255/32',
  ]) {
    t.ok(bypass.includes(v), v);
  }
  t.ok(dflt!.rules.every((r) => r.action === 'bypass'));
  t.same(dflt!.rules[0]!.protocols, ['tcp', 'udp']);
  t.equal(ms!.rules.length, 0);
  t.same(values(acquire!.rules), ['*.acquire.example.test', 'example.test', '*.example.test']);
  t.same(acquire!.rules[1]!.ports, [
    { from: 80, to: 80 },
    { from: 443, to: 443 },
  ]);
  t.same(acquire!.rules[0]!.ports, [{ from: 8080, to: 8080 }]);
  t.same(values(dAcquire!.rules), ['0.0.0.0/0']);
  t.same(dAcquire!.rules[0]!.ports, [
    { from: 80, to: 80 },
    { from: 443, to: 443 },
  ]);
  t.same(dAcquire!.rules[0]!.protocols, ['tcp']);
  // Demo internet names are reserved .test names, never real ones.
  for (const v of values(rulesOf(i))) t.notOk(/[a-z]/.test(v) && !v.endsWith('.test'), v);
});

t.test('Private Access profile: Quick Access and apps', async (t) => {
  const p = byType('private');
  t.equal(p.fallback, 'block');
  t.equal(p.policies[0]!.name, 'Quick Access');
  const rules = rulesOf(p);
  t.ok(rules.every((r) => typeof r.appId === 'string' && r.appId.length === 36));
  const kinds = new Set(rules.flatMap((r) => r.destinations.map((d) => d.type)));
  t.same([...kinds].sort(), ['dnsSuffix', 'fqdn', 'ipRange', 'ipSubnet']);
  const qa = p.policies[0]!.rules[0]!;
  t.same(qa.ports, [
    { from: 80, to: 80 },
    { from: 443, to: 443 },
    { from: 8000, to: 8999 },
  ]);
  const rdp = rules.filter((r) => values([r]).includes('127.77.0.0/16'));
  t.same(rdp.map((r) => r.protocols[0]).sort(), ['tcp', 'udp']);
  const echo = rules.find((r) => values([r]).includes('udp-echo.contoso.test'))!;
  t.same(echo.protocols, ['udp']);
  t.same(echo.ports, [{ from: 7000, to: 7010 }]);
  const share = rules.find((r) => r.destinations[0]!.type === 'dnsSuffix')!;
  t.equal(
    share.destinations[0]!.type === 'dnsSuffix' && share.destinations[0]!.value,
    'corp.contoso.test',
  );
  for (const v of values(rules)) t.ok(v.endsWith('.test') || v.startsWith('127.'), v);
});

t.test('ids are unique GUIDs; the document is a fresh copy each time', async (t) => {
  const text = readFileSync(defaultTenantFile(), 'utf8');
  const ids = [...text.matchAll(/"id": "([^"]+)"/g)].map((m) => m[1]!);
  t.equal(new Set(ids).size, ids.length);
  t.ok(
    ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)),
  );
  const a = defaultTenantDocument();
  a.forwardingProfiles.pop();
  t.equal(defaultTenantDocument().forwardingProfiles.length, 3);
  t.same(loadTenant(defaultTenantDocument()), tenant);
  t.ok(
    tenant.profiles.every((p) =>
      p.policies.every((q) => q.rules.every((r) => r.path.startsWith('forwardingProfiles['))),
    ),
  );
});

t.test('endpoint data is exactly gsa-facts section 8, per rule, ports and protocols', async (t) => {
  const m = byType('m365');
  const rule = (name: string): RuleSpec => {
    const r = rulesOf(m).find((x) => x.name === name);
    if (!r) throw new Error(`no rule ${name}`);
    return r;
  };
  const shape = (r: RuleSpec) => ({
    protocols: r.protocols,
    ports: r.ports.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`)),
    category: r.category,
  });
  const exo4 = [
    '13.107.6.152/31',
    '13.107.18.10/31',
    '13.107.128.0/22',
    '23.103.160.0/20',
    '40.96.0.0/13',
    '40.104.0.0/15',
    '52.96.0.0/14',
    '131.253.33.215/32',
    '132.245.0.0/16',
    '150.171.32.0/22',
    '204.79.197.215/32',
  ];
  const exo6 = [
    '2603:1006::/40',
    '2603:1016::/36',
    '2603:1026::/36',
    '2603:1036::/36',
    '2603:1046::/36',
    '2603:1056::/36',
    '2620:1ec:4::152/128',
    '2620:1ec:4::153/128',
    '2620:1ec:c::10/128',
    '2620:1ec:c::11/128',
    '2620:1ec:d::10/128',
    '2620:1ec:d::11/128',
    '2620:1ec:8f0::/46',
    '2620:1ec:900::/46',
    '2620:1ec:a92::152/128',
    '2620:1ec:a92::153/128',
  ];
  const exoNames = ['outlook.cloud.microsoft', 'outlook.office.com', 'outlook.office365.com'];
  const tcp = { protocols: ['tcp'], ports: ['80', '443'], category: 'optimized' };
  const udp = { protocols: ['udp'], ports: ['443'], category: 'optimized' };
  // Exchange Online, id 1, Optimize: TCP 443, 80; UDP 443.
  t.same(values([rule('M365 Exchange Fqdn rule 1')]), exoNames);
  t.same(shape(rule('M365 Exchange Fqdn rule 1')), tcp);
  t.same(values([rule('M365 Exchange Fqdn rule 3')]), exoNames);
  t.same(shape(rule('M365 Exchange Fqdn rule 3')), udp);
  t.same(values([rule('M365 Exchange IPSubnet rule 1')]), exo4);
  t.same(shape(rule('M365 Exchange IPSubnet rule 1')), tcp);
  t.same(values([rule('M365 Exchange IPSubnet rule 2')]), exo6);
  t.same(shape(rule('M365 Exchange IPSubnet rule 2')), tcp);
  t.same(values([rule('M365 Exchange IPSubnet rule 3')]), [...exo4, ...exo6]);
  t.same(shape(rule('M365 Exchange IPSubnet rule 3')), udp);
  // SharePoint, id 31, Optimize: TCP 443, 80; UDP 443.
  const spo4 = [
    '13.107.136.0/22',
    '40.108.128.0/17',
    '52.104.0.0/14',
    '104.146.128.0/17',
    '150.171.40.0/22',
  ];
  t.same(values([rule('M365 SharePoint Fqdn rule 1')]), ['*.sharepoint.com']);
  t.same(shape(rule('M365 SharePoint Fqdn rule 1')), tcp);
  t.same(values([rule('M365 SharePoint Fqdn rule 2')]), ['*.sharepoint.com']);
  t.same(shape(rule('M365 SharePoint Fqdn rule 2')), udp);
  t.same(values([rule('M365 SharePoint IPSubnet rule 1')]), spo4);
  t.same(shape(rule('M365 SharePoint IPSubnet rule 1')), tcp);
  t.same(values([rule('M365 SharePoint IPSubnet rule 2')]), spo4);
  t.same(shape(rule('M365 SharePoint IPSubnet rule 2')), udp);
  // Teams media, id 11: UDP 3478-3481.
  t.same(values([rule('M365 Common IPSubnet rule 1')]), [
    '52.112.0.0/14',
    '52.122.0.0/15',
    '2603:1063::/38',
  ]);
  t.same(shape(rule('M365 Common IPSubnet rule 1')), {
    protocols: ['udp'],
    ports: ['3478-3481'],
    category: 'optimized',
  });
  // Other ranges the Microsoft profile acquires (Entra ID / Graph among them).
  t.same(values([rule('M365 Common IPSubnet rule 2')]), [
    '52.238.78.88/32',
    '104.47.0.0/17',
    '52.100.0.0/14',
    '40.107.0.0/16',
    '40.92.0.0/15',
    '40.126.0.0/18',
    '20.231.128.0/19',
    '20.190.128.0/18',
    '20.20.32.0/19',
  ]);
  // The Default Bypass list, in the facts' order (section 1).
  const ia = byType('internet').policies.find((q) => q.kind === 'defaultBypass')!;
  t.same(values(ia.rules), [
    '0.0.0.0/8',
    '10.0.0.0/8',
    '100.64.0.0/10',
    '127.0.0.0/8',
    '169.254.0.0/16',
    '172.16.0.0/12',
    '192.0.0.0/24',
    '192.0.2.0/24',
    '192.31.196.0/24',
    '192.52.193.0/24',
    '192.88.99.0/24',
    '192.168.0.0/16',
    '192.175.48.0/24',
    '198.18.0.0/15',
    '198.51.100.0/24',
    '203.0.113.0/24',
    '240.0.0.0/4',
    '255.255.255.255/32',
    '168.63.129.16/32',
    '224.0.0.0/4',
  ]);
});
