/**
 * A bypassed flow whose caller relays it (SOCKS, HTTP CONNECT, TUN: `relayed: true`) reads
 * its socket in large buffers lent to the client's writes (src/util/big-read.ts): every byte
 * still arrives once and in order, also bytes the destination sent before relay() began, and
 * a large download reuses the lent buffers. Without `relayed` (plain HTTP) the upstream is an
 * ordinary socket that emits 'data'. Servers on 127.0.0.1, closed by the tests.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { until } from '../util/wait.js';
import { fakeForwarder } from './fixtures/fakes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Byte i of the download is (i * 7) mod 251. */
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) % 251;
  return b;
}

async function listen(t: Test, server: Server): Promise<number> {
  const conns = new Set<Socket>();
  server.on('connection', (c: Socket) => conns.add(c));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const c of conns) c.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/** A destination that greets at once, then sends `body` in 64 KiB writes and ends. */
async function destination(t: Test, body: Buffer): Promise<number> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.write('hello ');
    let off = 0;
    const pump = (): void => {
      while (off < body.length) {
        const c = body.subarray(off, off + 65536);
        off += c.length;
        if (!s.write(c)) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    setTimeout(pump, 50);
  });
  return listen(t, server);
}

/** [application side, capture side] of a loopback connection. */
async function socketPair(t: Test): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true });
  const port = await listen(t, server);
  const app = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const [inner] = (await once(server, 'connection')) as [Socket];
  await once(app, 'connect');
  t.teardown(() => {
    app.destroy();
    inner.destroy();
  });
  return [app, inner];
}

t.test('relayed bypass: early and large data arrive whole and in order', async (t) => {
  const body = pattern(8 * 2 ** 20 + 12345);
  const port = await destination(t, body);
  const { fwd, flows } = fakeForwarder([], { 'direct.test': '127.0.0.1' });
  const res = await fwd.connectTcp({
    host: 'direct.test',
    ip: null,
    port,
    srcIp: '127.0.0.1',
    srcPort: 1,
    capture: 'socks',
    relayed: true,
  });
  t.notOk(res.refused, 'bypassed');
  // The greeting arrives before there is anyone to relay it to.
  await sleep(30);
  const [app, inner] = await socketPair(t);
  const got: Buffer[] = [];
  app.on('data', (c: Buffer) => got.push(Buffer.from(c)));
  const ended = once(app, 'end');
  const done = fwd.relay(res.upstream!, inner);
  await ended;
  app.end();
  await done;
  const all = Buffer.concat(got);
  t.equal(all.subarray(0, 6).toString(), 'hello ', 'the early greeting first');
  t.equal(all.length, body.length + 6, 'every byte once');
  const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.equal(h(all.subarray(6)), h(body), 'in order, unchanged');
  const id = res.flow.flowId;
  await until(() => flows.get(id)?.status !== 'Active', 2000);
  const rec = flows.get(id);
  t.equal(rec?.bytesReceived, body.length + 6, 'the flow table counts what was read');
});

t.test('without relayed, the upstream is an ordinary socket', async (t) => {
  const body = pattern(300_000);
  const port = await destination(t, body);
  const { fwd } = fakeForwarder([], { 'direct.test': '127.0.0.1' });
  const res = await fwd.connectTcp({
    host: 'direct.test',
    ip: null,
    port,
    srcIp: '127.0.0.1',
    srcPort: 1,
    capture: 'http',
  });
  t.notOk(res.refused, 'bypassed');
  const up = res.upstream!;
  t.teardown(() => up.destroy());
  const got: Buffer[] = [];
  up.on('data', (c: Buffer) => got.push(c));
  await once(up, 'end');
  t.equal(Buffer.concat(got).length, body.length + 6, "'data' events carry every byte");
});
