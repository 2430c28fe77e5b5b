/**
 * UDP associations are bounded each (`udpMaxFlows` destinations, `udpQueueBytes` queued
 * during setup), but a SOCKS5 client may open 4,096 of them (one per control connection):
 * 4,096 x 256 destinations, each bypassed one a socket of its own (a file descriptor; at
 * `ulimit -n` 1,024 four associations exhaust them, and then the proxies, the tunnel and
 * the logs fail too), and 4,096 x 1 MiB queued. The forwarder bounds what all associations
 * hold together (`udpMaxFlowsTotal`, `udpQueueBytesTotal`); past it, datagrams are dropped
 * and counted (`limit`, `queue`), and what an association held is free again once it closes.
 */
import t from 'tap';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import {
  clientState,
  FakeClassifier,
  FakeTunnels,
  SlowResolver,
  udpEcho,
} from './fixtures/fakes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('destinations and queued bytes are bounded across associations', async (t) => {
  const echo = await udpEcho();
  t.teardown(() => echo.close());
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () => new FakeClassifier([]),
    tunnels: new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new SlowResolver(300, '127.0.0.1'),
    flows,
    udpMaxFlowsTotal: 4,
    udpQueueBytesTotal: 50_000,
  });
  t.teardown(() => fwd.close());
  const drops = (r: string) => flows.counters.drops.get(r) ?? 0;
  const assoc = () =>
    fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, () => {});
  const a = assoc();
  const b = assoc();
  // 3 destinations each, 2 datagrams of 10,000 bytes each: 6 destinations, 120,000 bytes.
  for (const x of [a, b]) {
    for (let d = 0; d < 3; d++) {
      for (let i = 0; i < 2; i++) x.send(`dest${d}.test`, null, echo.port, Buffer.alloc(10_000));
    }
  }
  t.equal(a.size + b.size, 4, 'at most udpMaxFlowsTotal destinations in all');
  t.equal(drops('limit'), 4, 'the datagrams of the 2 destinations past it are counted (limit)');
  t.equal(drops('queue'), 3, 'past 50,000 bytes queued in all, the rest are counted (queue)');
  a.close();
  // What `a` held is free again.
  for (let d = 3; d < 6; d++) b.send(`dest${d}.test`, null, echo.port, Buffer.alloc(1));
  t.equal(b.size, 4, 'a closed association gives its destinations back');
  t.equal(drops('limit'), 4, 'none more past the limit');
  b.close();
  for (let i = 0; i < 50 && fwd._udpHeld.queuedBytes > 0; i++) await sleep(20);
  t.same(fwd._udpHeld, { flows: 0, queuedBytes: 0 }, 'nothing held once all closed');
});
