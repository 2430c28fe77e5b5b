/**
 * The "Forwarding profile" tab (`GET /profile`, `profileView`) and `gsa-emu profiles show`
 * (`formatProfiles`): a rule's hardening is its own `clientFallbackAction` when it has one,
 * else its profile's (gsa-facts section 1: each profile/rule carries one), as the
 * classifier applies it.
 */
import t from 'tap';
import { compile, newFlow } from '../../src/classify/index.js';
import { formatProfiles } from '../../src/cli/commands/profiles.js';
import { profileView } from '../../src/client/diagnostics.js';
import { loadTenant } from '../../src/policy/graph.js';
import { loadPlatform } from '../../src/policy/platform.js';
import { parseIPv4 } from '../../src/util/ip.js';

const NS = '#microsoft.graph.networkaccess.';

function tenant() {
  return loadTenant({
    tenantId: '11111111-2222-3333-4444-555555555555',
    name: 'hardening',
    forwardingProfiles: [
      {
        id: 'prof-ia',
        name: 'Internet',
        trafficForwardingType: 'internet',
        clientFallbackAction: 'bypass',
        policies: [
          {
            id: 'link-ca',
            policy: {
              id: 'pol-ca',
              name: 'Custom Acquire',
              policyRules: [
                {
                  '@odata.type': `${NS}internetAccessForwardingRule`,
                  id: 'rule-own',
                  name: 'own block',
                  action: 'forward',
                  clientFallbackAction: 'block',
                  ports: ['443'],
                  destinations: [{ '@odata.type': `${NS}fqdn`, value: 'strict.example.test' }],
                },
                {
                  '@odata.type': `${NS}internetAccessForwardingRule`,
                  id: 'rule-profile',
                  name: 'profile default',
                  action: 'forward',
                  ports: ['443'],
                  destinations: [{ '@odata.type': `${NS}ipSubnet`, value: '0.0.0.0/0' }],
                },
              ],
            },
          },
        ],
      },
    ],
  });
}

t.test('profileView: a rule with its own clientFallbackAction shows it', async (t) => {
  const view = profileView(tenant());
  const [p] = view.profiles;
  t.equal(p?.hardening, 'bypass', 'the profile row: the profile fallback');
  const byRule = Object.fromEntries(p!.rules.map((r) => [r.ruleId, r.hardening]));
  t.same(byRule, { 'rule-own': 'block', 'rule-profile': 'bypass' });

  // The classifier applies the same fallback: the tab shows what happens.
  const c = compile(tenant(), {
    channels: { m365: true, private: true, internet: true },
    platform: loadPlatform('ios'),
  });
  const flow = newFlow();
  Object.assign(flow, { family: 4, ip4: parseIPv4('1.2.3.4'), host: 'strict.example.test' });
  Object.assign(flow, { port: 443, proto: 6 });
  const d = c.decide(flow);
  t.match(d, { ruleId: 'rule-own', fallback: 'block' });
});

t.test('profiles show names a rule fallback that differs from its profile', async (t) => {
  const text = formatProfiles(tenant());
  t.match(text, /\(own block, id rule-own, hardening block\)/);
  t.match(text, /\(profile default, id rule-profile\)$/m, 'the profile fallback is not repeated');
});
