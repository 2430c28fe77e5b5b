/**
 * TunnelClient's `openSilenceMs`: an OPEN after which the session receives nothing at all
 * for that long closes the session with 4408 (the edge went silent: no FIN, no RST), so
 * the streams waiting end with SESSION_CLOSED (the forwarder's fallback) at once rather
 * than after keepalive (up to 45 s). An edge that is alive but slow to answer the OPEN (a
 * slow destination) answers the PING sent half way, and keeps its session.
 */
import { once } from 'node:events';
import { createServer as createHttp } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { StreamResetError } from '../../src/errors.js';
import { type DownInfo, TunnelClient } from '../../src/tunnel/client.js';
import { CloseCode } from '../../src/tunnel/frame.js';
import { createTunnelServer, type TunnelServerOptions } from '../../src/tunnel/server.js';
import { ResetCode } from '../../src/tunnel/types.js';
import { silentRelay } from '../client/edge-restart-helpers.js';
import { meta } from './helpers.js';

async function edge(t: Test, onStream: TunnelServerOptions['onStream']): Promise<number> {
  const http = createHttp();
  const tunnel = createTunnelServer({
    server: http,
    authenticate: async (_req, channel) => ({ tenantId: 't', userId: 'u', channel }),
    onStream,
    limits: { keepaliveInterval: 0 },
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.teardown(async () => {
    await tunnel.close({ graceMs: 0 });
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });
  return (http.address() as AddressInfo).port;
}

function client(t: Test, port: number): { c: TunnelClient; downs: DownInfo[] } {
  const downs: DownInfo[] = [];
  // Keepalive keeps its defaults (a PING every 15 s, 30 s of silence).
  const c = new TunnelClient({
    url: `ws://127.0.0.1:${port}`,
    channel: 'internet',
    getToken: async () => 'x',
    backoff: { baseMs: 5000, maxMs: 5000 },
    openSilenceMs: 400,
  });
  c.on('down', (d: DownInfo) => downs.push(d));
  t.teardown(() => c.close());
  return { c, downs };
}

t.test('a silent edge: the OPEN closes the session (4408) after openSilenceMs', async (t) => {
  const relay = await silentRelay(await edge(t, () => {}));
  t.teardown(relay.close);
  const { c, downs } = client(t, relay.port);
  c.start();
  await c.waitUp(5000);
  relay.silence();
  const t0 = Date.now();
  const s = c.open(meta());
  s.on('error', () => {});
  const err = await s.opened.then(
    () => null,
    (e: unknown) => e,
  );
  const ms = Date.now() - t0;
  t.ok(err instanceof StreamResetError, 'the OPEN fails');
  t.equal((err as StreamResetError).resetCode, ResetCode.SESSION_CLOSED, 'its session closed');
  t.ok(ms >= 350 && ms < 2000, `after about openSilenceMs (${ms} ms)`);
  t.match(downs[0], {
    code: CloseCode.KEEPALIVE_TIMEOUT,
    reason: 'session closed: 4408 nothing received within 400 ms of an OPEN',
  });
  t.notOk(c.isUp(), 'new flows find the channel down');
});

t.test('a live edge slow to answer the OPEN keeps its session', async (t) => {
  const port = await edge(t, (_session, stream) => {
    stream.on('error', () => {});
    // The destination takes 3 times openSilenceMs to connect.
    setTimeout(() => stream.accept(), 1200);
  });
  const { c, downs } = client(t, port);
  c.start();
  await c.waitUp(5000);
  const session = c.session;
  // Quiet for a while first: no input since long before the OPEN.
  await new Promise((r) => setTimeout(r, 500));
  const s = c.open(meta());
  s.on('error', () => {});
  await s.opened;
  t.equal(downs.length, 0, 'no down');
  t.equal(c.session, session, 'the same session');
  s.destroy();
});
