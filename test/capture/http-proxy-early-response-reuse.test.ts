/**
 * Plain HTTP: a request (or CONNECT) the client sends on a connection after one answered
 * early with `Connection: close` (RFC 9112 9.6): the connection lingers to drop the rest of
 * the body, and what follows is neither forwarded nor answered; the connection closes within
 * the linger bound. A request answered after its body was read whole keeps the connection.
 * Servers on 127.0.0.1 only, each closed by its test.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { HttpProxy } from '../../src/capture/http-proxy.js';
import { listen, proxyTo } from './early-response-helpers.js';
import { sleep } from './helpers.js';

/** An origin that answers /big 413 at once, anything else `ok <path>`; `seen`: its requests. */
function origin(t: Test, seen: string[]): Promise<number> {
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === '/big') {
      res.writeHead(413, { 'content-length': '8' });
      res.end('too big\n');
      return;
    }
    req.resume();
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  return listen(t, server);
}

/** The proxy (early-response-helpers.ts) and when its side of its next client connection closed. */
async function proxyClosing(
  t: Test,
  port: number,
): Promise<{ pport: number; proxy: HttpProxy; closedAt: () => number }> {
  const { pport, proxy } = await proxyTo(t, port);
  let at = 0;
  proxy.server.once('connection', (s: Socket) =>
    s.once('close', () => {
      at = Date.now();
    }),
  );
  return { pport, proxy, closedAt: () => at };
}

/** A raw client: what it received, and a bounded wait for a pattern in it. */
async function raw(t: Test, pport: number) {
  const s = connect({ port: pport, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  let got = '';
  s.on('data', (c: Buffer) => {
    got += c.toString('latin1');
  });
  await once(s, 'connect');
  const until = async (re: RegExp, ms: number): Promise<boolean> => {
    const end = Date.now() + ms;
    while (!re.test(got) && Date.now() < end) await sleep(10);
    return re.test(got);
  };
  return { s, got: () => got, until };
}

async function closedWithin(closedAt: () => number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (closedAt() === 0 && Date.now() < end) await sleep(20);
  return closedAt() !== 0;
}

for (const host of ['direct.test', 'tunnel.test']) {
  t.test(`${host}: what follows a body answered early is not processed`, async (t) => {
    for (const next of ['GET', 'CONNECT'] as const) {
      const seen: string[] = [];
      const eport = await origin(t, seen);
      const { pport, proxy, closedAt } = await proxyClosing(t, eport);
      const c = await raw(t, pport);
      const body = 64 * 1024;
      c.s.write(
        `POST http://${host}:${eport}/big HTTP/1.1\r\nHost: x\r\nContent-Length: ${body}\r\n\r\n`,
      );
      c.s.write(Buffer.alloc(1000, 1));
      t.ok(await c.until(/\r\n\r\ntoo big\n/, 10_000), `${next}: the 413`);
      t.match(c.got(), /\r\nconnection: close\r\n/i);
      // The client finishes its body and, ignoring `Connection: close`, goes on.
      c.s.write(Buffer.alloc(body - 1000, 1));
      c.s.write(
        next === 'GET'
          ? `GET http://${host}:${eport}/second HTTP/1.1\r\nHost: x\r\n\r\n`
          : `CONNECT 127.0.0.1:${eport} HTTP/1.1\r\nHost: x\r\n\r\n`,
      );
      t.ok(
        await closedWithin(closedAt, 10_000),
        `${next}: closed (the linger bound is 2 s; 10 s allowed for a loaded host)`,
      );
      t.same(seen, ['POST /big'], `${next}: nothing more went upstream`);
      t.equal(proxy.stats.connects, 0, `${next}: no tunnel`);
      t.ok(c.got().endsWith('\r\n\r\ntoo big\n'), `${next}: nothing after the 413`);
    }
  });

  t.test(`${host}: a request pipelined behind a body answered early`, async (t) => {
    const seen: string[] = [];
    const eport = await origin(t, seen);
    const { pport, closedAt } = await proxyClosing(t, eport);
    const c = await raw(t, pport);
    // 16 MiB with a GET right behind it: the 413 comes while the body is in flight.
    const body = 16 * 1024 * 1024;
    c.s.write(
      `POST http://${host}:${eport}/big HTTP/1.1\r\nHost: x\r\nContent-Length: ${body}\r\n\r\n`,
    );
    c.s.write(Buffer.alloc(body, 1));
    c.s.write(`GET http://${host}:${eport}/second HTTP/1.1\r\nHost: x\r\n\r\n`);
    t.ok(await c.until(/\r\n\r\ntoo big\n/, 10_000), 'the 413');
    t.match(c.got(), /\r\nconnection: close\r\n/i);
    t.ok(
      await closedWithin(closedAt, 10_000),
      'closed (the linger bound is 2 s; 10 s allowed for a loaded host)',
    );
    t.same(seen, ['POST /big'], 'the GET did not go upstream');
    t.ok(c.got().endsWith('\r\n\r\ntoo big\n'), 'nothing after the 413');
  });

  t.test(`${host}: a body read whole keeps the connection for the next request`, async (t) => {
    const seen: string[] = [];
    const eport = await origin(t, seen);
    const { pport } = await proxyClosing(t, eport);
    const c = await raw(t, pport);
    c.s.write(
      `POST http://${host}:${eport}/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`,
    );
    t.ok(await c.until(/ok \/a$/, 3000), 'first');
    c.s.write(`GET http://${host}:${eport}/b HTTP/1.1\r\nHost: x\r\n\r\n`);
    t.ok(await c.until(/ok \/b$/, 3000), 'second, same connection');
    t.notMatch(c.got(), /connection: close/i);
  });
}
