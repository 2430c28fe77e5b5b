/**
 * A name that matched no rule is resolved and classified again by its address, whatever the
 * first decision made of it: for UDP 443 the platform's QUIC rule has already turned
 * "nothing acquired" into a drop, yet Exchange Online QUIC, the one QUIC iOS tunnels
 * (gsa-facts.md section 4; EXO is 40.96.0.0/13 among others, UDP 443: section 8), sent by a
 * name no FQDN rule knows, gets the same verdict as sent to its address and as TCP to the
 * name. A name a rule matched is never resolved.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { PROTO_TCP, PROTO_UDP } from '../../src/classify/types.js';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import type { PlatformSpec } from '../../src/policy/model.js';
import { dataPath } from '../../src/util/package.js';
import { clientState, decision, FakeClassifier, FakeTunnels } from './fixtures/fakes.js';

const ios = JSON.parse(readFileSync(dataPath('platforms', 'ios.json'), 'utf8')) as PlatformSpec;
const state = {
  channels: { m365: true, private: true, internet: true },
  platform: ios,
};
const classifier = compile(loadDefaultTenant(), state);

function setup() {
  const tunnels = new FakeTunnels();
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () => classifier,
    tunnels,
    clientState: () => state,
    // A name no FQDN rule knows, whose address is Exchange Online's.
    resolver: new Resolver({ hosts: { 'mail-alias.test': '40.96.0.5' }, system: false }),
    flows,
    openTimeoutMs: 300,
    udpIdleMs: 5000,
  });
  return { fwd, flows, tunnels };
}

t.test('QUIC by name to an Exchange Online address: classified like the address', async (t) => {
  const { fwd } = setup();
  const byIp = await fwd.decide(PROTO_UDP, null, '40.96.0.5', 443);
  t.match(byIp.decision, { action: 'tunnel', channel: 'm365' }, 'by address: EXO QUIC tunneled');
  const tcp = await fwd.decide(PROTO_TCP, 'mail-alias.test', null, 443);
  t.match(tcp.decision, { action: 'tunnel', channel: 'm365' }, 'TCP by name: tunneled on m365');
  const byName = await fwd.decide(PROTO_UDP, 'mail-alias.test', null, 443);
  t.match(
    byName.decision,
    { action: 'tunnel', channel: 'm365' },
    'UDP 443 by name: the name acquired nothing, so it is classified by its address too',
  );
  t.equal(byName.ip, '40.96.0.5', 'the address it was classified by');
});

t.test('through a UDP association: tunneled on m365, not dropped as quic', async (t) => {
  const { fwd, flows, tunnels } = setup();
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, () => {});
  t.teardown(() => a.close());
  a.send('mail-alias.test', null, 443, Buffer.from('quic initial'));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(flows.counters.drops.get('quic') ?? 0, 0, 'not dropped as QUIC');
  t.equal(tunnels.opened.length, 1, 'a udp stream opened');
  t.equal(tunnels.opened[0]?.meta.channel, 'm365');
});

t.test('a name a rule matched is not resolved, whatever the action', async (t) => {
  const rules = [
    {
      host: 'casino.test',
      decision: decision({ action: 'block', channel: 'internet', ruleId: 'blk' }),
    },
    {
      host: 'video.test',
      proto: PROTO_UDP,
      decision: decision({ action: 'drop', ruleId: 'ia-video', reason: 'QUIC to a rule' }),
    },
    { host: 'direct.test', decision: decision({ action: 'bypass', ruleId: 'ia-bypass' }) },
    // What each would become by address, if it were resolved.
    {
      ip: '127.77.0.5',
      decision: decision({ action: 'tunnel', channel: 'private', ruleId: 'pa' }),
    },
  ];
  const c = new FakeClassifier(rules);
  const fwd = new Forwarder({
    classifier: () => c,
    tunnels: new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new Resolver({
      hosts: {
        'casino.test': '127.77.0.5',
        'video.test': '127.77.0.5',
        'direct.test': '127.77.0.5',
      },
      system: false,
    }),
    flows: new FlowTable(),
  });
  for (const [host, proto, action] of [
    ['casino.test', PROTO_UDP, 'block'],
    ['casino.test', PROTO_TCP, 'block'],
    ['video.test', PROTO_UDP, 'drop'],
    ['direct.test', PROTO_UDP, 'bypass'],
  ] as const) {
    c.seen.length = 0;
    const r = await fwd.decide(proto, host, null, 443);
    t.equal(r.decision.action, action, `${host} ${proto}: ${action}`);
    t.equal(r.ip, null, `${host} ${proto}: not resolved`);
    t.equal(c.seen.length, 1, `${host} ${proto}: classified once`);
  }
  // A name nothing matched: resolved and classified again, for either protocol.
  for (const proto of [PROTO_TCP, PROTO_UDP]) {
    c.seen.length = 0;
    c.rules = rules.slice(3);
    const r = await fwd.decide(proto, 'casino.test', null, 443);
    t.equal(r.decision.action, 'tunnel', `unmatched name, proto ${proto}: by its address`);
    t.equal(c.seen.length, 2);
    c.rules = rules;
  }
});
