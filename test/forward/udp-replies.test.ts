/**
 * UDP replies through a SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): each reply datagram is
 * encapsulated with a header naming the remote host it came from, which the client matches
 * with what it sent to.
 * - A bypassed destination's socket is connected to it (as the edge's is, src/edge/egress.ts
 *   relayUdp): a datagram from another port or address never reaches the client labelled as
 *   the destination's.
 * - A tunneled reply to a datagram sent to a name carries that name (ATYP 3), also when the
 *   name matched no rule and its resolved address is what the flow was tunneled for, as
 *   bypassed replies do (test/capture/socks5.test.ts).
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { encodeUdpHeader, parseUdpHeader, Socks5Server } from '../../src/capture/socks5.js';
import { PROTO_UDP } from '../../src/classify/types.js';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import { udpApp, udpAssociate } from '../util/socks-udp.js';
import { clientState, decision, FakeClassifier, FakeTunnels } from './fixtures/fakes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A SOCKS5 server on `forwarder`, one UDP association on it: the relay port. */
async function associate(t: Test, forwarder: Forwarder): Promise<number> {
  const server = new Socks5Server({ forwarder, port: 0 });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  return udpAssociate(t, port);
}

const app = udpApp;

t.test('a reply from another port than the destination is not passed off as its', async (t) => {
  // The destination answers nothing itself; a second socket (another port, same host)
  // sends to whoever wrote to the destination.
  const dest = createSocket('udp4');
  dest.bind(0, '127.0.0.1');
  await once(dest, 'listening');
  const other = createSocket('udp4');
  other.bind(0, '127.0.0.1');
  await once(other, 'listening');
  t.teardown(() => {
    dest.close();
    other.close();
  });
  dest.on('message', (_m, r: RemoteInfo) =>
    other.send('not from the destination', r.port, r.address),
  );
  const forwarder = new Forwarder({
    classifier: () => new FakeClassifier([]),
    tunnels: new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new Resolver({ hosts: {}, system: false }),
    flows: new FlowTable(),
  });
  const relayPort = await associate(t, forwarder);
  const { u, got } = await app(t);
  const destPort = dest.address().port;
  u.send(
    Buffer.concat([encodeUdpHeader(null, '127.0.0.1', destPort), Buffer.from('hi')]),
    relayPort,
    '127.0.0.1',
  );
  for (let i = 0; i < 50 && got.length === 0; i++) await sleep(10);
  await sleep(50);
  for (const m of got) {
    const h = parseUdpHeader(m)!;
    const payload = m.subarray(h.data).toString();
    t.not(
      `${h.ip}:${h.port}`,
      `127.0.0.1:${destPort}`,
      `"${payload}" (sent from 127.0.0.1:${other.address().port}) must not be labelled as the destination's`,
    );
  }
  t.pass(`${got.length} datagram(s) relayed`);
});

t.test('a tunneled reply is labelled with the name the client sent to', async (t) => {
  const PRIV = decision({ action: 'tunnel', channel: 'private', ruleId: 'pa-udp-ip' });
  const tunnels = new FakeTunnels(); // udp streams echo each datagram back reversed
  const forwarder = new Forwarder({
    // The name matches nothing; its address is in a private UDP app segment.
    classifier: () => new FakeClassifier([{ ip: '127.77.0.5', proto: PROTO_UDP, decision: PRIV }]),
    tunnels,
    clientState: () => clientState(),
    resolver: new Resolver({ hosts: { 'alias.test': '127.77.0.5' }, system: false }),
    flows: new FlowTable(),
  });
  const relayPort = await associate(t, forwarder);
  const { u, got } = await app(t);
  u.send(
    Buffer.concat([encodeUdpHeader('alias.test', null, 7000), Buffer.from('abc')]),
    relayPort,
    '127.0.0.1',
  );
  for (let i = 0; i < 100 && got.length === 0; i++) await sleep(10);
  t.equal(tunnels.opened[0]?.meta.channel, 'private', 'tunneled on the private channel');
  t.equal(got.length, 1, 'one reply');
  const h = parseUdpHeader(got[0]!)!;
  t.equal(got[0]!.subarray(h.data).toString(), 'cba');
  t.same(
    { host: h.host, ip: h.ip, port: h.port },
    { host: 'alias.test', ip: null, port: 7000 },
    'from alias.test:7000 (ATYP 3), what the client sent to',
  );
});
