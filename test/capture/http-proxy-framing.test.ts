/**
 * Plain HTTP through the proxy, where message framing is at stake (found by fuzzing a
 * running `gsa-emu up`): every response keeps its own framing on a kept-alive client
 * connection, a request body is never sent upstream unframed, a CONNECT pipelined behind
 * requests is answered after them, a body the proxy cannot parse ends its request at once,
 * and interim responses cannot grow the proxy's memory. Raw bytes on both sides; every
 * server listens on 127.0.0.1 and is stopped by its test.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { proxyFor, rawClient, rawUpstream } from './http-proxy-raw.js';

/** Two requests in one write: the second must get its own, intact response. */
const twoRequests = (port: number, first: string) =>
  `GET http://direct.test:${port}${first} HTTP/1.1\r\nHost: x\r\n\r\n` +
  `GET http://direct.test:${port}/second HTTP/1.1\r\nHost: x\r\n\r\n`;

t.test('an upstream Content-Length with Transfer-Encoding: the length is dropped', async (t) => {
  const up = await rawUpstream(t, (path, s: Socket) => {
    if (path === '/second') s.end('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
    else
      s.end(
        'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      );
  });
  const { port } = await proxyFor(t);
  const r = await rawClient(port, twoRequests(up.port, '/first'), (g) => g.endsWith('second'));
  const [first = '', second = ''] = r.got.split(/(?=HTTP\/1\.1 \d{3} )/);
  t.notMatch(first, /content-length/i, 'no Content-Length on the chunked response');
  t.match(first, /transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n$/i);
  t.match(second, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nsecond$/, 'the second response intact');
});

t.test('an upstream coding without chunked (read to close) is framed with chunked', async (t) => {
  const up = await rawUpstream(t, (path, s: Socket) => {
    if (path === '/second') s.end('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
    else s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzzz');
  });
  const { port } = await proxyFor(t);
  const r = await rawClient(port, twoRequests(up.port, '/first'), (g) => g.endsWith('second'));
  const [first = '', second = ''] = r.got.split(/(?=HTTP\/1\.1 \d{3} )/);
  t.match(first, /transfer-encoding: gzip, chunked\r\n/i, 'the coding kept, chunked added');
  t.match(first, /\r\n\r\n4\r\nzzzz\r\n0\r\n\r\n$/, 'the body in chunks');
  t.match(second, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nsecond$/, 'the second response intact');
});

t.test('Content-Length named in Connection still frames the request body', async (t) => {
  // The upstream records every byte of the connection.
  let received = '';
  const server = createServer((s) => {
    s.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      if (received.includes('\r\n\r\n')) s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const upPort = (server.address() as { port: number }).port;
  const smuggled = `GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1:${upPort}\r\n\r\n`;
  const { port } = await proxyFor(t);
  const r = await rawClient(
    port,
    `GET http://direct.test:${upPort}/get HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n` +
      `Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
    (g) => g.endsWith('ok'),
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK/);
  t.match(received, new RegExp(`content-length: ${smuggled.length}\\r\\n`, 'i'), 'framed');
  const head = received.slice(0, received.indexOf('\r\n\r\n') + 4);
  t.equal(received.slice(head.length), smuggled, 'the body follows as the body of that request');
});

t.test('an http URI with an empty host is a 400', async (t) => {
  const up = await rawUpstream(t, (_p, s: Socket) => s.end('HTTP/1.1 200 OK\r\n\r\n'));
  const { port } = await proxyFor(t);
  for (const target of [`http:///127.0.0.1:${up.port}/foo`, `http://@/x`, `http://:80/x`]) {
    const r = await rawClient(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, (g) =>
      g.includes('\r\n\r\n'),
    );
    t.match(r.got, /^HTTP\/1\.1 400 /, target);
    t.match(r.got, /empty host|bad request target/, target);
  }
  t.equal(up.heads.length, 0, 'nothing reached the upstream');
});

t.test('a CONNECT pipelined behind requests is answered after them', async (t) => {
  const up = await rawUpstream(t, (path, s: Socket) => {
    // The first answer comes late: the CONNECT behind it must wait for it.
    const body = `answer(${path})`;
    setTimeout(
      () => s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
      path === '/first' ? 300 : 0,
    );
  });
  const { port } = await proxyFor(t);
  const r = await rawClient(
    port,
    `GET http://direct.test:${up.port}/first HTTP/1.1\r\nHost: x\r\n\r\n` +
      `GET http://direct.test:${up.port}/second HTTP/1.1\r\nHost: x\r\n\r\n` +
      `CONNECT direct.test:${up.port} HTTP/1.1\r\nHost: x\r\n\r\n` +
      'GET /inside HTTP/1.1\r\nHost: x\r\n\r\n',
    (g) => g.endsWith('answer(/inside)'),
  );
  const order = [...r.got.matchAll(/HTTP\/1\.1 200 [A-Za-z ]+|answer\(\/\w+\)/g)].map((m) => m[0]);
  t.same(order, [
    'HTTP/1.1 200 OK',
    'answer(/first)',
    'HTTP/1.1 200 OK',
    'answer(/second)',
    'HTTP/1.1 200 Connection Established',
    'HTTP/1.1 200 OK',
    'answer(/inside)',
  ]);
});

t.test('a request body the proxy cannot parse ends its request at once (400)', async (t) => {
  const up = await rawUpstream(t, () => {}); // never answers: only the body's end would
  const { port } = await proxyFor(t, { bodyTimeoutMs: 30_000 });
  for (const bad of ['zz\r\nabc\r\n', 'ffffffffffffffffff\r\n']) {
    const r = await rawClient(
      port,
      `POST http://direct.test:${up.port}/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `3\r\nabc\r\n${bad}`,
      (g) => g.includes('\r\n\r\n'),
      10_000,
    );
    t.match(
      r.got,
      /^HTTP\/1\.1 400 /,
      `${JSON.stringify(bad)}: 400, not a 408 after the body timeout`,
    );
    t.match(r.got, /bad request body/);
  }
});

t.test('interim responses to a client that does not read do not pile up', async (t) => {
  const burst = 'HTTP/1.1 102 Processing\r\n\r\n'.repeat(2000);
  let upSock: Socket | null = null;
  const up = await rawUpstream(t, (_p, s: Socket) => {
    upSock = s;
    // 200 bursts of 2,000 interim responses (about 11 MB) as fast as the proxy takes them.
    let n = 0;
    const more = (): void => {
      while (n < 200 && !s.destroyed) {
        n++;
        if (!s.write(burst)) return void s.once('drain', more);
      }
      if (!s.destroyed) s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    };
    more();
  });
  // The response timeout (30 s by default) is not what this test is about; on a loaded
  // host the 11 MB can take longer than that.
  const { proxy, port } = await proxyFor(t, { responseTimeoutMs: 600_000 });
  const clientSide: Socket[] = [];
  proxy.server.on('connection', (s: Socket) => clientSide.push(s));
  // A client that sends its request and does not read.
  const { connect } = await import('node:net');
  const c = connect({ port, host: '127.0.0.1' });
  c.on('error', () => {});
  c.pause();
  t.teardown(() => c.destroy());
  await once(c, 'connect');
  c.write(`GET http://direct.test:${up.port}/slow HTTP/1.1\r\nHost: x\r\n\r\n`);
  let most = 0;
  // Bounded by progress, not by a fixed time: the loop ends when the upstream has sent
  // everything, when the proxy has taken nothing from it for 15 s (a stall: the test
  // fails), or after 100 s in all. A loaded host once needed more than 30 s for the 11 MB.
  const flushed = (): number => {
    const s = upSock as Socket | null;
    return s ? s.bytesWritten - s.writableLength : 0;
  };
  const t0 = Date.now();
  let last = flushed();
  let lastMoved = Date.now();
  while (!(upSock as Socket | null)?.writableEnded) {
    const now = Date.now();
    if (now - lastMoved > 15_000 || now - t0 > 100_000) break;
    for (const s of clientSide) most = Math.max(most, s.writableLength);
    await new Promise((r) => setTimeout(r, 5));
    const f = flushed();
    if (f !== last) {
      last = f;
      lastMoved = Date.now();
    }
  }
  t.ok(
    (upSock as Socket | null)?.writableEnded,
    `the upstream sent all it had (${last} bytes taken in ${Date.now() - t0} ms)`,
  );
  t.ok(most <= 64 * 1024, `the proxy held at most ${most} bytes for the client (11 MB were sent)`);
});
