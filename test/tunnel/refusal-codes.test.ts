/**
 * Every refused tunnel upgrade carries a close code (`x-gsa-close-code`), so the client
 * reports why instead of 1006: 404 (unknown channel or path) -> 4404 NOT_FOUND, 503 (the
 * edge shutting down) -> 1001 GOING_AWAY. The client keeps retrying both with its backoff,
 * as it does 4401/4403. Through the real edge / tunnel server on 127.0.0.1, plain ws.
 */
import { once } from 'node:events';
import { createServer as createHttp } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { startEdge } from '../../src/edge/server.js';
import { type DownInfo, TunnelClient } from '../../src/tunnel/client.js';
import { CloseCode } from '../../src/tunnel/frame.js';
import { createTunnelServer } from '../../src/tunnel/server.js';
import { tempDir } from '../edge/helpers.js';

/** The first two 'down' events of a client of `url` (a retry is the second). */
async function twoDowns(url: string, path?: string): Promise<DownInfo[]> {
  const c = new TunnelClient({
    url,
    channel: 'private',
    ...(path !== undefined ? { path } : {}),
    getToken: async () => 'not-checked-before-the-refusal',
    backoff: { baseMs: 10, maxMs: 10 },
  });
  const downs: DownInfo[] = [];
  const two = new Promise<void>((r) =>
    c.on('down', (d: DownInfo) => {
      downs.push(d);
      if (downs.length === 2) r();
    }),
  );
  c.start();
  await two;
  await c.close();
  return downs;
}

t.test('404 from the edge: close code 4404, and the client retries', async (t) => {
  const tmp = await tempDir();
  const warns: Array<Record<string, unknown>> = [];
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    persistKey: false,
    egress: { systemResolver: false, directIp: false },
    log: { info: () => {}, warn: (obj) => warns.push(obj as Record<string, unknown>) },
  });
  t.teardown(async () => {
    await edge.close({ graceMs: 0 });
    await tmp.remove();
  });
  t.equal(CloseCode.NOT_FOUND, 4404);

  // `${path}/private` = /tunnel/x/private: the tunnel prefix, no such channel.
  const channel = await twoDowns(edge.url, '/tunnel/x');
  t.match(channel[0], { status: 404, code: CloseCode.NOT_FOUND, attempt: 1 });
  t.equal(
    channel[0]?.reason,
    'edge refused the tunnel: HTTP 404, close code 4404: unknown tunnel channel (not m365, private or internet)',
  );
  t.match(channel[1], { status: 404, code: CloseCode.NOT_FOUND, attempt: 2 }, 'retried');
  t.ok((channel[0]?.retryInMs ?? -1) >= 0, 'with a backoff delay');

  // /tun/private: not under the edge's tunnel prefix at all.
  const path = await twoDowns(edge.url, '/tun');
  t.match(path[0], { status: 404, code: CloseCode.NOT_FOUND });
  t.equal(
    path[0]?.reason,
    'edge refused the tunnel: HTTP 404, close code 4404: no tunnel at this path (tunnels are at /tunnel/<channel>)',
  );
  t.match(path[1], { status: 404, code: CloseCode.NOT_FOUND, attempt: 2 }, 'retried');

  t.match(
    warns.map((w) => [w.status, w.code, w.reason]),
    [
      [404, 4404, 'unknown-channel'],
      [404, 4404, 'unknown-channel'],
      [404, 4404, 'unknown-path'],
      [404, 4404, 'unknown-path'],
    ],
    "the edge's 'tunnel refused' lines carry the code",
  );
});

t.test(
  '503 from a tunnel server shutting down: close code 1001, and the client retries',
  async (t) => {
    const http = createHttp();
    const tunnel = createTunnelServer({
      authenticate: async (_req, channel) => ({ tenantId: 't', userId: 'u', channel }),
      onStream: () => {},
      limits: { keepaliveInterval: 0 },
    });
    http.on('upgrade', (req, socket, head) => {
      if (!tunnel.handleUpgrade(req, socket, head)) socket.destroy();
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    t.teardown(async () => {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    });
    const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
    await tunnel.close({ graceMs: 0 });

    const downs = await twoDowns(url);
    t.match(downs[0], { status: 503, code: CloseCode.GOING_AWAY, attempt: 1 });
    t.equal(
      downs[0]?.reason,
      'edge refused the tunnel: HTTP 503, close code 1001: edge shutting down',
    );
    t.match(downs[1], { status: 503, code: CloseCode.GOING_AWAY, attempt: 2 }, 'retried');
    t.ok((downs[0]?.retryInMs ?? -1) >= 0, 'with a backoff delay');
  },
);
