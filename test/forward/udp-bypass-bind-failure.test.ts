/**
 * UDP: a bypassed destination whose UDP socket cannot be bound.
 *
 * When the bind fails (bypassLocalAddress no longer on the host, e.g. after the TUN host's
 * address changed; EADDRNOTAVAIL, EMFILE), dgram emits 'error' and never calls the bind
 * callback: the setup must not wait for it for ever (the flow would stay pending, its
 * datagrams counted as `queue` drops, and never appear in the flow table).
 *
 * Expected, as for a TCP bypass whose connect fails (Forwarder.direct: refusal
 * `unreachable`) and as the udp.ts header says ("drop / block: datagrams are discarded and
 * counted by reason (... `unreachable` ...)"): the flow is recorded (Terminated, with the
 * error as its reason) and its datagrams are counted as `unreachable`.
 */
import t from 'tap';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import { clientState, FakeClassifier, FakeTunnels } from '../forward/fixtures/fakes.js';

t.test('a bypass socket that cannot bind: flow recorded, datagrams unreachable', async (t) => {
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () => new FakeClassifier([]), // bypass
    tunnels: new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new Resolver({ system: false }),
    flows,
    // TEST-NET-1 (RFC 5737): not an address of this host, so bind() fails (EADDRNOTAVAIL).
    bypassLocalAddress: '192.0.2.1',
    udpIdleMs: 5000,
  });
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, () => {});
  t.teardown(() => a.close());
  for (let i = 0; i < 3; i++) a.send(null, '127.0.0.1', 9, Buffer.from(`x${i}`));
  await new Promise((r) => setTimeout(r, 200));
  const rec = flows.list().find((f) => f.protocol === 'udp');
  t.ok(rec, 'the flow is in the flow table');
  t.equal(rec?.status, 'Terminated');
  t.equal(flows.counters.drops.get('unreachable'), 3, 'its datagrams counted as unreachable');
});
