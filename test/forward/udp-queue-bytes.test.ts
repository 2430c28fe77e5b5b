/**
 * Datagrams wait while their destination is being set up (classification, name
 * resolution, the edge's OPEN_OK): at most `udpQueue` per destination and at most
 * `udpQueueBytes` (default 1 MiB) in all of an association's destinations, so that one
 * client cannot make the relay hold 256 destinations x 64 datagrams x 64 KiB (1 GiB).
 * Datagrams past the budget are dropped and counted (`queue`); the ones kept are relayed
 * once the flows are set up.
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

t.test('the bytes queued in an association are bounded; the rest is counted', async (t) => {
  const echo = await udpEcho();
  t.teardown(() => echo.close());
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () => new FakeClassifier([]),
    tunnels: new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new SlowResolver(300, '127.0.0.1'),
    flows,
    udpQueueBytes: 100_000,
  });
  t.teardown(() => fwd.close());
  let replied = 0;
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, (p) => {
    replied += p.length;
  });
  // 4 destinations x 10 datagrams of 10,000 bytes = 400,000 bytes while all are pending.
  for (let d = 0; d < 4; d++) {
    for (let i = 0; i < 10; i++) a.send(`dest${d}.test`, null, echo.port, Buffer.alloc(10_000));
  }
  t.equal(flows.counters.drops.get('queue'), 30, '30 datagrams past the 100,000-byte budget');
  for (let i = 0; i < 100 && replied < 100_000; i++) await sleep(20);
  t.equal(replied, 100_000, 'the 10 kept are relayed once set up');
  // The budget is free again: a new destination may queue as much.
  for (let i = 0; i < 10; i++) a.send('dest9.test', null, echo.port, Buffer.alloc(10_000));
  t.equal(flows.counters.drops.get('queue'), 30, 'nothing more dropped');
  for (let i = 0; i < 100 && replied < 200_000; i++) await sleep(20);
  t.equal(replied, 200_000);
  a.close();
});
