/**
 * SOCKS5 UDP ASSOCIATE with DST 0.0.0.0:0 (the client's port "not known", RFC 1928 section
 * 7): the relay takes the port of the first datagram from the client's address. Only a
 * datagram it would relay (a valid header, FRAG 0) decides it: a malformed or fragmented
 * one, from the client or from another program on the same address, is dropped and counted
 * without taking the association away from the client that then sends a good one.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { once } from 'node:events';
import t from 'tap';
import { encodeUdpHeader, Socks5Server } from '../../src/capture/socks5.js';
import { fakeForwarder } from '../forward/fixtures/fakes.js';
import { udpApp, udpAssociate } from '../util/socks-udp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a bad first datagram does not choose the association source port', async (t) => {
  const dest = createSocket('udp4');
  dest.bind(0, '127.0.0.1');
  await once(dest, 'listening');
  t.teardown(() => dest.close());
  dest.on('message', (m: Buffer, r: RemoteInfo) => dest.send(m, r.port, r.address));
  const destPort = dest.address().port;
  const { fwd: forwarder, flows } = fakeForwarder();
  const server = new Socks5Server({ forwarder, port: 0 });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  const relayPort = await udpAssociate(t, port);
  // Another socket on the client's address sends garbage, then a fragment.
  const stray = await udpApp(t);
  stray.u.send(Buffer.from([1, 2, 3]), relayPort, '127.0.0.1');
  const frag = encodeUdpHeader(null, '127.0.0.1', destPort);
  frag[2] = 1;
  stray.u.send(Buffer.concat([frag, Buffer.from('frag')]), relayPort, '127.0.0.1');
  const drops = (r: string) => flows.counters.drops.get(r) ?? 0;
  for (let i = 0; i < 100 && drops('frag') < 1; i++) await sleep(10);
  t.equal(drops('bad-header'), 1, 'the garbage: bad-header');
  t.equal(drops('frag'), 1, 'the fragment: frag');
  // The application's first good datagram: relayed, and answered to its own port.
  const app = await udpApp(t);
  app.u.send(
    Buffer.concat([encodeUdpHeader(null, '127.0.0.1', destPort), Buffer.from('hello')]),
    relayPort,
    '127.0.0.1',
  );
  for (let i = 0; i < 200 && app.got.length < 1; i++) await sleep(10);
  t.equal(app.got.length, 1, 'the application got its answer');
  t.equal(app.got[0]?.subarray(10).toString(), 'hello');
  t.equal(drops('foreign-sender'), 0, 'nothing taken for a foreign sender');
  t.equal(stray.got.length, 0, 'nothing went to the stray socket');
});
