/**
 * Refused tunnel upgrades in the logs. The client's 'channel down' line names the HTTP
 * status and the close code of the refusal (any status: 429 too many sessions, 401/403 auth,
 * 404 close code 4404, 503 close code 1001), and its reason says why the edge refused. The edge logs each refusal once at
 * warn ('tunnel refused': status, close code, reason, the principal when authenticated),
 * and a client retrying fast cannot flood that log (RefusalLogLimit). Everything on
 * 127.0.0.1, plain ws.
 */
import { once } from 'node:events';
import { createServer as createHttp } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startClient } from '../../src/client/client.js';
import { RefusalLogLimit, startEdge } from '../../src/edge/server.js';
import { AuthError } from '../../src/errors.js';
import { type DownInfo, TunnelClient } from '../../src/tunnel/client.js';
import { CloseCode } from '../../src/tunnel/frame.js';
import { createTunnelServer, type Principal, type TunnelRefusal } from '../../src/tunnel/server.js';
import { tempDir, until } from '../edge/helpers.js';

interface Line {
  level: string;
  msg: string;
  obj: Record<string, unknown>;
}

function capture() {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, msg: msg ?? '', obj: obj as Record<string, unknown> });
    };
  return {
    lines,
    log: { info: at('info'), warn: at('warn'), debug: at('debug'), error: at('error') },
  };
}

async function edgeWith(t: Test, over: Parameters<typeof startEdge>[0]['limits'] = {}) {
  const tmp = await tempDir();
  const edgeLog = capture();
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    persistKey: false,
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 0, ...over },
    log: edgeLog.log,
  });
  t.teardown(async () => {
    await edge.close({ graceMs: 0 });
    await tmp.remove();
  });
  return { edge, edgeLog };
}

const NO_LISTENERS = { socksPort: null, httpPort: null, pacPort: null, adminPort: null };

t.test('429: the client logs status and close code; the edge logs the refusal', async (t) => {
  const { edge, edgeLog } = await edgeWith(t, { maxSessionsPerPrincipal: 1 });
  // Two clients of the same user and device: the second's channels are one session too many.
  const first = await startClient({
    edge: { url: edge.url },
    tenant: 'default',
    listen: NO_LISTENERS,
    processLookup: false,
  });
  t.teardown(() => first.close());
  await first.waitConnected(5000);
  const second = capture();
  const c2 = await startClient({
    edge: { url: edge.url },
    tenant: 'default',
    listen: NO_LISTENERS,
    processLookup: false,
    log: second.log,
  });
  t.teardown(() => c2.close());
  const down = (): Line[] => second.lines.filter((l) => l.msg === 'channel down');
  t.ok(await until(() => down().length >= 3, 5000), 'each channel down');
  for (const l of down().slice(0, 3)) {
    t.equal(l.level, 'warn');
    t.equal(l.obj.status, 429, `${l.obj.channel}: the HTTP status`);
    t.equal(l.obj.code, CloseCode.AUTH_FORBIDDEN, `${l.obj.channel}: the close code`);
    t.match(
      l.obj.reason,
      /^edge refused the tunnel: HTTP 429, close code 4403: too many tunnel sessions/,
      'the reason says it and why',
    );
  }
  const refused = edgeLog.lines.filter((l) => l.msg === 'tunnel refused');
  t.ok(refused.length >= 3, 'the edge logs the refusals');
  for (const l of refused.slice(0, 3)) {
    t.equal(l.level, 'warn');
    t.match(l.obj, {
      status: 429,
      code: CloseCode.AUTH_FORBIDDEN,
      reason: 'too-many-sessions',
      userId: '8d2f5c1a-0b7e-4e6f-9a41-2c3d4e5f6a7b',
      deviceId: 'b3c1d2e4-5f60-4a7b-8c9d-0e1f2a3b4c5d',
      tenantId: String,
      channel: String,
      remote: '127.0.0.1',
    });
  }
  t.same(
    new Set(refused.map((l) => l.obj.channel)),
    new Set(['m365', 'private', 'internet']),
    'one per channel',
  );
});

t.test('other refusal statuses: the client reason and DownInfo name them', async (t) => {
  const { edge, edgeLog } = await edgeWith(t);
  const downOf = async (
    path: string | undefined,
    getToken: () => Promise<string>,
  ): Promise<DownInfo> => {
    const c = new TunnelClient({
      url: edge.url,
      channel: 'private',
      ...(path ? { path } : {}),
      getToken,
      backoff: { baseMs: 5000, maxMs: 5000 },
    });
    const d = new Promise<DownInfo>((r) => c.once('down', r));
    c.start();
    const info = await d;
    await c.close();
    return info;
  };
  const expired = await downOf(undefined, () =>
    edge.issueToken({ channel: 'private', ttlSeconds: -300 }),
  );
  t.match(expired, { status: 401, code: CloseCode.AUTH_EXPIRED });
  t.match(
    expired.reason,
    /^edge refused the tunnel: HTTP 401, close code 4419: tunnel authentication failed: expired$/,
  );
  const wrong = await downOf(undefined, () => edge.issueToken({ channel: 'm365' }));
  t.match(wrong, { status: 403, code: CloseCode.AUTH_FORBIDDEN });
  t.match(wrong.reason, /HTTP 403, close code 4403: tunnel authentication failed: wrong-audience/);
  // A path with no such channel: 404, close code 4404.
  const none = await downOf('/tunnel/x', () => edge.issueToken({ channel: 'private' }));
  t.match(none, { status: 404, code: CloseCode.NOT_FOUND });
  t.match(
    none.reason,
    /^edge refused the tunnel: HTTP 404, close code 4404: unknown tunnel channel/,
  );
  const refused = edgeLog.lines.filter((l) => l.msg === 'tunnel refused');
  t.match(
    refused.map((l) => [l.level, l.obj.status, l.obj.reason]),
    [
      ['warn', 401, 'expired'],
      ['warn', 403, 'wrong-audience'],
      ['warn', 404, 'unknown-channel'],
    ],
    'the edge logs each with its status',
  );
  t.equal(refused[0]?.obj.code, CloseCode.AUTH_EXPIRED);
  t.notOk(
    refused[0] === undefined || 'userId' in refused[0].obj,
    'no principal before authentication',
  );
});

t.test('a client retrying without backoff does not flood the edge log', async (t) => {
  const { edge, edgeLog } = await edgeWith(t);
  let attempts = 0;
  const c = new TunnelClient({
    url: edge.url,
    channel: 'internet',
    getToken: async () => {
      attempts++;
      return 'not.a.jwt';
    },
    backoff: { baseMs: 1, maxMs: 1 },
  });
  c.start();
  await until(() => attempts >= 60, 10_000);
  await c.close();
  const refused = edgeLog.lines.filter((l) => l.msg === 'tunnel refused');
  t.ok(attempts >= 60, `${attempts} attempts`);
  t.ok(refused.length <= 5, `${refused.length} lines for ${attempts} refusals`);
  t.ok(refused.length >= 1, 'the first ones are logged');
});

t.test('RefusalLogLimit: a few lines per key and window, then a count', async (t) => {
  const lim = new RefusalLogLimit({ windowMs: 1000, perKey: 2, total: 3 });
  t.same(lim.admit('a', 0), { suppressed: 0 });
  t.same(lim.admit('a', 10), { suppressed: 0 });
  t.equal(lim.admit('a', 20), null, 'third of the key in the window: not logged');
  t.equal(lim.admit('a', 30), null);
  t.same(lim.admit('b', 40), { suppressed: 0, limitReached: true }, 'the last line of all');
  t.equal(lim.admit('c', 50), null, 'over the total');
  t.same(lim.admit('a', 1000), { suppressed: 2 }, 'next window: how many were not logged');
  t.same(lim.admit('c', 1001), { suppressed: 0 }, 'a key never logged starts from 0');
  t.equal(lim.unlogged, 3, 'refusals not logged in all');
  // Keys quiet for a whole window are forgotten: the table stays small.
  lim.admit('d', 5000);
  t.equal(lim.size, 1);
});

t.test('the tunnel server reports every refusal to onRefused', async (t) => {
  const seen: TunnelRefusal<Principal>[] = [];
  const http = createHttp();
  const tunnel = createTunnelServer({
    server: http,
    authenticate: async (req, channel) => {
      if (req.headers.authorization === 'Bearer boom') throw new Error('boom');
      if (req.headers.authorization !== 'Bearer ok') throw new AuthError('missing', 'no');
      return { tenantId: 't', userId: 'u', deviceId: 'd', channel };
    },
    onStream: () => {},
    onRefused: (r) => seen.push(r),
    limits: { keepaliveInterval: 0 },
    maxSessionsPerPrincipal: 1,
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
  t.teardown(async () => {
    await tunnel.close({ graceMs: 0 });
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });
  const down = async (token: string, path?: string): Promise<DownInfo> => {
    const c = new TunnelClient({
      url,
      channel: 'internet',
      ...(path ? { path } : {}),
      getToken: async () => token,
      backoff: { baseMs: 5000, maxMs: 5000 },
    });
    const d = new Promise<DownInfo>((r) => c.once('down', r));
    c.start();
    const info = await d;
    await c.close();
    return info;
  };
  const holder = new TunnelClient({
    url,
    channel: 'internet',
    getToken: async () => 'ok',
    backoff: { baseMs: 5000 },
  });
  t.teardown(() => holder.close());
  holder.start();
  await holder.waitUp(5000);
  const tooMany = await down('ok');
  t.match(tooMany, { status: 429, code: CloseCode.AUTH_FORBIDDEN });
  t.match(tooMany.reason, /HTTP 429, close code 4403: too many tunnel sessions/);
  const missing = await down('nope');
  t.match(missing, { status: 401, code: CloseCode.AUTH_MISSING });
  const boom = await down('boom');
  t.match(boom, { status: 500, code: CloseCode.INTERNAL });
  await down('ok', '/tunnel/x');
  t.match(seen, [
    {
      status: 429,
      code: CloseCode.AUTH_FORBIDDEN,
      reason: 'too-many-sessions',
      channel: 'internet',
      principal: { userId: 'u', deviceId: 'd' },
    },
    { status: 401, code: CloseCode.AUTH_MISSING, reason: 'missing', channel: 'internet' },
    { status: 500, code: CloseCode.INTERNAL, reason: 'internal', error: 'boom' },
    { status: 404, code: CloseCode.NOT_FOUND, reason: 'unknown-channel', channel: null },
  ]);
  t.equal(seen.length, 4, 'once each');
  t.equal(seen[1]!.principal, undefined);
});
