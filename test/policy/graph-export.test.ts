/**
 * Real Microsoft Graph beta exports (test/fixtures/graph-export/, synthetic ids and names,
 * shapes from the Graph docs and live captures: docs/decisions/policy-graph-exports.md) load
 * and classify as the tenant they describe; what would lose rules without a word (a page of
 * several, profiles without their policies) and Graph's placeholder enum value are refused
 * with a message that says what to do.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { explain } from '../../src/cli/commands/explain.js';
import { TenantStore } from '../../src/edge/tenant.js';
import { ConfigError } from '../../src/errors.js';
import {
  asGraphDocument,
  expandPolicy,
  expandProfiles,
  type GraphDocument,
  loadTenant,
} from '../../src/policy/graph.js';
import { loadTenantFile } from '../../src/policy/tenant-file.js';
import { parseTarget } from '../../src/util/target.js';
import { issuesOf, mutate } from './helpers.js';

const EXPAND = 'policies($expand=policy($expand=policyRules))';
const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'graph-export');
const LIST = join(FIXTURES, 'forwarding-profiles-expanded.json');
const ONE = join(FIXTURES, 'forwarding-profile-m365.json');

const dir = mkdtempSync(join(tmpdir(), 'gsa-graph-export-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: fixtures are mutated freely in the tests
type Json = any;
const read = (file: string): Json => JSON.parse(readFileSync(file, 'utf8'));

const decide = (tenant: string, target: string, o: { udp?: boolean; ip?: string } = {}) =>
  explain(parseTarget(target, { udp: o.udp === true }), {
    tenant,
    platform: 'windows',
    ...(o.ip ? { ip: o.ip } : {}),
  }).decision;

t.test(
  'GET forwardingProfiles?$expand=policies($expand=policy($expand=policyRules))',
  async (t) => {
    const { tenant } = loadTenantFile(LIST);
    t.same(
      tenant.profiles.map((p) => [p.type, p.priority, p.fallback, p.policies.length]),
      [
        ['m365', 100, 'bypass', 3],
        ['private', 200, 'block', 1],
        ['internet', 300, 'bypass', 3],
      ],
      'read-only and unknown properties (servicePrincipal, localNetworkSettings, ...) are ignored',
    );
    t.equal(tenant.profiles[0]!.policies[1]!.linkState, 'disabled');
    const priv = tenant.profiles[1]!.policies[0]!.rules;
    t.same(
      priv.map((r) => [r.protocols, r.ports]),
      [
        [[], []],
        [[], []],
        [[], []],
      ],
      'a Graph private rule has no ports or protocol: any port, any protocol',
    );
  },
);

t.test('the classifier decides an exported tenant as GSA would', async (t) => {
  t.match(decide(LIST, 'https://outlook.office365.com'), {
    action: 'tunnel',
    channel: 'm365',
    group: 'exchange',
    category: 'optimized',
    ruleId: '11111111-1111-4111-8111-111111111401',
  });
  t.match(decide(LIST, 'autodiscover.contoso.onmicrosoft.com'), {
    action: 'tunnel',
    matched: 'autodiscover.*.onmicrosoft.com',
    category: 'default',
  });
  t.match(
    decide(LIST, 'contoso.sharepoint.com', { ip: '203.0.113.9' }),
    { action: 'bypass', policyName: 'SharePoint Online and OneDrive for Business' },
    'its link is disabled: direct, and Internet Access does not pick it up',
  );
  t.match(decide(LIST, '52.112.1.1:3478', { udp: true }), {
    action: 'tunnel',
    channel: 'm365',
    group: 'common',
  });
  t.match(decide(LIST, 'app.corp.contoso.com:8080'), {
    action: 'tunnel',
    channel: 'private',
    policyName: 'Quick Access',
    fallback: 'block',
  });
  t.match(decide(LIST, '10.20.0.15:3389', { udp: true }), {
    action: 'tunnel',
    channel: 'private',
    matched: '10.20.0.10-10.20.0.20',
  });
  t.match(decide(LIST, 'payroll.contoso.com', { ip: '203.0.113.7' }), {
    action: 'bypass',
    policyName: 'Custom Bypass',
  });
  t.match(
    decide(LIST, 'media.contoso.com:8443', { udp: true }),
    { action: 'tunnel', channel: 'internet', policyName: 'Custom Acquire', fallback: 'block' },
    "the rule's own clientFallbackAction",
  );
  t.match(decide(LIST, 'www.fabrikam.com', { ip: '203.0.113.5' }), {
    action: 'tunnel',
    channel: 'internet',
    policyName: 'Default Acquire',
  });
});

t.test('GET forwardingProfiles/{id}: one profile entity at the root', async (t) => {
  const loaded = loadTenantFile(ONE);
  t.same(
    loaded.tenant.profiles.map((p) => p.type),
    ['m365'],
  );
  t.equal(
    loaded.tenant.profiles[0]!.policies[0]!.rules[0]!.path,
    'policies[0].policy.policyRules[0]',
  );
  t.match(decide(ONE, 'https://outlook.office365.com'), { action: 'tunnel', channel: 'm365' });
  t.match(decide(ONE, 'app.corp.contoso.com'), { action: 'bypass', channel: null });
  // The edge keeps and serves it as a one-profile list.
  const doc = loaded.document as GraphDocument & { value?: unknown[] };
  t.equal(doc.value?.length, 1);
  t.equal(expandProfiles(doc).value[0]!.trafficForwardingType, 'm365');
  const bad = read(ONE);
  bad.policies[0].policy.policyRules[0].ports = ['99999'];
  t.same(issuesOf(bad), [
    {
      path: 'policies[0].policy.policyRules[0].ports[0]',
      message: '"99999" is out of range (0-65535)',
    },
  ]);
  t.throws(() => loadTenant({ id: 'x', name: 'not a profile' }), {
    message: /one forwardingProfile \(with its trafficForwardingType\)/,
  });
});

t.test('one page of several is refused, naming @odata.nextLink', async (t) => {
  const next = 'https://graph.microsoft.com/beta/networkAccess/forwardingProfiles?$skiptoken=x';
  const list = read(LIST);
  list['@odata.nextLink'] = next;
  t.match(issuesOf(list), [{ path: '@odata.nextLink', message: /value has more pages/ }]);
  const rules = read(LIST);
  rules.value[0].policies[0].policy['policyRules@odata.nextLink'] = next;
  t.match(issuesOf(rules), [
    {
      path: 'value[0].policies[0].policy.policyRules@odata.nextLink',
      message: /policyRules has more pages: follow @odata.nextLink and merge/,
    },
  ]);
  const links = read(LIST);
  links.value[2]['policies@odata.nextLink'] = next;
  t.match(issuesOf(links), [{ path: 'value[2].policies@odata.nextLink' }]);
});

t.test('the nested collections are named, not read as profiles', async (t) => {
  // GET forwardingProfiles/{id}/policies?$expand=policy($expand=policyRules), as the
  // "List forwardingProfiles" page shows the nested $expand.
  const links = {
    '@odata.context':
      "https://graph.microsoft.com/beta/$metadata#networkAccess/forwardingProfiles('11111111-1111-4111-8111-111111111101')/policies",
    value: read(LIST).value[0].policies,
  };
  t.same(issuesOf(links), [
    {
      path: 'value',
      message:
        "this is a list of policy links (a profile's policies), not of forwarding profiles: export GET /networkAccess/forwardingProfiles?$expand=policies($expand=policy($expand=policyRules))",
    },
  ]);
  const noContext = { value: links.value };
  t.match(issuesOf(noContext), [{ path: 'value', message: /policy links/ }]);
  const rules = {
    '@odata.context':
      "https://graph.microsoft.com/beta/$metadata#networkAccess/forwardingPolicies('11111111-1111-4111-8111-111111111301')/policyRules",
    value: read(LIST).value[0].policies[0].policy.policyRules,
  };
  t.match(issuesOf(rules), [{ path: 'value', message: /a list of policy rules/ }]);
  const policies = {
    '@odata.context': 'https://graph.microsoft.com/beta/$metadata#networkAccess/forwardingPolicies',
    value: [read(LIST).value[0].policies[0].policy],
  };
  t.match(issuesOf(policies), [{ path: 'value', message: /a list of forwarding policies/ }]);
});

t.test('profiles listed without $expand are refused, not loaded without rules', async (t) => {
  const list = read(LIST);
  for (const p of list.value) delete p.policies;
  const issues = issuesOf(list);
  t.same(
    issues.map((i) => i.path),
    ['value[0].policies', 'value[1].policies', 'value[2].policies'],
  );
  t.match(issues[0]!.message, /\$expand=policies\(\$expand=policy\(\$expand=policyRules\)\)/);
  const empty = read(LIST);
  empty.value[1].policies = [];
  t.equal(loadTenant(empty).profiles[1]!.policies.length, 0, '"policies": [] is no policies');
});

t.test("Graph's evolvable enums: unknownFutureValue says how to export the value", async (t) => {
  const list = read(LIST);
  const rule = list.value[2].policies[1].policy.policyRules[0];
  rule.action = 'unknownFutureValue';
  rule.protocol = 'unknownFutureValue';
  list.value[1].state = 'unknownFutureValue';
  const issues = issuesOf(list);
  t.same(
    issues.map((i) => i.path),
    [
      'value[1].state',
      'value[2].policies[1].policy.policyRules[0].action',
      'value[2].policies[1].policy.policyRules[0].protocol',
    ],
  );
  for (const i of issues) t.match(i.message, /Prefer: include-unknown-enum-members/);
  const other = read(LIST);
  other.value[0].policies[0].policy.policyRules[0].protocol = 'ip';
  t.match(issuesOf(other), [
    { message: /"ip" is a Graph networkingProtocol that GSA forwarding rules do not use/ },
  ]);
});

t.test('the CLI validates both fixtures', async (t) => {
  // The files as written, through the same loader `gsa-emu profiles validate` uses.
  for (const f of [LIST, ONE]) t.doesNotThrow(() => loadTenantFile(f), f);
  const copy = join(dir, 'page.json');
  writeFileSync(copy, JSON.stringify({ ...read(LIST), '@odata.nextLink': 'https://x' }));
  t.throws(() => loadTenantFile(copy), { code: 'GSA_ERR_CONFIG', file: copy });
});

t.test('an edge given one profile entity serves its policies and PATCHes its links', async (t) => {
  // startEdge({ tenantDoc }) from code takes the entity as is (the CLI goes through
  // loadTenantFile): GET forwardingPolicies/{id} and its policyRules must find the policy.
  const one = read(ONE);
  const link = one.policies[0];
  const store = new TenantStore(one);
  t.equal(store.list().value.length, 1);
  t.equal(store.policy(link.policy.id)?.id, link.policy.id, 'GET forwardingPolicies/{id}');
  t.equal(
    store.policyRules(link.policy.id)?.length,
    link.policy.policyRules.length,
    'GET forwardingPolicies/{id}/policyRules',
  );
  const before = store.etag;
  t.equal(store.setLinkState(one.id, link.id, 'disabled'), true);
  t.not(store.etag, before);
  t.equal(store.spec.profiles[0]!.policies[0]!.linkState, 'disabled');
});

t.test('nested collections are named when the context URL nests $expand', async (t) => {
  // Graph leaves out @odata.type where an item is of the collection's declared type; the
  // context URL then names the collection, with `policyRules()` nested in the parentheses.
  const untyped = (items: Json[]): Json[] =>
    items.map((i) => {
      const c: Json = structuredClone(i);
      delete c['@odata.type'];
      return c;
    });
  const base = 'https://graph.microsoft.com/beta/$metadata#networkAccess/';
  const policies = {
    '@odata.context': `${base}forwardingPolicies(policyRules())`,
    value: untyped(read(LIST).value.map((p: Json) => p.policies[0].policy)),
  };
  t.match(issuesOf(policies), [{ path: 'value', message: /a list of forwarding policies/ }]);
  const links = {
    '@odata.context': `${base}forwardingProfiles('11111111-1111-4111-8111-111111111101')/policies(policy(policyRules()))`,
    value: untyped(read(LIST).value[0].policies),
  };
  t.match(issuesOf(links), [{ path: 'value', message: /a list of policy links/ }]);
  const served = read(LIST);
  served['@odata.context'] = `${base}forwardingProfiles(policies(policy(policyRules())))`;
  t.doesNotThrow(() => loadTenant(served), "the edge's own list response loads");
  // Linear in the context's length: an unclosed parenthesis is not rescanned to the end.
  const started = Date.now();
  t.same(issuesOf({ '@odata.context': `#${'('.repeat(400_000)}`, value: [] }), []);
  t.ok(Date.now() - started < 5000, `a 400 kB context took ${Date.now() - started} ms`);
});

t.test(
  'one forwarding policy (GET forwardingPolicies/{id}) is named, not read as a profile',
  async (t) => {
    // It carries a trafficForwardingType too; Graph leaves out its @odata.type (the entity
    // set's own type).
    const policy = read(LIST).value[0].policies[0].policy;
    delete policy['@odata.type'];
    const message = `this is one forwarding policy, not a forwarding profile: export GET /networkAccess/forwardingProfiles?$expand=${EXPAND}`;
    t.same(
      issuesOf(expandPolicy(policy, 'policyRules')),
      [{ path: '', message }],
      'as the edge serves it',
    );
    t.same(issuesOf(expandPolicy(policy)), [{ path: '', message }], 'without its rules');
    const { '@odata.context': _, ...bare } = expandPolicy(policy, 'policyRules');
    t.same(issuesOf(bare), [{ path: '', message }], 'no context: its policyRules say it');
    t.doesNotThrow(() => loadTenant(read(ONE)), 'a profile entity still loads');
  },
);

t.test('fuzz: the export shapes -> TenantSpec or ConfigError, nothing else', async (t) => {
  // loadTenant never throws anything else; what loads, the edge serves with every profile.
  let loaded = 0;
  const check = (v: unknown): boolean => {
    try {
      const spec = loadTenant(v);
      loaded++;
      const served = expandProfiles(asGraphDocument(v) as GraphDocument, 'policies');
      return served.value.length === spec.profiles.length;
    } catch (e) {
      return e instanceof ConfigError && e.issues.length > 0;
    }
  };
  const context = fc
    .array(
      fc.constantFrom(
        '#networkAccess/',
        'forwardingProfiles',
        'forwardingPolicies',
        '/policies',
        '/policyRules',
        '(',
        ')',
        "('x')",
        '/$entity',
      ),
      { maxLength: 8 },
    )
    .map((parts) => `https://graph.microsoft.com/beta/$metadata${parts.join('')}`);
  const odataType = fc.constantFrom(
    ...['forwardingPolicyLink', 'policyLink', 'forwardingPolicy', 'm365ForwardingRule', 'x'].map(
      (n) => `${NS_TYPE}${n}`,
    ),
  );
  const item = fc.oneof(
    fc.jsonValue(),
    fc.dictionary(
      fc.constantFrom('@odata.type', 'trafficForwardingType', 'policies', 'id', '__proto__'),
      fc.oneof(odataType, fc.constantFrom('m365', 'private', 'internet'), fc.jsonValue()),
    ),
  );
  const doc = fc.dictionary(
    fc.constantFrom(
      '@odata.context',
      '@odata.nextLink',
      'value',
      'trafficForwardingType',
      'policies',
      'policies@odata.nextLink',
      'id',
      'name',
      '__proto__',
      'constructor',
    ),
    fc.oneof(
      context,
      fc.array(item, { maxLength: 3 }),
      fc.constantFrom('m365', 'private'),
      fc.jsonValue(),
    ),
  );
  fc.assert(fc.property(doc, check), { numRuns: 1000 });
  // The real exports with one property of a profile, link, policy or rule replaced.
  const paths = fc.array(fc.nat(), { minLength: 1, maxLength: 8 });
  for (const base of [read(LIST), read(ONE)]) {
    fc.assert(
      fc.property(paths, fc.oneof(fc.jsonValue(), context, odataType), (pick, v) =>
        check(mutate(base, pick, v)),
      ),
      { numRuns: 500 },
    );
  }
  t.ok(loaded > 0, `${loaded} loaded`);
});

const NS_TYPE = '#microsoft.graph.networkaccess.';
