/**
 * A tunneled stream that the edge accepts and resets in the same batch of frames (OPEN_OK
 * then RST: a destination that accepts and resets at once, both read in one chunk) is
 * destroyed, its 'reset' and 'close' emitted, before Forwarder.connectTcp's continuation
 * runs. connectTcp used to return it as opened; track() and relay() then waited for events
 * that had already happened: the SOCKS client got 0x00 and then nothing, its connection
 * open for good, and the flow stayed Active. Now connectTcp refuses it with its reset code,
 * and relay() aborts the client of an upstream already destroyed.
 * Uses the real tunnel Session (in-memory transport), whose edge side accepts and resets.
 */
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { Reply } from '../../src/capture/socks5.js';
import type { Stream } from '../../src/tunnel/stream.js';
import { type ChannelTunnels, ResetCode } from '../../src/tunnel/types.js';
import { domainRequest, hex, rawClient, startSocks, TUNNEL } from '../capture/helpers.js';
import { pair } from '../tunnel/helpers.js';
import { decision, echoServer, fakeForwarder } from './fixtures/fakes.js';

t.test('a stream reset as it opens ends the SOCKS connection and its flow', async (t) => {
  const { client, server: edge } = pair();
  t.teardown(() => {
    client.close();
    edge.close();
  });
  edge.on('stream', (s: Stream) => {
    s.on('error', () => {});
    s.accept();
    s.reset(ResetCode.CANCEL, 'ECONNRESET from 127.0.0.1:80');
  });
  const tunnels: ChannelTunnels = {
    isUp: () => true,
    open: (_channel, meta) => client.open(meta),
  };
  const { port, flows } = await startSocks(t, { rules: [{ decision: TUNNEL }], tunnels });
  const c = await rawClient(t, port, [hex('05 01 00'), domainRequest('news.test', 80)]);
  const r = await c.waitBytes(12);
  t.ok(await c.ended(3000), 'the SOCKS connection is ended (reply, then close or reset)');
  t.equal(r[3], Reply.HOST_UNREACHABLE, 'refused: 0x04 host unreachable');
  const f = flows.list()[0];
  t.not(f?.status, 'Active', `the flow is not left Active (${f?.status}: ${f?.reason})`);
  t.match(f?.reason, /^reset as it opened: 0 ECONNRESET from 127\.0\.0\.1:80$/);
});

t.test('relay() of an upstream already destroyed aborts the client at once', async (t) => {
  const { fwd } = fakeForwarder();
  const [a, b] = await socketPair(t);
  const upstream = new PassThrough();
  upstream.destroy();
  await once(upstream, 'close');
  const done = fwd.relay(upstream, a);
  const ended = await Promise.race([
    new Promise<string>((r) => b.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'))),
    new Promise<string>((r) => b.once('end', () => r('end'))),
    new Promise<string>((r) => setTimeout(() => r('nothing within 2 s'), 2000)),
  ]);
  t.equal(ended, 'ECONNRESET', 'the client is reset');
  const settled = await Promise.race([
    done.then(() => 'resolved'),
    new Promise<string>((r) => setTimeout(() => r('pending after 2 s'), 2000)),
  ]);
  t.equal(settled, 'resolved', 'relay() is done');
});

t.test('an edge going away (RST REFUSED "session going away") applies the fallback', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const tunnel = decision({
    action: 'tunnel',
    channel: 'internet',
    ruleId: 'ia',
    fallback: 'bypass',
  });
  const { fwd, tunnels } = fakeForwarder([{ decision: tunnel }], { 'news.test': '127.0.0.1' });
  const req = { host: 'news.test', ip: null, port: echo.port, srcIp: '127.0.0.1', srcPort: 1 };
  tunnels.behaviour = { kind: 'reset', code: ResetCode.REFUSED, reason: 'session going away' };
  const gone = await fwd.connectTcp({ ...req, capture: 'socks' });
  t.equal(gone.refused, undefined, 'connected directly');
  t.match(gone.flow, { action: 'Bypass', hardening: 'Y' });
  gone.upstream?.destroy();
  tunnels.behaviour = { kind: 'reset', code: ResetCode.REFUSED, reason: 'too many streams' };
  const full = await fwd.connectTcp({ ...req, capture: 'socks' });
  t.equal(full.refused, 'failed', 'the stream limit: refused, no fallback');
  t.equal(full.flow.hardening, 'N');
});

/** Two connected loopback sockets, destroyed at teardown. */
async function socketPair(t: { teardown(fn: () => unknown): void }): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const b = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [a] = (await accepted) as [Socket];
  await once(b, 'connect');
  a.on('error', () => {});
  b.on('error', () => {});
  t.teardown(() => {
    a.destroy();
    b.destroy();
    server.close();
  });
  return [a, b];
}
