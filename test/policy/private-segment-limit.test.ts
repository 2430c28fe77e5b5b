/**
 * Private Access allows up to 500 application segments (gsa-facts section 2), counted per
 * application: the rule's appId, else its policy (docs/decisions/policy-private-segments.md).
 */
import t from 'tap';
import { MAX_SEGMENTS_PER_APP } from '../../src/policy/graph.js';
import { issuesOf } from './helpers.js';

const NS = '#microsoft.graph.networkaccess.';
// biome-ignore lint/suspicious/noExplicitAny: test documents are built freely
type J = Record<string, any>;

/** `n` distinct ipAddress destinations, 10.<k>.x.y. */
function addresses(n: number, k: number): J[] {
  return Array.from({ length: n }, (_, i) => ({
    '@odata.type': `${NS}ipAddress`,
    value: `10.${k}.${Math.floor(i / 256)}.${i % 256}`,
  }));
}

let ids = 0;
function rule(destinations: J[], appId?: string, kind = 'privateAccessForwardingRule'): J {
  ids++;
  return {
    '@odata.type': NS + kind,
    id: `r${ids}`,
    name: `Segment ${ids}`,
    action: 'forward',
    ruleType: 'ipAddress',
    destinations,
    ...(appId === undefined ? {} : { appId }),
  };
}

function link(id: string, name: string, rules: J[]): J {
  return { id: `l-${id}`, state: 'enabled', policy: { id, name, policyRules: rules } };
}

function tenant(type: string, links: J[]): J {
  return {
    tenantId: 't1',
    name: 'Segments',
    forwardingProfiles: [{ id: 'p', name: 'P', trafficForwardingType: type, policies: links }],
  };
}

t.equal(MAX_SEGMENTS_PER_APP, 500);

t.test('500 segments in one application load, across rules and policies', async (t) => {
  const doc = tenant('private', [
    link('q1', 'Contoso RDP', [rule(addresses(300, 1), 'app-rdp')]),
    link('q2', 'Contoso RDP (more)', [rule(addresses(200, 2), 'app-rdp')]),
    // Another application's 500 do not add up with the first's: the limit is per application.
    link('q3', 'Contoso files', [
      rule(addresses(250, 3), 'app-files'),
      rule(addresses(250, 4), 'app-files'),
    ]),
    // Without appIds each policy is an application (a Graph export carries none).
    link('q4', 'Quick Access', [rule(addresses(500, 5))]),
  ]);
  t.same(issuesOf(doc), []);
});

t.test('501 segments in one application are refused at the 501st', async (t) => {
  const doc = tenant('private', [
    link('q1', 'Contoso RDP', [rule(addresses(300, 1), 'app-rdp')]),
    link('q2', 'Contoso RDP (more)', [rule(addresses(201, 2), 'app-rdp')]),
  ]);
  t.same(issuesOf(doc), [
    {
      path: 'forwardingProfiles[0].policies[1].policy.policyRules[0].destinations[200]',
      message:
        'application app-rdp ("Contoso RDP") has 501 segments; Private Access allows up to 500 per application (this is segment 501)',
    },
  ]);
});

t.test('rules without an appId count per policy', async (t) => {
  const doc = tenant('private', [
    link('q1', 'Quick Access', [rule(addresses(400, 1)), rule(addresses(150, 2))]),
  ]);
  t.same(issuesOf(doc), [
    {
      path: 'forwardingProfiles[0].policies[0].policy.policyRules[1].destinations[100]',
      message:
        'application "Quick Access" (policy q1, no appId) has 550 segments; Private Access allows up to 500 per application (this is segment 501)',
    },
  ]);
});

t.test('Internet Access and Microsoft 365 rules have no segment limit', async (t) => {
  const doc = tenant('internet', [
    link('q1', 'Custom Bypass', [
      rule(addresses(501, 1), undefined, 'internetAccessForwardingRule'),
    ]),
  ]);
  t.same(issuesOf(doc), []);
});
