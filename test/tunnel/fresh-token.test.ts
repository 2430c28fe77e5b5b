/**
 * TunnelClient asks getToken for a fresh token after the edge refused the last one: an
 * upgrade refused for the token (401/403 with 4401, 4403 or 4419) or a session the edge
 * closed with one of those codes. Not after a 429 (too many sessions, also 4403): that
 * token is fine. Plain ws on 127.0.0.1.
 */
import { once } from 'node:events';
import { createServer as createHttp, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { AuthError } from '../../src/errors.js';
import type { ChannelName } from '../../src/policy/model.js';
import { type DownInfo, TunnelClient } from '../../src/tunnel/client.js';
import { CloseCode } from '../../src/tunnel/frame.js';
import { createTunnelServer, type TunnelServerOptions } from '../../src/tunnel/server.js';
import { until } from './helpers.js';

/** A tunnel server that admits the token `good` and refuses the others as their name says. */
async function edge(
  t: Test,
  over: Partial<TunnelServerOptions> = {},
): Promise<{ url: string; http: Server }> {
  const http = createHttp();
  const tunnel = createTunnelServer({
    server: http,
    authenticate: async (req, channel: ChannelName) => {
      const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (token === 'good') return { tenantId: 't', userId: 'u', deviceId: 'd', channel };
      throw new AuthError(token, `token ${token}`);
    },
    onStream: () => {},
    limits: { keepaliveInterval: 0 },
    ...over,
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.teardown(async () => {
    await tunnel.close({ graceMs: 0 });
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });
  return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`, http };
}

/** A client whose cached token is `cached`; a fresh one is `good`. Records each ask. */
function client(t: Test, url: string, cached: string) {
  const asks: boolean[] = [];
  const downs: DownInfo[] = [];
  const c = new TunnelClient({
    url,
    channel: 'internet',
    getToken: async (_channel, { fresh }) => {
      asks.push(fresh);
      return fresh ? 'good' : cached;
    },
    backoff: { baseMs: 10, maxMs: 20 },
  });
  c.on('down', (d: DownInfo) => downs.push(d));
  t.teardown(() => c.close());
  return { c, asks, downs };
}

for (const [reason, status, code] of [
  ['forged', 403, CloseCode.AUTH_FORBIDDEN],
  ['wrong-tenant', 403, CloseCode.AUTH_FORBIDDEN],
  ['expired', 401, CloseCode.AUTH_EXPIRED],
  ['malformed', 401, CloseCode.AUTH_MISSING],
] as const) {
  t.test(
    `refused ${status} ${code} (${reason}): the next attempt asks for a fresh token`,
    async (t) => {
      const { url } = await edge(t);
      const { c, asks, downs } = client(t, url, reason);
      c.start();
      await c.waitUp(5000);
      t.match(downs[0], { status, code });
      t.same(asks, [false, true], 'the cached token, then a fresh one');
    },
  );
}

t.test('refused 429 (too many sessions): the token is not renewed', async (t) => {
  const { url } = await edge(t, { maxSessionsPerPrincipal: 1 });
  const first = client(t, url, 'good');
  first.c.start();
  await first.c.waitUp(5000);
  const second = client(t, url, 'good');
  second.c.start();
  t.ok(await until(() => second.downs.length >= 3, 5000), 'refused again and again');
  t.match(second.downs[0], { status: 429, code: CloseCode.AUTH_FORBIDDEN });
  t.notOk(second.asks.includes(true), `never a fresh token (${second.asks.join(', ')})`);
});

t.test(
  'a session the edge closes for its token (4419): the reconnect asks for a fresh one',
  async (t) => {
    let sessions = 0;
    const { url } = await edge(t, {
      onSession: (s) => {
        if (++sessions === 1)
          setTimeout(() => s.close(CloseCode.AUTH_EXPIRED, 'token expired'), 50);
      },
    });
    const { c, asks, downs } = client(t, url, 'good');
    c.start();
    await c.waitUp(5000);
    t.ok(await until(() => downs.length === 1 && c.isUp(), 5000), 'closed, then up again');
    t.match(downs[0], { code: CloseCode.AUTH_EXPIRED });
    t.same(asks, [false, true]);
  },
);
