/**
 * The forwarder's side of Private DNS for single-label names (`decide`, which the SOCKS5 and
 * HTTP proxies, UDP ASSOCIATE and `explain --running` share), with the default tenant's
 * compiled classifier: a single label goes qualified unless the machine resolves it itself.
 */
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { PROTO_TCP } from '../../src/classify/types.js';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import { clientState, FakeTunnels } from './fixtures/fakes.js';

const SUFFIX = '0be01cca-76cb-5e88-9948-8a09e00e8f62.globalsecureaccess.local';

function forwarder(hosts: Record<string, string>, channels = {}) {
  const state = clientState(channels);
  const classifier = compile(loadDefaultTenant(), state);
  return new Forwarder({
    classifier: () => classifier,
    tunnels: new FakeTunnels(),
    clientState: () => state,
    resolver: new Resolver({ hosts, system: false }),
    flows: new FlowTable({ keepClosed: 10 }),
  });
}

t.test('an unknown single label is qualified and tunneled on private', async (t) => {
  const r = await forwarder({}).decide(PROTO_TCP, 'FS1.', null, 80);
  t.equal(r.host, `fs1.${SUFFIX}`);
  t.equal(r.qualified, true);
  t.equal(r.ip, null, 'not resolved: the connector resolves it');
  t.equal(r.decision.channel, 'private');
  t.equal(r.decision.action, 'tunnel');
});

t.test('a single label the machine resolves stays local', async (t) => {
  // A hosts entry (`--add-host web=...`), as a compose service's name would be in DNS.
  const r = await forwarder({ web: '127.0.0.9' }).decide(PROTO_TCP, 'web', null, 80);
  t.equal(r.host, 'web');
  t.notOk(r.qualified);
  t.equal(r.ip, '127.0.0.9');
  t.equal(r.decision.channel, null, '127.0.0.0/8 is in Default Bypass');
  t.equal(r.decision.action, 'bypass');
  // An address the application already has (a TUN flow) counts as resolved too.
  const a = await forwarder({}).decide(PROTO_TCP, 'db', '192.0.2.8', 80);
  t.equal(a.host, 'db');
  t.notOk(a.qualified);
  t.equal(a.ip, '192.0.2.8');
});

t.test('never qualified: localhost, another port, UDP, the channel off', async (t) => {
  const f = forwarder({});
  const lh = await f.decide(PROTO_TCP, 'localhost', null, 80);
  t.equal(lh.host, 'localhost');
  t.equal(lh.ip, '127.0.0.1');
  const p22 = await f.decide(PROTO_TCP, 'fs1', null, 22);
  t.equal(p22.host, 'fs1');
  t.notOk(p22.qualified);
  const off = await forwarder({}, { private: false }).decide(PROTO_TCP, 'fs1', null, 80);
  t.equal(off.host, 'fs1');
  t.notOk(off.qualified);
  t.equal(off.decision.channel, null);
});
