/**
 * A channel turned off (user toggle or EnableGSA level): a flow that no active rule decides
 * but a rule of that channel's enabled profile would have gets the same no-match bypass,
 * with a reason that names the channel and the rule. Compiled classifier and oracle alike.
 */
import t, { type Test } from 'tap';
import { staticDecision } from '../../src/classify/decisions.js';
import { compile, OracleClassifier, REASON_NO_MATCH } from '../../src/classify/index.js';
import { type Decision, type Flow, newFlow } from '../../src/classify/types.js';
import type { ClientState, PlatformSpec, TenantSpec } from '../../src/policy/model.js';
import { fields } from './gen.js';
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
  internet?: 'enabled' | 'disabled';
  acquireLink?: 'enabled' | 'disabled';
}

function spec(o: Opts = {}): TenantSpec {
  return tenant([
    profile(
      'internet',
      [
        policy(
          'Custom Acquire',
          [
            rule(['news.test', '*.example.test'], {
              id: 'ia-news',
              name: 'News',
              protocols: ['tcp'],
              ports: ['80', '443'],
            }),
            rule(['quic.example.test'], { id: 'ia-udp', name: 'QUIC', protocols: ['udp'] }),
          ],
          { linkState: o.acquireLink ?? 'enabled' },
        ),
        policy('Default Bypass', [
          rule(['10.0.0.0/8', 'lan.example.test'], {
            id: 'ia-db',
            name: 'Default Bypass rule 1',
            action: 'bypass',
          }),
        ]),
        policy('Default Acquire', [
          rule(['0.0.0.0/0'], {
            id: 'ia-da',
            name: 'Default Acquire rule 1',
            protocols: ['tcp'],
            ports: ['80', '443'],
          }),
        ]),
      ],
      { state: o.internet ?? 'enabled' },
    ),
    profile('private', [
      policy('Quick Access', [
        rule(['*.contoso.test', '10.1.0.0/16'], {
          id: 'pa-qa',
          name: 'Quick Access rule 1',
          ports: ['443'],
        }),
      ]),
    ]),
    profile('m365', [
      policy('Exchange Online', [rule(['outlook.office365.com'], { id: 'm-exo' })], {
        group: 'exchange',
      }),
    ]),
  ]);
}

type Asserts = { equal: (found: string, wanted: string, msg: string) => unknown };

/** Decide with the compiled classifier; fail the test if the oracle disagrees on any field. */
function decider(t: Asserts, s: TenantSpec, st: ClientState) {
  const c = compile(s, st);
  const o = new OracleClassifier(s, st);
  return (f: Flow): Decision => {
    const d = c.decide(f);
    t.equal(fields(d), fields(o.decide(f)), `oracle agrees: ${summary(d)}`);
    return d;
  };
}

const IA_NEWS =
  'the Internet Access channel is off, so Internet Access rule "News" does not tunnel it (goes direct)';
const IA_DA =
  'the Internet Access channel is off, so Internet Access rule "Default Acquire rule 1" does not tunnel it (goes direct)';
const IA_DB =
  'the Internet Access channel is off; Internet Access rule "Default Bypass rule 1" would bypass it anyway (goes direct)';
const PA_QA =
  'the Private Access channel is off, so Private Access rule "Quick Access rule 1" does not tunnel it (goes direct)';

/** The no-match bypass: everything but the reason. */
function noMatch(t: Test, d: Decision, msg: string): void {
  const { reason: _r, ...rest } = d;
  // The no-match decision's fields (staticDecision: bypass, no channel, no rule).
  const { reason: _n, ...none } = staticDecision('');
  t.same(rest, none, `${msg}: the no-match bypass`);
  t.ok(Object.isFrozen(d), `${msg}: frozen`);
}

t.test('internet off: the Internet Access rule that would have decided is named', async (t) => {
  const decide = decider(t, spec(), state(PLAIN, { internet: false }));
  for (const [f, reason] of [
    [flow('news.test', 443), IA_NEWS],
    [flow('www.example.test', 80), IA_NEWS],
    [flow('8.8.8.8', 443), IA_DA],
    [flow('8.8.8.8', 443, 'tcp', 'news.test'), IA_NEWS],
    [flow('lan.example.test', 443), IA_DB],
    // Default Bypass matches too: bypass rules come before forward rules, as when on.
    [flow('10.9.9.9', 443), IA_DB],
  ] as const) {
    const d = decide(f);
    noMatch(t, d, reason);
    t.equal(d.reason, reason);
  }
  t.equal(decide(flow('8.8.8.8', 22)).reason, REASON_NO_MATCH, 'no rule at all: unchanged');
  t.equal(decide(flow('news.test', 22)).reason, REASON_NO_MATCH, 'ports still count');
  t.match(decide(flow('outlook.office365.com')), { action: 'tunnel', channel: 'm365' });
  t.match(decide(flow('10.1.2.3', 443)), { action: 'tunnel', channel: 'private' });
  t.equal(
    decide(flow('news.test', 443)),
    decide(flow('x.example.test', 443)),
    'decisions are shared, not made per flow',
  );
});

t.test('private off: an active Internet Access rule wins; else Private is named', async (t) => {
  const decide = decider(t, spec(), state(PLAIN, { private: false }));
  const d = decide(flow('app.contoso.test', 443));
  noMatch(t, d, 'private app');
  t.equal(d.reason, PA_QA);
  t.match(decide(flow('10.1.2.3', 443)), { action: 'bypass', ruleId: 'ia-db' }, 'enabled wins');
  t.match(decide(flow('8.8.8.8', 443, 'tcp', 'app.contoso.test')), {
    action: 'tunnel',
    ruleId: 'ia-da',
  });
  t.equal(decide(flow('app.contoso.test', 22)).reason, REASON_NO_MATCH);
});

t.test('private and internet off: Private before Internet, as when on', async (t) => {
  const decide = decider(t, spec(), state(PLAIN, { private: false, internet: false }));
  t.equal(decide(flow('10.1.2.3', 443)).reason, PA_QA, 'private over internet bypass');
  t.equal(decide(flow('8.8.8.8', 443, 'tcp', 'app.contoso.test')).reason, PA_QA);
  t.equal(decide(flow('10.2.0.1', 443)).reason, IA_DB);
  t.equal(decide(flow('news.test', 443)).reason, IA_NEWS);
  t.match(decide(flow('outlook.office365.com')), { action: 'tunnel', channel: 'm365' });
  t.equal(decide(flow('8.8.8.8', 22)).reason, REASON_NO_MATCH);
});

t.test('QUIC: same action as the no-match QUIC decision, the cause kept', async (t) => {
  const quicBypassAll: PlatformSpec = {
    ...IOS,
    name: 'bypass-all',
    quic: { ...IOS.quic, otherwise: 'bypass' },
  };
  for (const platform of [IOS, WINDOWS, quicBypassAll]) {
    const decide = decider(t, spec(), state(platform, { internet: false }));
    // 203.0.113.1 is matched by no rule: the no-match QUIC decision today.
    const none = decide(flow('203.0.113.1', 443, 'udp'));
    const d = decide(flow('quic.example.test', 443, 'udp'));
    t.equal(d.action, none.action, `${platform.name}: same action as no match`);
    t.equal(d.channel, null);
    t.equal(d.ruleId, null);
    t.match(
      d.reason,
      /^the Internet Access channel is off, so Internet Access rule "QUIC" does not tunnel it/,
      platform.name,
    );
    if (d.action === 'drop') {
      t.equal(
        d.reason,
        `the Internet Access channel is off, so Internet Access rule "QUIC" does not tunnel it; ${none.reason}`,
      );
    }
    t.equal(
      decide(flow('quic.example.test', 3478, 'udp')).reason,
      'the Internet Access channel is off, so Internet Access rule "QUIC" does not tunnel it (goes direct)',
      `${platform.name}: not a QUIC port`,
    );
  }
  t.equal(
    decider(t, spec(), state(IOS, { internet: false }))(flow('quic.example.test', 443, 'udp'))
      .action,
    'drop',
    'iOS drops it, as any QUIC no rule tunnels',
  );
});

t.test('an administrator-disabled profile or link is not named', async (t) => {
  let decide = decider(t, spec({ internet: 'disabled' }), state(PLAIN, { internet: false }));
  t.equal(decide(flow('news.test', 443)).reason, REASON_NO_MATCH, 'profile disabled, channel off');
  decide = decider(t, spec({ internet: 'disabled' }), state(PLAIN));
  t.equal(decide(flow('news.test', 443)).reason, REASON_NO_MATCH, 'profile disabled, channel on');
  decide = decider(t, spec({ acquireLink: 'disabled' }), state(PLAIN, { internet: false }));
  t.equal(decide(flow('news.test', 443)).reason, REASON_NO_MATCH, 'link disabled');
  t.equal(decide(flow('8.8.8.8', 443, 'tcp', 'news.test')).reason, IA_DA, 'later rules still');
});

t.test('private off and a local subnet: its IP segment would not take it either', async (t) => {
  const st = {
    ...state(PLAIN, { private: false, internet: false }),
    localSubnets: ['10.1.0.0/24'],
  };
  const decide = decider(t, spec(), st);
  t.equal(decide(flow('10.1.0.5', 443)).reason, IA_DB, 'in the local subnet: not Private');
  t.equal(decide(flow('10.1.1.5', 443)).reason, PA_QA, 'outside it: Private');
  t.equal(decide(flow('10.1.0.5', 443, 'tcp', 'app.contoso.test')).reason, PA_QA, 'by name');
});

t.test('GSA disabled and IPv6 not acquired keep their reasons', async (t) => {
  let decide = decider(t, spec(), state(PLAIN, { m365: false, private: false, internet: false }));
  t.match(decide(flow('news.test', 443)).reason, /disabled/);
  decide = decider(t, spec(), state(IOS, { internet: false }));
  t.match(decide(flow('2001:db8::1', 443, 'tcp', 'news.test')).reason, /IPv6/);
});

t.test('the off-channel path allocates nothing', async (t) => {
  const c = compile(spec(), state(IOS, { private: false, internet: false }));
  const flows = [
    flow('news.test', 443),
    flow('10.1.2.3', 443),
    flow('8.8.8.8', 443),
    flow('quic.example.test', 443, 'udp'),
    flow('8.8.8.8', 22),
    newFlow(),
    flow('outlook.office365.com'),
    flow('app.contoso.test', 443),
  ];
  const run = (n: number) => {
    let named = 0;
    for (let i = 0; i < n; i++) if (c.decide(flows[i & 7]!).reason.includes(' is off')) named++;
    return named;
  };
  run(200_000);
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const named = run(1_000_000);
  const grown = process.memoryUsage().heapUsed - before;
  t.equal(named, 625_000, 'five flows of eight name a channel that is off');
  t.ok(grown < 2 * 1024 * 1024, `heap grew ${grown} bytes over 1e6 decisions`);
});
