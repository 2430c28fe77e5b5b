/**
 * A UDP destination flow whose setup (classification, name resolution: up to the
 * resolver's DNS timeout) takes longer than `udpIdleMs` expires while it is being set up;
 * the setup then gives up and closes what it created, so that once the association is
 * closed (RFC 1928 section 7: "A UDP association terminates when the TCP connection that
 * the UDP ASSOCIATE request arrived on terminates") no flow of it is Active and no socket of
 * it is open.
 */
import dgram, { type Socket as UdpSocket } from 'node:dgram';
import { syncBuiltinESMExports } from 'node:module';
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

// Every UDP socket created from here on (udp.ts imports createSocket from node:dgram), so the
// test can tell whether the association closed them, and close the leaked ones itself.
const created: Array<{ sock: UdpSocket; closed: boolean }> = [];
const realCreate = dgram.createSocket;
(dgram as { createSocket: unknown }).createSocket = (...args: unknown[]) => {
  const sock = (realCreate as (...a: unknown[]) => UdpSocket)(...args);
  const e = { sock, closed: false };
  sock.once('close', () => {
    e.closed = true;
  });
  created.push(e);
  return sock;
};
syncBuiltinESMExports();
t.teardown(() => {
  for (const e of created) if (!e.closed) e.sock.close();
});

t.test('closing the association closes a flow whose setup outlasted udpIdleMs', async (t) => {
  const echo = await udpEcho();
  t.teardown(() => echo.close());
  created.length = 0;
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () => new FakeClassifier([]), // nothing acquired: resolved, then bypass
    tunnels: new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new SlowResolver(400, '127.0.0.1'),
    flows,
    udpIdleMs: 100,
  });
  let replies = 0;
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, () => {
    replies++;
  });
  a.send('slow-dns.test', null, echo.port, Buffer.from('hello'));
  await sleep(700);
  // The flow expired while its name was being resolved: its datagram is given up.
  t.comment(`replies relayed: ${replies}`);
  a.close();
  await sleep(50);
  t.equal(flows.activeCount, 0, 'no flow of the closed association is still active');
  t.same(
    flows
      .list()
      .filter((f) => f.status === 'Active')
      .map((f) => f.destinationFqdn),
    [],
    'the flow table shows none Active',
  );
  const recs = flows.list().filter((f) => f.destinationFqdn === 'slow-dns.test');
  t.equal(recs.length, 1, 'one record for the destination');
  t.equal(recs[0]?.status, 'Terminated', 'given up, not left Active');
  t.equal(flows.counters.drops.get('closed'), 1, 'its queued datagram counted as dropped');
  const open = created.filter((e) => !e.closed && e.sock !== echo.sock).length;
  t.equal(open, 0, 'the bypass socket of the closed association is closed');
});
