/**
 * Datagrams wait while their destination is being set up (classification, name
 * resolution, the edge's OPEN_OK): at most `udpQueue` per destination and at most
 * `udpQueueBytes` (default 1 MiB) in all of an association's destinations, so that one
 * client cannot make the relay hold 256 destinations x 64 datagrams x 64 KiB (1 GiB).
 * Datagrams past the budget are dropped and counted (`queue`); the ones kept are relayed
 * once the flows are set up.
 *
 * Each association is bounded, but a SOCKS5 client may open 4,096 of them (one per control
 * connection): 4,096 x 256 destinations, each bypassed one a socket of its own (a file
 * descriptor; at `ulimit -n` 1,024 four associations exhaust them, and then the proxies,
 * the tunnel and the logs fail too), and 4,096 x 1 MiB queued. The forwarder bounds what
 * all associations hold together (`udpMaxFlowsTotal`, `udpQueueBytesTotal`); past it,
 * datagrams are dropped and counted (`limit`, `queue`), and what an association held is
 * free again once it closes.
 */
import t, { type Test } from 'tap';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder, type ForwarderOptions } from '../../src/forward/forwarder.js';
import {
  clientState,
  FakeClassifier,
  FakeTunnels,
  SlowResolver,
  udpEcho,
} from './fixtures/fakes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A UDP echo and a forwarder whose names take 300 ms to resolve (flows stay pending). */
async function pendingWorld(t: Test, limits: Partial<ForwarderOptions>) {
  const echo = await udpEcho();
  t.teardown(() => echo.close());
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () => new FakeClassifier([]),
    tunnels: new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new SlowResolver(300, '127.0.0.1'),
    flows,
    ...limits,
  });
  t.teardown(() => fwd.close());
  return { echo, flows, fwd };
}

t.test('the bytes queued in an association are bounded; the rest is counted', async (t) => {
  const { echo, flows, fwd } = await pendingWorld(t, { udpQueueBytes: 100_000 });
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

t.test('destinations and queued bytes are bounded across associations', async (t) => {
  const { echo, flows, fwd } = await pendingWorld(t, {
    udpMaxFlowsTotal: 4,
    udpQueueBytesTotal: 50_000,
  });
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

t.test('a destination closed while being set up gives its queued bytes back at once', async (t) => {
  const { echo, flows, fwd } = await pendingWorld(t, {});
  const drops = (r: string) => flows.counters.drops.get(r) ?? 0;
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, () => {});
  for (let i = 0; i < 3; i++) a.send('dest0.test', null, echo.port, Buffer.alloc(10_000));
  t.equal(fwd._udpHeld.queuedBytes, 30_000, 'queued while its name resolves');
  a.close();
  // Not when the resolution ends (300 ms): other associations may queue them meanwhile.
  t.same(fwd._udpHeld, { flows: 0, queuedBytes: 0 }, 'given back as the association closes');
  t.equal(drops('closed'), 3, 'its datagrams are counted as dropped (closed)');
  const recorded = () => flows.list().find((r) => r.destinationFqdn === 'dest0.test');
  for (let i = 0; i < 50 && recorded()?.status !== 'Terminated'; i++) await sleep(20);
  t.match(recorded(), { status: 'Terminated', drops: 3 }, 'the setup ended and recorded it');
  t.equal(fwd._udpHeld.queuedBytes, 0, 'still nothing held');
  t.equal(drops('closed'), 3, 'not counted twice');
});
