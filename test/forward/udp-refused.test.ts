/**
 * A UDP destination that refuses (its port unreachable): the association counts the
 * datagram as dropped (`refused`, on the flow too) and tells its `unreachable` callback
 * (TUN answers ICMP port unreachable with it), for a bypassed flow (ECONNREFUSED on its
 * connected socket) and a tunneled one (the edge's RST CONNECT_FAILED `ECONNREFUSED`);
 * other resets say nothing but a host or net unreachable (test/forward/udp-unreachable.test.ts). SOCKS5, which has no way to report it, keeps relaying.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { encodeUdpHeader, parseUdpHeader, Socks5Server } from '../../src/capture/socks5.js';
import { PROTO_UDP } from '../../src/classify/types.js';
import type { Forwarder } from '../../src/forward/forwarder.js';
import { ResetCode } from '../../src/tunnel/types.js';
import { udpApp, udpAssociate } from '../util/socks-udp.js';
import { decision, fakeForwarder } from './fixtures/fakes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loopback UDP port nothing listens on (checked by binding it). */
const CLOSED = 18204;

async function closedPort(): Promise<number> {
  const probe = createSocket('udp4');
  probe.bind(CLOSED, '127.0.0.1');
  await once(probe, 'listening');
  await new Promise<void>((r) => probe.close(() => r()));
  return CLOSED;
}

/** A UDP echo on 127.0.0.1, closed by `t`'s teardown. */
async function echo(t: Test): Promise<number> {
  const s = createSocket('udp4');
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  t.teardown(() => s.close());
  return s.address().port;
}

function associationOf(t: Test, fwd: Forwarder) {
  const refused: string[] = [];
  const kinds: string[] = [];
  const replies: string[] = [];
  const a = fwd.udpAssociation(
    { srcIp: '10.255.0.1', srcPort: 40000, capture: 'tun' },
    (p) => replies.push(p.toString()),
    (host, ip, port, kind) => {
      if (kind === 'port') refused.push(`${host ?? ip}:${port}`);
      kinds.push(kind);
    },
  );
  t.teardown(() => a.close());
  return { a, refused, kinds, replies };
}

const until = async (f: () => boolean, ms = 2000): Promise<void> => {
  for (let i = 0; i < ms / 10 && !f(); i++) await sleep(10);
};

t.test('bypassed: ECONNREFUSED on the connected socket is told, counted, not fatal', async (t) => {
  const port = await closedPort();
  const { fwd, flows } = fakeForwarder();
  const { a, refused, replies } = associationOf(t, fwd);
  a.send(null, '127.0.0.1', port, Buffer.from('anyone?'));
  await until(() => refused.length > 0);
  t.same(refused, [`127.0.0.1:${port}`], 'the destination as the client addressed it');
  t.equal(flows.counters.drops.get('refused'), 1);
  const rec = flows.list().find((r) => r.destinationPort === port)!;
  t.equal(rec.action, 'Bypass');
  t.equal(rec.status, 'Active', 'the flow stays, as a connected socket does');
  t.equal(rec.drops, 1);
  a.send(null, '127.0.0.1', port, Buffer.from('again'));
  await until(() => refused.length > 1);
  t.equal(refused.length, 2, 'each refused datagram is told');
  const ep = await echo(t);
  a.send(null, '127.0.0.1', ep, Buffer.from('hello'));
  await until(() => replies.length > 0);
  t.same(replies, ['hello'], 'the association still relays');
});

t.test('tunneled: RST CONNECT_FAILED ECONNREFUSED from the edge is told', async (t) => {
  const PRIV = decision({ action: 'tunnel', channel: 'private', ruleId: 'pa-udp' });
  const { fwd, tunnels, flows } = fakeForwarder([
    { ip: '127.77.0.5', proto: PROTO_UDP, decision: PRIV },
  ]);
  const { a, refused, kinds } = associationOf(t, fwd);
  const resetAfterOpen = (code: number, reason: string) =>
    tunnels.resetAfterOpen(() => a.send(null, '127.77.0.5', 7000, Buffer.from('x')), code, reason);
  await resetAfterOpen(ResetCode.CONNECT_FAILED, 'ECONNREFUSED');
  t.same(refused, ['127.77.0.5:7000']);
  t.equal(flows.counters.drops.get('refused'), 1);
  const rec = flows
    .list()
    .filter((r) => r.destinationPort === 7000)
    .at(-1)!;
  t.equal(rec.action, 'Tunnel');
  t.match(rec.reason, /reset 1 ECONNREFUSED/);
  // The next datagram opens a new flow; a host unreachable is told as one (not counted as
  // a refusal), a reset for another reason says nothing.
  await resetAfterOpen(ResetCode.CONNECT_FAILED, 'EHOSTUNREACH');
  await resetAfterOpen(ResetCode.TIMEOUT, 'idle timeout');
  t.equal(refused.length, 1, 'only a refusal is told as port unreachable');
  t.same(kinds, ['port', 'host'], 'EHOSTUNREACH as host unreachable, the timeout not at all');
  t.equal(flows.counters.drops.get('refused'), 1);
  t.equal(tunnels.opened.length, 3);
});

t.test('tunneled: a refusal before OPEN_OK is told too (the destination refused)', async (t) => {
  const PRIV = decision({ action: 'tunnel', channel: 'private', ruleId: 'pa-udp' });
  const { fwd, tunnels, flows } = fakeForwarder([
    { ip: '127.77.0.5', proto: PROTO_UDP, decision: PRIV },
  ]);
  tunnels.behaviour = { kind: 'reset', code: ResetCode.CONNECT_FAILED, reason: 'ECONNREFUSED' };
  const { a, refused } = associationOf(t, fwd);
  a.send(null, '127.77.0.5', 7000, Buffer.from('x'));
  await until(() => refused.length > 0);
  t.same(refused, ['127.77.0.5:7000']);
  await sleep(20);
  t.equal(flows.counters.drops.get('refused'), 1, 'its one datagram counted once');
  tunnels.behaviour = { kind: 'reset', code: ResetCode.BLOCKED, reason: 'web filtering' };
  a.send(null, '127.77.0.5', 7001, Buffer.from('y'));
  await sleep(50);
  t.equal(refused.length, 1, 'a block is not a port unreachable');
});

t.test('SOCKS5 UDP ASSOCIATE: a refusing destination changes nothing for the others', async (t) => {
  const port = await closedPort();
  const ep = await echo(t);
  const { fwd, flows } = fakeForwarder();
  const server = new Socks5Server({ forwarder: fwd, port: 0 });
  const { port: socksPort } = await server.listen();
  t.teardown(() => server.close());
  const relay = await udpAssociate(t, socksPort);
  const { u, got } = await udpApp(t);
  const send = (p: number, s: string) =>
    u.send(
      Buffer.concat([encodeUdpHeader(null, '127.0.0.1', p), Buffer.from(s)]),
      relay,
      '127.0.0.1',
    );
  send(port, 'refused');
  await until(() => (flows.counters.drops.get('refused') ?? 0) > 0);
  t.equal(flows.counters.drops.get('refused'), 1, 'counted');
  send(ep, 'echo me');
  await until(() => got.length > 0);
  t.equal(got.length, 1);
  const h = parseUdpHeader(got[0]!)!;
  t.equal(got[0]!.subarray(h.data).toString(), 'echo me');
  t.equal(h.port, ep);
});
