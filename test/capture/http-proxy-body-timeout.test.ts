/**
 * Plain HTTP: the request-body idle timeout (HttpProxyOptions.bodyTimeoutMs, nginx's
 * client_body_timeout: the time between two reads, not the whole upload). A client that
 * sends a request head and part of its body, then stops without a FIN while the upstream
 * waits for the rest, gets `408 Request Timeout` (or, once a response is under way, a
 * closed connection); the upstream side is released and the flow ends with the reason. A
 * slow but steady upload, a client awaiting its 100 Continue, an upstream that does not read
 * (backpressure) and CONNECT tunnels are not timed out. Issue 4 (slow-loris clients).
 * Servers listen on 127.0.0.1 and are stopped by their test.
 */
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import type { Socket } from 'node:net';
import t, { type Test } from 'tap';
import { HttpProxy } from '../../src/capture/http-proxy.js';
import { echoServer } from '../forward/fixtures/fakes.js';
import { delay } from '../util/wait.js';
import { listen } from './early-response-helpers.js';
import { eventually, openClient, proxyFor, rawServer } from './http-proxy-raw.js';

/**
 * An origin (node:http) that reads the whole body before it answers `got <n>`, or with
 * `early`, sends its response head at once and echoes the body as it comes. `open` counts
 * its connections still open.
 */
async function origin(t: Test, early = false) {
  const server = createHttpServer((req, res) => {
    if (early) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders();
      req.on('data', (c: Buffer) => res.write(c));
      req.on('end', () => res.end());
      return;
    }
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => res.end(`got ${n}`));
  });
  const o = { port: 0, open: 0, server };
  server.on('connection', (s: Socket) => {
    o.open++;
    s.on('close', () => o.open--);
  });
  o.port = await listen(t, server);
  return o;
}

/** The proxy with `bodyTimeoutMs`, `tunnel.test` tunneled to `port`. */
async function setup(t: Test, port: number, bodyTimeoutMs: number) {
  const p = await proxyFor(t, { bodyTimeoutMs, responseTimeoutMs: 10_000 });
  p.tunnels.behaviour = { kind: 'connect', to: { 'tunnel.test': port } };
  return p;
}

const FRAMINGS = {
  length: { head: 'Content-Length: 10\r\n', part: 'hello', rest: 'world' },
  chunked: {
    head: 'Transfer-Encoding: chunked\r\n',
    part: '5\r\nhello\r\n',
    rest: '5\r\nworld\r\n0\r\n\r\n',
  },
};

for (const [framing, f] of Object.entries(FRAMINGS)) {
  t.test(`a body that stops coming (${framing}) gets 408 and frees the flow`, async (t) => {
    const up = await origin(t);
    const { port, flows } = await setup(t, up.port, 300);
    for (const host of [`direct.test:${up.port}`, 'tunnel.test']) {
      const c = await openClient(port, t);
      const t0 = Date.now();
      c.s.write(`POST http://${host}/up HTTP/1.1\r\nHost: x\r\n${f.head}\r\n${f.part}`);
      t.ok(await eventually(() => c.closed, 3000), `${host}: the proxy closes the connection`);
      const took = Date.now() - t0;
      t.match(c.got, /^HTTP\/1\.1 408 Request Timeout\r\n/, `${host}: 408`);
      t.match(c.got, /\r\nconnection: close\r\n/i, `${host}: Connection: close`);
      t.equal(
        c.got.slice(c.got.indexOf('\r\n\r\n') + 4),
        'request body stalled: no byte from the client for 0.3 s\n',
        `${host}: the body says why`,
      );
      t.ok(took >= 280, `${host}: not before the timeout (${took} ms)`);
      t.ok(await eventually(() => flows.activeCount === 0, 1000), `${host}: the flow ends`);
      const f0 = flows.list().at(-1);
      t.equal(f0?.status, 'Terminated', `${host}: terminated`);
      t.match(f0?.reason, /request body stalled: no byte from the client for 0\.3 s/);
      t.ok(await eventually(() => up.open === 0, 1000), `${host}: the upstream side is closed`);
    }
  });
}

t.test('a response under way is cut short when the body stops coming', async (t) => {
  const up = await origin(t, true);
  const { port, flows } = await setup(t, up.port, 300);
  for (const host of [`direct.test:${up.port}`, 'tunnel.test']) {
    const c = await openClient(port, t);
    c.s.write(`POST http://${host}/echo HTTP/1.1\r\nHost: x\r\n${FRAMINGS.length.head}\r\nhello`);
    t.ok(await eventually(() => c.got.includes('hello'), 3000), `${host}: the echo starts`);
    t.ok(await eventually(() => c.closed, 3000), `${host}: the proxy closes the connection`);
    t.match(c.got, /^HTTP\/1\.1 200 OK\r\n/, `${host}: the response it had`);
    t.notMatch(c.got, /408 Request Timeout/, `${host}: no 408 spliced into it`);
    t.ok(await eventually(() => flows.activeCount === 0, 1000), `${host}: the flow ends`);
    t.match(flows.list().at(-1)?.reason, /request body stalled/, `${host}: with the reason`);
    t.ok(await eventually(() => up.open === 0, 1000), `${host}: the upstream side is closed`);
  }
});

t.test('a slow but steady upload passes', async (t) => {
  const up = await origin(t);
  // A timeout ten times the pause between bytes: a loaded machine's stall of a few hundred
  // ms must not look like a stalled body (the test's timer and the proxy's share a loop).
  const { port } = await setup(t, up.port, 1000);
  for (const host of [`direct.test:${up.port}`, 'tunnel.test']) {
    const c = await openClient(port, t);
    // 25 bytes, one every 100 ms: 2.5 s in all, more than twice the timeout.
    c.s.write(`POST http://${host}/up HTTP/1.1\r\nHost: x\r\nContent-Length: 25\r\n\r\n`);
    for (let i = 0; i < 25 && !c.closed; i++) {
      await delay(100);
      c.s.write('x');
    }
    t.ok(await eventually(() => c.got.endsWith('got 25'), 3000), `${host}: the whole body went`);
    t.match(c.got, /^HTTP\/1\.1 200 OK\r\n/, `${host}: 200`);
    t.equal(c.closed, false, `${host}: the connection stays open`);
    c.s.destroy();
  }
});

t.test('a client awaiting 100 Continue is not timed out', async (t) => {
  // A raw origin that ignores Expect (no 100): the proxy sends its own after 1 s.
  const upPort = await rawServer(t, (s) => {
    let got = '';
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end >= 0 && got.length - end - 4 >= 10) {
        s.end('HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone');
      }
    });
  });
  const { port } = await setup(t, upPort, 300);
  const c = await openClient(port, t);
  c.s.write(
    `POST http://direct.test:${upPort}/up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n`,
  );
  t.ok(await eventually(() => c.got.includes('100 Continue'), 3000), 'the 100 comes');
  t.notMatch(c.got, /408 Request Timeout/, 'no 408 while the client waited for it');
  c.s.write('helloworld');
  t.ok(await eventually(() => c.got.endsWith('done'), 3000), 'then the answer');
  t.match(c.got, /HTTP\/1\.1 200 OK\r\n/);
});

t.test('an upstream that does not read for a while is not the client stalling', async (t) => {
  // The origin reads nothing for 1.2 s (four times the timeout): the proxy stops reading the
  // client's body (backpressure), and the client is not to blame for it.
  const size = 32 * 1024 * 1024;
  const upPort = await rawServer(t, (s) => {
    s.pause();
    setTimeout(() => {
      // The head, then the body counted to its end.
      let head = '';
      let body = -1;
      s.on('data', (b: Buffer) => {
        if (body < 0) {
          head += b.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          body = head.length - end - 4;
        } else body += b.length;
        if (body >= size) {
          s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
        }
      });
      s.resume();
    }, 1200);
  });
  const { port } = await setup(t, upPort, 300);
  const c = await openClient(port, t);
  c.s.write(
    `POST http://direct.test:${upPort}/up HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`,
  );
  const chunk = Buffer.alloc(1024 * 1024, 1);
  for (let i = 0; i < size / chunk.length && !c.closed; i++) {
    if (!c.s.write(chunk)) await Promise.race([once(c.s, 'drain'), delay(5000)]);
  }
  t.ok(await eventually(() => c.got.endsWith('ok') || c.closed, 10_000), 'an answer');
  t.match(c.got, /^HTTP\/1\.1 200 OK\r\n/, 'the upload went through');
});

t.test('0 turns the timeout off', async (t) => {
  const up = await origin(t);
  const { port } = await setup(t, up.port, 0);
  const c = await openClient(port, t);
  c.s.write(
    `POST http://direct.test:${up.port}/up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello`,
  );
  await delay(700);
  t.equal(c.got, '', 'no answer while the body is awaited');
  c.s.write('world');
  t.ok(await eventually(() => c.got.endsWith('got 10'), 3000), 'the rest goes through');
});

t.test('the default is 60 s', async (t) => {
  const p = new HttpProxy({ forwarder: {} as never, port: 0 });
  t.equal(p.bodyTimeoutMs, 60_000);
});

t.test('CONNECT tunnels have no body timeout (idle is fine)', async (t) => {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const { port, flows } = await setup(t, echo.port, 300);
  const c = await openClient(port, t);
  c.s.write(`CONNECT direct.test:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\nhalf`);
  t.ok(await eventually(() => c.got.includes('half'), 3000), 'the tunnel is up');
  await delay(1000);
  t.equal(c.closed, false, 'still open after three times the timeout');
  c.s.write('ping');
  t.ok(await eventually(() => c.got.endsWith('halfping'), 3000), 'and still carries bytes');
  t.equal(flows.activeCount, 1);
});

t.test('the 504 says the response timeout in seconds, as the option does', async (t) => {
  const upPort = await rawServer(t, (s) => {
    s.resume();
  });
  const { port } = await proxyFor(t, { responseTimeoutMs: 300 });
  const c = await openClient(port, t);
  c.s.write(`GET http://direct.test:${upPort}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
  t.ok(await eventually(() => /\r\n\r\n.+\n$/s.test(c.got), 3000), 'an answer');
  t.match(c.got, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  t.equal(
    c.got.slice(c.got.indexOf('\r\n\r\n') + 4),
    `no response from direct.test:${upPort} within 0.3 s\n`,
  );
});
