/**
 * The per-principal session cap (TunnelServerOptions.maxSessionsPerPrincipal): one more
 * session than the cap is refused with HTTP 429 + x-gsa-close-code before any upgrade, other
 * principals are unaffected, and the count is given back on close, failed upgrade and
 * server close.
 */
import { once } from 'node:events';
import { createServer as createHttp, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { AuthError } from '../../src/errors.js';
import { type DownInfo, TunnelClient } from '../../src/tunnel/client.js';
import { CloseCode } from '../../src/tunnel/frame.js';
import { createTunnelServer, type Principal, type TunnelServer } from '../../src/tunnel/server.js';
import type { Session } from '../../src/tunnel/session.js';
import type { InboundTunnelStream } from '../../src/tunnel/types.js';
import { until } from './helpers.js';

/** Token `good:<device>`: user u1 of tenant t1 on that device. */
async function authenticate(
  req: { headers: Record<string, string | string[] | undefined> },
  channel: Principal['channel'],
): Promise<Principal> {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer good:'))
    throw new AuthError('missing', 'no token');
  return { tenantId: 't1', userId: 'u1', deviceId: h.slice('Bearer good:'.length), channel };
}

function echo(_s: Session, stream: InboundTunnelStream): void {
  stream.on('error', () => {});
  stream.accept();
  stream.pipe(stream);
}

interface Edge {
  tunnel: TunnelServer;
  url: string;
  port: number;
  /** onSession calls so far. */
  created: number;
  stop(): Promise<void>;
}

async function startEdge(t: Test, maxSessionsPerPrincipal = 2): Promise<Edge> {
  const http = createHttp();
  const edge = { created: 0 } as Edge;
  const tunnel = createTunnelServer({
    server: http,
    authenticate,
    onStream: echo,
    onSession: () => {
      edge.created++;
    },
    limits: { keepaliveInterval: 0 },
    maxSessionsPerPrincipal,
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  let stopped = false;
  Object.assign(edge, {
    tunnel,
    port,
    url: `ws://127.0.0.1:${port}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await tunnel.close({ graceMs: 100 });
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  });
  t.teardown(() => edge.stop());
  return edge;
}

/** A TunnelClient for `device` on the internet channel, up (closed at teardown). */
async function upClient(t: Test, edge: Edge, device: string): Promise<TunnelClient> {
  const c = new TunnelClient({
    url: edge.url,
    channel: 'internet',
    getToken: async () => `good:${device}`,
    backoff: { baseMs: 5000 },
  });
  t.teardown(() => c.close());
  c.start();
  await c.waitUp(5000);
  return c;
}

interface Attempt {
  status?: number;
  code?: number;
  upgraded: boolean;
  /** The open WebSocket when upgraded (the caller closes it). */
  ws?: WebSocket;
}

/** One raw upgrade attempt: refused (status, close-code header) or upgraded (left open). */
function attempt(edge: Edge, device: string): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${edge.url}/tunnel/internet`, {
      headers: { authorization: `Bearer good:${device}` },
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('upgrade attempt timed out'));
    }, 5000);
    ws.on('error', () => {});
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      res.resume();
      ws.terminate();
      resolve({
        status: res.statusCode ?? 0,
        code: Number(res.headers['x-gsa-close-code']),
        upgraded: false,
      });
    });
    ws.once('open', () => {
      clearTimeout(timer);
      resolve({ upgraded: true, ws });
    });
  });
}

t.test(
  'cap 2: third session of a principal gets 429 before the upgrade; others unaffected; a close frees a slot',
  async (t) => {
    const edge = await startEdge(t, 2);
    const a1 = await upClient(t, edge, 'dev-a');
    await upClient(t, edge, 'dev-a');
    t.equal(edge.tunnel.sessions.size, 2, 'two sessions of one principal');

    // The third: refused with an HTTP response, never a WebSocket.
    const third = await attempt(edge, 'dev-a');
    t.same(
      third,
      { status: 429, code: CloseCode.AUTH_FORBIDDEN, upgraded: false },
      '429 + x-gsa-close-code 4403, no upgrade',
    );
    t.equal(edge.created, 2, 'no session was created for it');
    t.equal(edge.tunnel.sessions.size, 2);

    // TunnelClient reports it as down with the status and code, and backs off.
    const c = new TunnelClient({
      url: edge.url,
      channel: 'internet',
      getToken: async () => 'good:dev-a',
      backoff: { baseMs: 5000 },
    });
    t.teardown(() => c.close());
    const down = once(c, 'down', { signal: AbortSignal.timeout(5000) }) as Promise<[DownInfo]>;
    c.start();
    const [info] = await down;
    t.equal(info.status, 429, 'client: status 429');
    t.equal(info.code, CloseCode.AUTH_FORBIDDEN, 'client: close code 4403');
    t.ok(info.retryInMs >= 0, 'client: retries later');
    t.equal(c.state, 'down');
    await c.close();

    // Another principal (other device, same user) still gets in.
    const b = await upClient(t, edge, 'dev-b');
    t.ok(b.isUp(), 'other device gets in');
    t.equal(edge.tunnel.sessions.size, 3);

    // Closing one of dev-a's sessions gives its slot back.
    await a1.close();
    t.ok(await until(() => edge.tunnel.sessions.size === 2, 5000), 'the closed session is gone');
    const again = await upClient(t, edge, 'dev-a');
    t.ok(again.isUp(), 'dev-a gets in again after one of its sessions closed');
    t.same((await attempt(edge, 'dev-a')).status, 429, 'and is at its cap again');

    await edge.stop();
    t.equal(edge.tunnel.sessions.size, 0, 'no session left after server close');
  },
);

t.test('concurrent upgrades of one principal: exactly the cap gets in', async (t) => {
  const edge = await startEdge(t, 2);
  const results = await Promise.all(Array.from({ length: 6 }, () => attempt(edge, 'dev-a')));
  t.equal(results.filter((r) => r.upgraded).length, 2, 'two upgraded');
  t.equal(results.filter((r) => r.status === 429).length, 4, 'four refused with 429');
  t.equal(edge.tunnel.sessions.size, 2);
  // Dropping the upgraded ones gives their slots back.
  for (const r of results) r.ws?.terminate();
  t.ok(await until(() => edge.tunnel.sessions.size === 0, 5000), 'sessions closed');
  await upClient(t, edge, 'dev-a');
  await upClient(t, edge, 'dev-a');
  t.equal(edge.tunnel.sessions.size, 2);
});

/** An upgrade request that authenticates but that ws refuses (bad Sec-WebSocket-Key). */
function badHandshake(edge: Edge, device: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: edge.port,
      path: '/tunnel/internet',
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'not-a-key',
        authorization: `Bearer good:${device}`,
      },
      timeout: 5000,
    });
    req.on('timeout', () => req.destroy(new Error('bad handshake timed out')));
    req.on('error', reject);
    req.on('upgrade', () => reject(new Error('upgraded')));
    req.on('response', (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.end();
  });
}

t.test('failed upgrades hold no slot', async (t) => {
  const edge = await startEdge(t, 2);
  for (let i = 0; i < 3; i++) t.equal(await badHandshake(edge, 'dev-a'), 400, 'ws refused it');
  await upClient(t, edge, 'dev-a');
  await upClient(t, edge, 'dev-a');
  t.equal(edge.tunnel.sessions.size, 2, 'both sessions got in after three failed upgrades');
});

t.test('maxSessionsPerPrincipal must be an integer >= 1 or Infinity', async (t) => {
  for (const bad of [0, -1, 1.5, Number.NaN])
    t.throws(
      () => createTunnelServer({ authenticate, onStream: echo, maxSessionsPerPrincipal: bad }),
      RangeError,
      String(bad),
    );
  t.doesNotThrow(() =>
    createTunnelServer({ authenticate, onStream: echo, maxSessionsPerPrincipal: Infinity }),
  );
});
