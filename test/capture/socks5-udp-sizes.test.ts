/**
 * SOCKS5 UDP ASSOCIATE: datagram sizes at the limits (bypassed flow).
 *
 * A UDP payload over IPv4 is at most 65,507 bytes. A destination may answer with that much;
 * the relay must add the RFC 1928 section 7 header (10 bytes for IPv4), so the encapsulated
 * reply cannot be sent to the client (EMSGSIZE). That datagram is lost either way; what is
 * expected is that the loss is counted like every other one the relay makes
 * (gsa_client_drops_total{reason}: "Datagrams dropped, by reason", flow-table.ts; the flow
 * record's `drops`; Socks5Stats.udpDropped), so /metrics and the Traffic tab do not show a
 * flow that received 65,507 bytes the client never got, with no drop anywhere.
 *
 * (0-byte datagrams both ways and the largest request a client can send, 65,497 bytes, are
 * checked too and work.)
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { encodeUdpHeader, parseUdpHeader, Socks5Server } from '../../src/capture/socks5.js';
import { fakeForwarder } from '../forward/fixtures/fakes.js';
import { udpApp, udpAssociate } from '../util/socks-udp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function world(t: Test) {
  // Destination: "big" -> 65,507 bytes; anything else echoed as is (0 bytes too).
  const dest = createSocket('udp4');
  dest.bind(0, '127.0.0.1');
  await once(dest, 'listening');
  t.teardown(() => dest.close());
  dest.on('message', (m: Buffer, r: RemoteInfo) => {
    dest.send(m.toString() === 'big' ? Buffer.alloc(65_507, 0x61) : m, r.port, r.address);
  });
  const { fwd: forwarder, flows } = fakeForwarder();
  const server = new Socks5Server({ forwarder, port: 0 });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  const relayPort = await udpAssociate(t, port);
  const { u, got } = await udpApp(t);
  const destPort = dest.address().port;
  const send = (payload: Buffer) =>
    u.send(
      Buffer.concat([encodeUdpHeader(null, '127.0.0.1', destPort), payload]),
      relayPort,
      '127.0.0.1',
    );
  return { flows, server, got, send };
}

t.test('0-byte and 65,497-byte datagrams go both ways', async (t) => {
  const { got, send } = await world(t);
  send(Buffer.alloc(0));
  for (let i = 0; i < 100 && got.length < 1; i++) await sleep(10);
  t.equal(got.length, 1, 'the empty datagram came back');
  t.equal(got[0]!.length - parseUdpHeader(got[0]!)!.data, 0);
  send(Buffer.alloc(65_497, 0x62));
  for (let i = 0; i < 100 && got.length < 2; i++) await sleep(10);
  t.equal(got.length, 2, 'the largest datagram came back');
  t.equal(got[1]?.length, 65_507);
});

t.test('a reply too large to encapsulate is counted as dropped', async (t) => {
  const { flows, server, got, send } = await world(t);
  send(Buffer.from('big'));
  await sleep(300);
  t.equal(got.length, 0, 'it cannot reach the client (65,507 + 10 > 65,507)');
  const rec = flows.list().find((f) => f.protocol === 'udp')!;
  t.equal(rec.bytesReceived, 65_507, 'the flow record says 65,507 bytes received');
  t.equal(flows.counters.drops.get('too-big'), 1, 'the lost reply is counted: too-big');
  t.equal(server.stats.udpDropped, 1, 'and in the proxy stats');
  // The relay still works after it.
  send(Buffer.from('small'));
  for (let i = 0; i < 100 && got.length < 1; i++) await sleep(10);
  t.equal(got.length, 1, 'the next reply gets through');
});
