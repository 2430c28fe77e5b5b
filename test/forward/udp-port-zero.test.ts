/**
 * A UDP datagram to port 0 of a bypassed destination (SOCKS5 UDP ASSOCIATE; TUN UDP goes
 * through the same UdpAssociation) is discarded as unreachable and counted. It used to make
 * the forwarder call dgram connect(0, ...), which throws ERR_SOCKET_BAD_PORT inside a bind
 * callback: an uncaught exception that ended the whole client process, from any local
 * program (the SOCKS port needs no credentials on loopback).
 *
 * Runs in a child process: without the fix the scenario kills the process it runs in.
 */
import t from 'tap';
import { runTs } from '../util/ts-child.js';
import { fakeForwarder } from './fixtures/fakes.js';

const src = (p: string): string => JSON.stringify(new URL(`../../src/${p}`, import.meta.url).href);
const fakes = JSON.stringify(new URL('../forward/fixtures/fakes.ts', import.meta.url).href);

const SCENARIO = `
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect } from 'node:net';
import { encodeUdpHeader, Socks5Server } from ${src('capture/socks5.ts')};
import { FlowTable } from ${src('forward/flow-table.ts')};
import { Forwarder } from ${src('forward/forwarder.ts')};
import { Resolver } from ${src('forward/resolver.ts')};
import { clientState, decision, FakeClassifier, FakeTunnels, udpEcho } from ${fakes};

const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });
const flows = new FlowTable();
const forwarder = new Forwarder({
  classifier: () => new FakeClassifier([{ decision: BYPASS }]),
  tunnels: new FakeTunnels(),
  clientState: () => clientState(),
  resolver: new Resolver({ system: false }),
  flows,
});
const server = new Socks5Server({ forwarder, port: 0 });
const { port } = await server.listen();
const echo = await udpEcho();
const u = createSocket('udp4');
u.bind(0, '127.0.0.1');
await once(u, 'listening');
const replies = [];
u.on('message', (m) => replies.push(m));
// UDP ASSOCIATE announcing the client's own address and port.
const c = connect({ port, host: '127.0.0.1' });
c.on('error', () => {});
await once(c, 'connect');
const req = Buffer.from([5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1, 0, 0]);
req.writeUInt16BE(u.address().port, 11);
c.write(req);
const got = [];
c.on('data', (d) => got.push(d));
for (let i = 0; i < 200 && Buffer.concat(got).length < 12; i++) await new Promise((r) => setTimeout(r, 10));
const r = Buffer.concat(got);
const relayPort = r.readUInt16BE(10);
// A datagram for 127.0.0.1 port 0, then one for the echo server.
u.send(Buffer.concat([encodeUdpHeader(null, '127.0.0.1', 0), Buffer.from('zero')]), relayPort, '127.0.0.1');
await new Promise((r) => setTimeout(r, 200));
u.send(Buffer.concat([encodeUdpHeader(null, '127.0.0.1', echo.port), Buffer.from('after')]), relayPort, '127.0.0.1');
for (let i = 0; i < 200 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
const zero = flows.list().find((f) => f.destinationPort === 0);
process.stdout.write(JSON.stringify({
  reply: replies[0] ? replies[0].subarray(10).toString() : null,
  unreachable: flows.counters.drops.get('unreachable') ?? 0,
  zero: zero ? { status: zero.status, reason: zero.reason } : null,
}));
process.exit(0);
`;

t.test('a UDP datagram to port 0 is dropped; the process and the relay go on', async (t) => {
  const run = await runTs(SCENARIO, 20_000);
  t.notMatch(run.err, /ERR_SOCKET_BAD_PORT/, 'no uncaught ERR_SOCKET_BAD_PORT');
  t.equal(run.code, 0, `the process did not die (stderr: ${run.err.split('\n')[0] ?? ''})`);
  if (run.code !== 0) return;
  const out = JSON.parse(run.out);
  t.equal(out.reply, 'AFTER', 'the next datagram is still relayed');
  t.equal(out.unreachable, 1, 'the datagram to port 0 is counted as dropped (unreachable)');
  t.match(
    out.zero,
    { status: 'Terminated', reason: /^unreachable: no destination port \(127\.0\.0\.1:0\)/ },
    'its flow says why',
  );
});

t.test('a bypassed TCP flow to port 0 is refused, not thrown', async (t) => {
  const { fwd } = fakeForwarder([], {}, { openTimeoutMs: 300 });
  const res = await fwd.connectTcp({
    host: null,
    ip: '127.0.0.1',
    port: 0,
    srcIp: '127.0.0.1',
    srcPort: 1,
    capture: 'tun',
    relayed: true,
  });
  t.equal(res.refused, 'unreachable');
  t.match(res.flow.reason, /no destination port/);
});
