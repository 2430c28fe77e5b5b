/**
 * The tunnel over real WebSockets on loopback: auth, 1,000 concurrent streams byte-exact,
 * malformed frames close one session and leave the others alone, server death, wss.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttp, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { AuthError, type StreamResetError } from '../../src/errors.js';
import { type DownInfo, TunnelClient, Tunnels } from '../../src/tunnel/client.js';
import {
  CloseCode,
  encodeData,
  encodeFrame,
  encodeOpen,
  encodeRst,
  encodeWindow,
  FrameType,
} from '../../src/tunnel/frame.js';
import { createTunnelServer, type Principal, type TunnelServer } from '../../src/tunnel/server.js';
import type { Session } from '../../src/tunnel/session.js';
import { loadOrCreateTls } from '../../src/tunnel/tls.js';
import type { InboundTunnelStream } from '../../src/tunnel/types.js';
import { ResetCode } from '../../src/tunnel/types.js';
import { delay, digest, meta, random, sha, until, writeAll } from './helpers.js';

async function authenticate(
  req: { headers: Record<string, string | string[] | undefined> },
  channel: Principal['channel'],
): Promise<Principal> {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) throw new AuthError('missing', 'no token');
  const tok = h.slice(7);
  if (tok === 'expired') throw new AuthError('expired', 'token expired');
  if (tok !== 'good') throw new AuthError('forged', 'bad signature');
  return { tenantId: 't1', userId: 'u1', channel };
}

function echo(_s: Session, stream: InboundTunnelStream): void {
  stream.on('error', () => {});
  stream.accept();
  stream.pipe(stream);
}

interface Edge {
  http: Server;
  tunnel: TunnelServer;
  url: string;
  port: number;
  ended: Array<{ code: number }>;
  stop(): Promise<void>;
}

async function startEdge(port = 0, onStream = echo, limits = {}): Promise<Edge> {
  const http = createHttp();
  const ended: Array<{ code: number }> = [];
  const tunnel = createTunnelServer({
    server: http,
    authenticate,
    onStream,
    onSessionEnd: (_s, _p, info) => ended.push({ code: info.code }),
    limits: { keepaliveInterval: 0, ...limits },
  });
  http.listen(port, '127.0.0.1');
  await once(http, 'listening');
  const p = (http.address() as AddressInfo).port;
  return {
    http,
    tunnel,
    url: `ws://127.0.0.1:${p}`,
    port: p,
    ended,
    async stop() {
      await tunnel.close({ graceMs: 100 });
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

t.test('auth refusals: 401/403 with the documented close codes, before any upgrade', async (t) => {
  const edge = await startEdge();
  t.teardown(() => edge.stop());
  const cases: Array<[string, number, number]> = [
    ['', 401, CloseCode.AUTH_MISSING],
    ['expired', 401, CloseCode.AUTH_EXPIRED],
    ['forged', 403, CloseCode.AUTH_FORBIDDEN],
  ];
  for (const [token, status, code] of cases) {
    const c = new TunnelClient({
      url: edge.url,
      channel: 'internet',
      getToken: async () => token,
      backoff: { baseMs: 5000 },
    });
    const down = once(c, 'down') as Promise<[DownInfo]>;
    c.start();
    const [info] = await down;
    t.equal(info.status, status, `${token || 'no token'}: HTTP ${status}`);
    t.equal(info.code, code, `${token || 'no token'}: code ${code}`);
    t.throws(() => c.open(meta()), { code: 'GSA_ERR_CHANNEL_DOWN' });
    await c.close();
  }
  t.equal(edge.tunnel.sessions.size, 0, 'no session was created');
  // Unknown channel
  const ws = new WebSocket(`${edge.url}/tunnel/nope`, {
    headers: { authorization: 'Bearer good' },
  });
  ws.on('error', () => {});
  const [, res] = (await once(ws, 'unexpected-response')) as [
    unknown,
    { statusCode: number; resume(): void },
  ];
  res.resume();
  ws.terminate();
  t.equal(res.statusCode, 404);
});

/** The client's tunnels (internet channel) to `edge`, up; both stopped at teardown. */
async function internetTunnels(t: Test, edge: Edge): Promise<Tunnels> {
  const tunnels = new Tunnels({
    url: edge.url,
    channels: ['internet'],
    getToken: async () => 'good',
  });
  t.teardown(async () => {
    await tunnels.close();
    await edge.stop();
  });
  tunnels.start();
  await tunnels.waitUp(5000);
  return tunnels;
}

t.test('1,000 concurrent streams, random sizes up to 256 KiB, byte-exact both ways', async (t) => {
  const edge = await startEdge();
  const tunnels = await internetTunnels(t, edge);
  t.ok(tunnels.isUp('internet'));
  t.notOk(tunnels.isUp('m365'));
  t.throws(() => tunnels.open('m365', meta()), { code: 'GSA_ERR_CHANNEL_DOWN' });
  const N = 1000;
  let mismatches = 0;
  let total = 0;
  const jobs = Array.from({ length: N }, async (_, i) => {
    const data = random(Math.floor(Math.random() * 256 * 1024) + (i % 7));
    total += data.length;
    const s = tunnels.open('internet', meta({ flowId: `f${i}` }));
    const got = digest(s);
    await writeAll(s, data, 16 * 1024 + (i % 5) * 1000);
    const r = await got;
    if (r.sha !== sha(data) || r.n !== data.length) mismatches++;
  });
  await Promise.all(jobs);
  t.equal(
    mismatches,
    0,
    `all ${N} streams byte-exact (${(total / 2 ** 20).toFixed(0)} MiB each way)`,
  );
  const session = tunnels.client('internet')!.session!;
  t.ok(await until(() => session.streams.size === 0, 2000), 'every stream released');
  const [server] = [...edge.tunnel.sessions];
  t.ok(await until(() => server!.streams.size === 0, 2000), 'server released every stream');
});

t.test(
  'readers that stop and start keep their bytes (the client reuses its read buffers)',
  async (t) => {
    // The edge sends each stream's bytes as fast as credit allows; the client's reader pauses,
    // so DATA waits in the stream while later socket reads arrive (plain ws: lent reads).
    const sent = new Map<string, Buffer>();
    const edge = await startEdge(0, (_s, stream) => {
      stream.on('error', () => {});
      stream.accept();
      const data = random(3 * 1024 * 1024 + Number(stream.meta.flowId.slice(1)));
      sent.set(stream.meta.flowId, data);
      void writeAll(stream, data, 200 * 1024);
    });
    const tunnels = await internetTunnels(t, edge);
    const jobs = Array.from({ length: 6 }, async (_, i) => {
      const s = tunnels.open('internet', meta({ flowId: `f${i}` }));
      s.end();
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        if (chunks.length % 4 === 0) {
          s.pause();
          setTimeout(() => s.resume(), 15);
        }
      });
      await once(s, 'end');
      return { id: `f${i}`, got: Buffer.concat(chunks) };
    });
    for (const r of await Promise.all(jobs)) {
      const want = sent.get(r.id)!;
      t.equal(r.got.length, want.length, `${r.id}: byte count`);
      t.ok(r.got.equals(want), `${r.id}: bytes`);
    }
  },
);

t.test('the edge names the optional frames it understands; the client uses them', async (t) => {
  const edge = await startEdge();
  const ws = new WebSocket(`${edge.url}/tunnel/internet`, {
    headers: { authorization: 'Bearer good' },
  });
  const [res] = (await once(ws, 'upgrade')) as [{ headers: Record<string, string> }];
  t.equal(res.headers['x-gsa-tunnel-features'], 'meta', 'x-gsa-tunnel-features: meta');
  ws.terminate();
  const metas: Array<string | null | undefined> = [];
  const tunnels = await internetTunnels(t, edge);
  const got = new Promise<void>((resolve) => {
    for (const s of edge.tunnel.sessions) {
      s.on('stream', (st: InboundTunnelStream) =>
        st.on('meta', () => {
          metas.push(st.meta.process);
          resolve();
        }),
      );
    }
  });
  const s = tunnels.open('internet', meta());
  s.on('error', () => {});
  s.updateMeta?.({ process: 'curl' });
  await Promise.race([got, delay(2000)]);
  t.same(metas, ['curl'], 'META reached the edge');
});

/** Raw WebSocket speaking frames by hand. */
async function raw(edge: Edge): Promise<WebSocket> {
  const ws = new WebSocket(`${edge.url}/tunnel/internet`, {
    headers: { authorization: 'Bearer good' },
  });
  await once(ws, 'open');
  return ws;
}

t.test('malformed frames close that session with the protocol code; others live on', async (t) => {
  const edge = await startEdge();
  const good = new TunnelClient({
    url: edge.url,
    channel: 'internet',
    getToken: async () => 'good',
  });
  t.teardown(async () => {
    await good.close();
    await edge.stop();
  });
  good.start();
  await good.waitUp(5000);
  const openHex = (id: number) => encodeOpen(id, 256 * 1024, meta());
  const cases: Array<[string, Buffer[], number]> = [
    [
      'unknown frame type',
      [Buffer.from('7f0000000001 00000000'.replace(/ /g, ''), 'hex')],
      CloseCode.BAD_FRAME_TYPE,
    ],
    [
      'length over maxFrameSize',
      [Buffer.from('00000000000100200000', 'hex')],
      CloseCode.FRAME_SIZE,
    ],
    ['DATA on unknown stream', [encodeData(7, Buffer.from('hi'))], CloseCode.STREAM_ID],
    ['RST on a never-opened stream', [encodeRst(9, 0, '')], CloseCode.STREAM_ID],
    [
      'DGRAM on a tcp stream',
      [openHex(1), encodeFrame(FrameType.DGRAM, 1, Buffer.from('x'))],
      CloseCode.PROTOCOL,
    ],
    ['even (server) id from client', [openHex(2)], CloseCode.STREAM_ID],
    [
      'window overflow',
      [openHex(1), encodeData(1, Buffer.alloc(256 * 1024 + 1))],
      CloseCode.FLOW_CONTROL,
    ],
    [
      'WINDOW of bad length',
      [encodeFrame(FrameType.WINDOW, 1, Buffer.alloc(3))],
      CloseCode.FRAME_SIZE,
    ],
    ['credit past 2^31-1', [openHex(1), encodeWindow(1, 0x7fffffff)], CloseCode.FLOW_CONTROL],
  ];
  for (const [name, frames, code] of cases) {
    const ws = await raw(edge);
    ws.on('error', () => {});
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    for (const f of frames) ws.send(f);
    const [got, reason] = await closed;
    t.equal(got, code, `${name}: closed with ${code} (${reason.toString()})`);
    // The well-behaved session on the same server still works.
    const s = good.open(meta());
    const data = random(50_000);
    const d = digest(s);
    await writeAll(s, data);
    t.equal((await d).sha, sha(data), `${name}: other session unaffected`);
  }
  t.ok(
    edge.ended.some((e) => e.code === CloseCode.FLOW_CONTROL),
    'onSessionEnd saw the code',
  );
});

t.test('stream ids exhausted: the client moves to a new session at once', async (t) => {
  const edge = await startEdge();
  const client = new TunnelClient({
    url: edge.url,
    channel: 'internet',
    getToken: async () => 'good',
    backoff: { baseMs: 50, maxMs: 400 },
  });
  t.teardown(async () => {
    await client.close();
    await edge.stop();
  });
  client.start();
  await client.waitUp(5000);
  const first = client.session!;
  // A long-lived stream on the old session, then ids as after 2^30 opens.
  const long = client.open(meta());
  await long.opened;
  (first as unknown as { nextId: number }).nextId = 0x7fffffff + 2;
  t.throws(() => client.open(meta()), { code: 'GSA_ERR_CHANNEL_DOWN' });
  await client.waitUp(5000);
  t.not(client.session, first, 'a fresh session, while the old one still carries a stream');
  const s = client.open(meta());
  s.end('ping');
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  t.equal(Buffer.concat(chunks).toString(), 'ping', 'new streams work on it');
  long.end('bye');
  const back: Buffer[] = [];
  for await (const c of long) back.push(c as Buffer);
  t.equal(Buffer.concat(back).toString(), 'bye', 'the old stream finished on the old session');
});

t.test(
  'server killed mid-transfer: streams reset promptly, client reconnects, new streams work',
  async (t) => {
    let edge = await startEdge();
    const port = edge.port;
    let tokens = 0;
    const client = new TunnelClient({
      url: edge.url,
      channel: 'private',
      getToken: async (channel) => {
        t.equal(channel, 'private');
        tokens++;
        return 'good';
      },
      backoff: { baseMs: 50, maxMs: 400 },
    });
    const downs: DownInfo[] = [];
    client.on('down', (i: DownInfo) => downs.push(i));
    t.teardown(async () => {
      await client.close();
      await edge.stop();
    });
    client.start();
    await client.waitUp(5000);
    const streams = Array.from({ length: 50 }, (_, i) => client.open(meta({ flowId: `k${i}` })));
    const outcome = streams.map(
      (s) =>
        new Promise<number>((r) => {
          s.on('error', () => {});
          s.once('reset', (code: number) => r(code));
          s.on('data', () => {});
          // Keep writing until reset.
          const tick = (): void => {
            if (s.destroyed) return;
            if (s.write(random(8192))) setImmediate(tick);
            else s.once('drain', tick);
          };
          tick();
        }),
    );
    await delay(100);
    const t0 = Date.now();
    // Kill: drop every TCP connection without a closing handshake.
    edge.http.closeAllConnections();
    for (const s of edge.tunnel.sessions) s.close(CloseCode.INTERNAL, 'killed');
    await new Promise<void>((r) => edge.http.close(() => r()));
    const codes = await Promise.all(outcome);
    const took = Date.now() - t0;
    t.ok(took < 3000, `all 50 streams reset in ${took} ms (not each waiting out a timeout)`);
    t.same(new Set(codes), new Set([ResetCode.SESSION_CLOSED]));
    t.notOk(client.isUp());
    t.throws(() => client.open(meta()), { code: 'GSA_ERR_CHANNEL_DOWN' });
    // While the edge is away, the client backs off (attempts grow, delays within the cap).
    for (let i = 0; i < 60 && downs.length < 2; i++) await delay(50);
    t.ok(downs.length >= 2, `${downs.length} down events while the edge is gone`);
    t.ok(
      downs.every((d) => d.retryInMs >= 0 && d.retryInMs <= 400),
      'delays within maxMs',
    );
    // Edge back on the same port: the client reconnects by itself.
    edge = await startEdge(port);
    await client.waitUp(5000);
    const s = client.open(meta());
    const data = random(300_000);
    const d = digest(s);
    await writeAll(s, data);
    t.equal((await d).sha, sha(data), 'new stream works after reconnect');
    t.ok(tokens >= 3, `getToken asked on every attempt (${tokens} times)`);
  },
);

t.test('over wss with the generated CA; connect failure is RST CONNECT_FAILED', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-tls-'));
  const tls = await loadOrCreateTls(dir, ['t1.internet.client.globalsecureaccess.test']);
  const https = createHttps({ cert: tls.cert, key: tls.key });
  const tunnel = createTunnelServer({
    server: https,
    authenticate,
    onStream: (_s, stream) => {
      stream.on('error', () => {});
      if (stream.meta.port === 9) {
        stream.reset(ResetCode.CONNECT_FAILED, 'ECONNREFUSED');
        return;
      }
      echo(_s, stream);
    },
  });
  https.listen(0, '127.0.0.1');
  await once(https, 'listening');
  const port = (https.address() as AddressInfo).port;
  const client = new TunnelClient({
    url: `wss://127.0.0.1:${port}`,
    channel: 'internet',
    getToken: async () => 'good',
    ca: tls.ca,
  });
  t.teardown(async () => {
    await client.close();
    await tunnel.close({ graceMs: 100 });
    https.closeAllConnections();
    await new Promise<void>((r) => https.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });
  client.start();
  await client.waitUp(5000);
  const s = client.open(meta());
  const data = random(1_000_000);
  const d = digest(s);
  await writeAll(s, data);
  t.equal((await d).sha, sha(data), 'byte-exact over TLS');
  const bad = client.open(meta({ port: 9 }));
  bad.on('error', () => {});
  const e = await bad.opened.then(
    () => null,
    (err: StreamResetError) => err,
  );
  t.equal(e?.resetCode, ResetCode.CONNECT_FAILED);
  // A client that does not trust the CA cannot connect.
  const untrusting = new TunnelClient({
    url: `wss://127.0.0.1:${port}`,
    channel: 'internet',
    getToken: async () => 'good',
    backoff: { baseMs: 5000 },
  });
  const [info] = (await Promise.all([once(untrusting, 'down'), untrusting.start()]))[0] as [
    DownInfo,
  ];
  t.match(info.reason, /certificate|self.signed|issuer/i, `untrusted: ${info.reason}`);
  await untrusting.close();
});

t.test(
  'edge shutdown: GOAWAY, the in-flight stream finishes, the client reports down',
  async (t) => {
    const edge = await startEdge();
    const client = new TunnelClient({
      url: edge.url,
      channel: 'm365',
      getToken: async () => 'good',
      backoff: { baseMs: 5000 },
    });
    t.teardown(async () => {
      await client.close();
      await edge.stop();
    });
    client.start();
    await client.waitUp(5000);
    const s = client.open(meta());
    await s.opened;
    const down = once(client, 'down') as Promise<[DownInfo]>;
    const closing = edge.tunnel.close({ graceMs: 3000 });
    const [info] = await down;
    t.match(info.reason, /GOAWAY/);
    t.throws(() => client.open(meta()), { code: 'GSA_ERR_CHANNEL_DOWN' }, 'no new streams');
    const data = random(200_000);
    const d = digest(s);
    await writeAll(s, data);
    t.equal((await d).sha, sha(data), 'in-flight stream completes after GOAWAY');
    await closing;
    t.equal(edge.tunnel.sessions.size, 0, 'session closed once drained');
  },
);

t.test(
  'a writer may reuse its buffer once write() called back (zero-copy DATA is safe)',
  async (t) => {
    const edge = await startEdge(0, (_s, stream) => {
      stream.on('error', () => {});
      stream.accept();
      stream.pipe(stream);
    });
    const client = new TunnelClient({
      url: edge.url,
      channel: 'internet',
      getToken: async () => 'good',
    });
    t.teardown(async () => {
      await client.close();
      await edge.stop();
    });
    client.start();
    await client.waitUp(5000);
    const s = client.open(meta());
    const ROUNDS = 64;
    const buf = Buffer.alloc(100_000);
    const expected: Buffer[] = [];
    const got = digest(s);
    for (let i = 0; i < ROUNDS; i++) {
      buf.fill(i & 0xff);
      expected.push(Buffer.from(buf));
      await new Promise<void>((r, j) => s.write(buf, (e) => (e ? j(e) : r())));
      buf.fill(0xee); // scribble right after the callback
    }
    s.end();
    const r = await got;
    t.equal(
      r.sha,
      sha(Buffer.concat(expected)),
      'peer saw the bytes as written, not the scribbles',
    );
  },
);
