/** Profile precedence, exclusivity, bypass-before-acquire, QUIC and IPv6, checked on the compiled classifier and the oracle alike. */
import t from 'tap';
import {
  ClassifierHandle,
  compile,
  OracleClassifier,
  REASON_DISABLED,
  REASON_IPV6,
  REASON_NO_MATCH,
} from '../../src/classify/index.js';
import type { Decision, Flow } from '../../src/classify/types.js';
import type { ClientState, TenantSpec } from '../../src/policy/model.js';
import {
  flow,
  IOS,
  PLAIN,
  policy,
  profile,
  rule,
  state,
  summary,
  tenant,
  WINDOWS,
} from './helpers.js';

interface Opts {
  exoLink?: 'enabled' | 'disabled';
  m365?: 'enabled' | 'disabled';
  private?: 'enabled' | 'disabled';
}

function contoso(o: Opts = {}): TenantSpec {
  return tenant([
    // Deliberately listed last: evaluation order is by type, not list order or priority.
    profile('internet', [
      policy(
        'Custom Acquire',
        [
          rule(['*.example.test'], { id: 'ia-ca', protocols: ['tcp'], ports: ['80', '443'] }),
          rule(['quic.example.test'], { id: 'ia-ca-udp', protocols: ['udp'], ports: ['443'] }),
          rule(['*.office365.com'], { id: 'ia-ca-m365', protocols: ['tcp'], ports: ['443'] }),
        ],
        { kind: 'customAcquire' },
      ),
      policy(
        'Custom Bypass',
        [
          rule(['bypass.example.test'], {
            id: 'ia-cb',
            action: 'bypass',
            protocols: ['tcp'],
            ports: ['80', '443'],
          }),
        ],
        { kind: 'customBypass' },
      ),
      policy(
        'Default Bypass',
        [rule(['10.0.0.0/8', '192.168.0.0/16'], { id: 'ia-db', action: 'bypass' })],
        { kind: 'defaultBypass' },
      ),
      policy(
        'Default Acquire',
        [rule(['0.0.0.0/0'], { id: 'ia-da', protocols: ['tcp'], ports: ['80', '443'] })],
        { kind: 'defaultAcquire' },
      ),
    ]),
    profile(
      'private',
      [
        policy('Quick Access', [
          rule(['*.contoso.test', 'suffix:corp.contoso.test'], {
            id: 'pa-qa',
            protocols: ['tcp'],
            ports: ['80', '443', '8000-8999'],
            appId: 'app-qa',
          }),
          rule(['10.1.0.0/16'], { id: 'pa-rdp', protocols: ['udp'], ports: ['3389'] }),
          rule(['10.1.0.0/16'], { id: 'pa-ip', protocols: ['tcp'], ports: ['443'] }),
        ]),
      ],
      { state: o.private ?? 'enabled' },
    ),
    profile(
      'm365',
      [
        policy(
          'Exchange Online',
          [
            rule(['outlook.office365.com', 'autodiscover.*.onmicrosoft.com'], {
              id: 'm-exo',
              name: 'M365 Exchange Fqdn rule 1',
              protocols: ['tcp'],
              ports: ['80', '443'],
              category: 'optimized',
            }),
            rule(['outlook.office365.com'], {
              id: 'm-exo-udp',
              protocols: ['udp'],
              ports: ['443'],
            }),
            rule(['40.96.0.0/13', '2603:1006::/40'], {
              id: 'm-exo-ip',
              protocols: ['tcp'],
              ports: ['80', '443'],
            }),
          ],
          { group: 'exchange', linkState: o.exoLink ?? 'enabled' },
        ),
        policy(
          'SharePoint Online and OneDrive',
          [
            rule(['*.sharepoint.com'], { id: 'm-spo', protocols: ['tcp'], ports: ['80', '443'] }),
            rule(['*.sharepoint.com'], {
              id: 'm-spo-udp',
              name: 'M365 SharePoint Fqdn rule 2',
              protocols: ['udp'],
              ports: ['443'],
            }),
          ],
          { group: 'sharepoint' },
        ),
        policy(
          'Microsoft 365 Common and Office Online',
          [
            rule(['20.190.128.0/18', 'login.microsoftonline.com'], {
              id: 'm-entra',
              protocols: ['tcp'],
              ports: ['443'],
            }),
            rule(['direct.office.com'], { id: 'm-bypass', action: 'bypass' }),
          ],
          { group: 'common' },
        ),
      ],
      { state: o.m365 ?? 'enabled' },
    ),
  ]);
}

type Asserts = { equal: (found: string, wanted: string, msg: string) => unknown };

/** Decide with the compiled classifier; fail the test if the oracle disagrees. */
function decider(t: Asserts, spec: TenantSpec, st: ClientState) {
  const c = compile(spec, st);
  const o = new OracleClassifier(spec, st);
  return (f: Flow): Decision => {
    const d = c.decide(f);
    t.equal(summary(d), summary(o.decide(f)), 'oracle agrees');
    return d;
  };
}

t.test('Microsoft profile acquires M365 names and ranges', async (t) => {
  const decide = decider(t, contoso(), state(PLAIN));
  const exo = decide(flow('outlook.office365.com'));
  t.match(exo, {
    action: 'tunnel',
    channel: 'm365',
    ruleId: 'm-exo',
    ruleName: 'M365 Exchange Fqdn rule 1',
    policyName: 'Exchange Online',
    profileId: 'prof-m365',
    matched: 'outlook.office365.com',
    group: 'exchange',
    category: 'optimized',
    fallback: 'bypass',
  });
  t.ok(Object.isFrozen(exo));
  t.match(decide(flow('autodiscover.contoso.onmicrosoft.com')), {
    ruleId: 'm-exo',
    matched: 'autodiscover.*.onmicrosoft.com',
  });
  t.match(decide(flow('x.sharepoint.com')), {
    action: 'tunnel',
    ruleId: 'm-spo',
    group: 'sharepoint',
  });
  t.match(decide(flow('40.96.0.1')), {
    channel: 'm365',
    ruleId: 'm-exo-ip',
    matched: '40.96.0.0/13',
  });
  t.match(decide(flow('20.190.130.5')), { channel: 'm365', ruleId: 'm-entra' });
  t.match(decide(flow('2603:1006::1')), { channel: 'm365', matched: '2603:1006::/40' });
  t.match(decide(flow('direct.office.com')), {
    action: 'bypass',
    channel: null,
    ruleId: 'm-bypass',
  });
  t.match(decide(flow('OUTLOOK.OFFICE365.COM')), { ruleId: 'm-exo' }, 'host case does not matter');
  // Name rule and IP rule of one flow: the earlier rule wins whatever its type.
  t.match(decide(flow('20.190.130.5', 443, 'tcp', 'outlook.office365.com')), { ruleId: 'm-exo' });
  t.match(decide(flow('40.96.0.1', 443, 'tcp', 'login.microsoftonline.com')), {
    ruleId: 'm-exo-ip',
  });
});

t.test('M365 exclusivity: Internet Access never acquires Microsoft traffic', async (t) => {
  let decide = decider(t, contoso({ exoLink: 'disabled' }), state(PLAIN));
  const d = decide(flow('outlook.office365.com'));
  t.match(d, { action: 'bypass', channel: null, ruleId: 'm-exo', profileId: 'prof-m365' });
  t.match(d.reason, /policy "Exchange Online" is disabled; Internet Access never acquires it/);
  t.match(
    decide(flow('40.96.0.1')),
    { action: 'bypass', ruleId: 'm-exo-ip' },
    'not default acquire',
  );
  t.match(
    decide(flow('x.sharepoint.com')),
    { action: 'tunnel', ruleId: 'm-spo' },
    'other groups still on',
  );
  t.match(decide(flow('8.8.8.8')), { action: 'tunnel', channel: 'internet', ruleId: 'ia-da' });

  decide = decider(t, contoso(), state(PLAIN, { m365: false }));
  t.match(decide(flow('outlook.office365.com')).reason, /Microsoft 365 channel is off/);
  t.match(decide(flow('x.office365.com')), { channel: 'internet', ruleId: 'ia-ca-m365' });

  decide = decider(t, contoso({ m365: 'disabled' }), state(PLAIN));
  t.match(decide(flow('x.sharepoint.com')).reason, /Microsoft profile is disabled/);
  t.match(decide(flow('20.190.130.5')), { action: 'bypass', ruleId: 'm-entra' });
  t.match(
    decide(flow('20.190.130.5', 80)),
    { action: 'tunnel', ruleId: 'ia-da' },
    'a port no M365 rule names is not Microsoft traffic',
  );
});

t.test(
  'Internet Access: bypass rules before acquire rules, whatever the policy order',
  async (t) => {
    const decide = decider(t, contoso(), state(PLAIN));
    t.match(decide(flow('bypass.example.test')), { action: 'bypass', ruleId: 'ia-cb' });
    t.match(decide(flow('1.2.3.4', 443, 'tcp', 'bypass.example.test')), { ruleId: 'ia-cb' });
    t.match(decide(flow('other.example.test')), {
      action: 'tunnel',
      channel: 'internet',
      ruleId: 'ia-ca',
    });
    t.match(decide(flow('192.168.1.10', 443)), { action: 'bypass', ruleId: 'ia-db' });
    t.match(decide(flow('8.8.8.8', 443)), {
      action: 'tunnel',
      ruleId: 'ia-da',
      matched: '0.0.0.0/0',
    });
    const none = decide(flow('8.8.8.8', 22));
    t.match(none, { action: 'bypass', channel: null, ruleId: null, reason: REASON_NO_MATCH });
  },
);

t.test(
  'Private Access before Internet Access; disabled profile or channel falls through',
  async (t) => {
    let decide = decider(t, contoso(), state(PLAIN));
    t.match(decide(flow('10.1.2.3', 3389, 'udp')), {
      action: 'tunnel',
      channel: 'private',
      ruleId: 'pa-rdp',
      fallback: 'block',
    });
    t.match(decide(flow('10.1.2.3', 22)), { action: 'bypass', ruleId: 'ia-db' });
    t.match(decide(flow('fs.corp.contoso.test', 8443)), {
      channel: 'private',
      matched: '*.contoso.test',
      appId: 'app-qa',
    });
    t.match(decide(flow('app.contoso.test', 443)), { matched: '*.contoso.test' });
    t.match(decide(flow('10.1.2.3', 443, 'tcp', 'app.contoso.test')), { ruleId: 'pa-qa' });
    decide = decider(t, contoso({ private: 'disabled' }), state(PLAIN));
    t.match(decide(flow('10.1.2.3', 3389, 'udp')), { action: 'bypass', ruleId: 'ia-db' });
    decide = decider(t, contoso(), state(PLAIN, { private: false }));
    t.match(decide(flow('10.1.2.3', 3389, 'udp')), { action: 'bypass', ruleId: 'ia-db' });
    t.match(decide(flow('app.contoso.test', 443)), {
      action: 'bypass',
      channel: null,
      ruleId: null,
      reason:
        'the Private Access channel is off, so Private Access rule "pa-qa" does not tunnel it (goes direct)',
    });
  },
);

t.test('GSA disabled, IPv6 not acquired', async (t) => {
  let decide = decider(
    t,
    contoso(),
    state(PLAIN, { m365: false, private: false, internet: false }),
  );
  t.match(decide(flow('outlook.office365.com')), { action: 'bypass', reason: REASON_DISABLED });
  decide = decider(t, contoso(), state(IOS));
  t.match(decide(flow('2603:1006::1')), { action: 'bypass', channel: null, reason: REASON_IPV6 });
  t.match(decide(flow('2603:1006::1', 443, 'tcp', 'outlook.office365.com')), {
    reason: REASON_IPV6,
  });
  t.match(decide(flow('40.96.0.1')), { channel: 'm365' });
});

t.test('QUIC on iOS: only Exchange Online is tunneled, the rest is dropped', async (t) => {
  const decide = decider(t, contoso(), state(IOS));
  t.match(decide(flow('outlook.office365.com', 443, 'udp')), {
    action: 'tunnel',
    channel: 'm365',
    ruleId: 'm-exo-udp',
  });
  const spo = decide(flow('x.sharepoint.com', 443, 'udp'));
  t.match(spo, { action: 'drop', channel: null, ruleId: 'm-spo-udp' });
  t.equal(
    spo.reason,
    'QUIC to "M365 SharePoint Fqdn rule 2" cannot be tunneled on ios (only Exchange Online); dropped so the app falls back to TCP',
  );
  const none = decide(flow('8.8.8.8', 443, 'udp'));
  t.match(none, { action: 'drop', ruleId: null }, 'scope all');
  t.equal(
    none.reason,
    'no rule tunnels this QUIC flow (on ios only QUIC acquired by Exchange Online rules is tunneled); dropped so the app falls back to TCP',
  );
  t.match(decide(flow('quic.example.test', 443, 'udp')), { action: 'drop', ruleId: 'ia-ca-udp' });
  const lan = decide(flow('192.168.1.10', 443, 'udp'));
  t.match(lan, { action: 'drop', ruleId: 'ia-db' }, 'scope all: bypassed QUIC is dropped too');
  t.match(lan.reason, /^"[^"]+" sends this QUIC flow direct, but on ios the VPN sees all QUIC/);
  t.match(decide(flow('10.1.2.3', 3389, 'udp')), { action: 'tunnel' }, 'not a QUIC port');
  t.match(decide(flow('x.sharepoint.com', 443, 'tcp')), { action: 'tunnel' }, 'TCP unaffected');
});

t.test('QUIC on Windows: M365 and Private tunneled, acquired internet QUIC dropped', async (t) => {
  const decide = decider(t, contoso(), state(WINDOWS));
  t.match(decide(flow('x.sharepoint.com', 443, 'udp')), { action: 'tunnel', channel: 'm365' });
  t.match(decide(flow('quic.example.test', 443, 'udp')), { action: 'drop', ruleId: 'ia-ca-udp' });
  t.match(decide(flow('8.8.8.8', 443, 'udp')), { action: 'bypass', reason: REASON_NO_MATCH });
});

t.test(
  'decisions are precomputed: the same object every time; the handle swaps whole',
  async (t) => {
    const c = compile(contoso(), state(PLAIN));
    const f = flow('outlook.office365.com');
    t.equal(c.decide(f), c.decide(f));
    // 21, and the Private DNS suffix its dnsSuffix rule derives (policy/private-dns.ts).
    t.equal(c.size, 22, 'rule x destination items');
    t.match(c.toString(), /^classifier\(22 items; ip4/);
    const h = new ClassifierHandle(c);
    const next = compile(contoso({ exoLink: 'disabled' }), state(PLAIN));
    t.equal(h.current.decide(f).action, 'tunnel');
    t.equal(h.swap(next), c);
    t.equal(h.generation, 1);
    t.equal(h.current.decide(f).action, 'bypass');
  },
);

t.test('explainAll lists every matching rule in evaluation order', async (t) => {
  const o = new OracleClassifier(contoso({ exoLink: 'disabled' }), state(PLAIN));
  const all = o.explainAll(flow('40.96.0.1', 443));
  t.same(
    all.map((d) => [d.ruleId, d.action]),
    [
      ['m-exo-ip', 'bypass'],
      ['ia-da', 'tunnel'],
    ],
  );
  const c = compile(contoso({ exoLink: 'disabled' }), state(PLAIN));
  t.equal(c.decide(flow('40.96.0.1', 443)).ruleId, all[0]!.ruleId, 'decide acts on the first');
  t.same(o.explainAll(flow('8.8.8.8', 22)), []);
});
