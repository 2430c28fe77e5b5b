/**
 * Plain HTTP through the proxy: interim responses (102, 103) and trailer fields, which a
 * proxy forwards (RFC 9110 15.2, 6.5). Raw bytes on both sides; every server listens on
 * 127.0.0.1 and is stopped by its test.
 */
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { Socket } from 'node:net';
import t from 'tap';
import { proxyFor, rawClient, rawUpstream } from './http-proxy-raw.js';

const CHUNKED_WITH_TRAILER =
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n' +
  '2\r\nok\r\n0\r\nX-Checksum: abc123\r\n\r\n';

t.test('103 Early Hints and 102 Processing reach the client before the response', async (t) => {
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.end(
      'HTTP/1.1 102 Processing\r\n\r\n' +
        'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n' +
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    );
  });
  const { port } = await proxyFor(t);
  const r = await rawClient(
    port,
    `GET http://direct.test:${up.port}/page HTTP/1.1\r\nHost: x\r\n\r\n`,
    (g) => g.endsWith('\r\n\r\nok'),
  );
  const statuses = [...r.got.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]);
  t.same(statuses, ['102', '103', '200'], `statuses in order: ${statuses.join(', ')}`);
  t.match(r.got, /103 Early Hints\r\nLink: <\/style\.css>; rel=preload; as=style\r\n\r\n/i);
  t.match(r.got, /\r\n\r\nok$/, 'the body');
});

t.test('each interim response starts the response timeout again', async (t) => {
  // 15 x 102 Processing, 100 ms apart (1.5 s in all, past the 1 s timeout), then the
  // response; on /stall 3 of them and then nothing (the timeout still ends that one).
  const timers = new Set<NodeJS.Timeout>();
  t.teardown(() => {
    for (const x of timers) clearTimeout(x);
  });
  const up = await rawUpstream(t, (path, s: Socket) => {
    const count = path === '/stall' ? 3 : 15;
    let sent = 0;
    const next = (): void => {
      if (s.destroyed) return;
      if (sent === count) {
        if (path !== '/stall') s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        return;
      }
      sent++;
      s.write('HTTP/1.1 102 Processing\r\n\r\n');
      const x = setTimeout(() => {
        timers.delete(x);
        next();
      }, 100);
      timers.add(x);
    };
    next();
  });
  const { port } = await proxyFor(t, { responseTimeoutMs: 1000 });
  for (const v of ['1.1', '1.0']) {
    const t0 = Date.now();
    const r = await rawClient(
      port,
      `GET http://direct.test:${up.port}/long HTTP/${v}\r\nHost: x\r\n\r\n`,
      (g) => g.endsWith('\r\n\r\nok') || /\b50\d /.test(g),
      15_000,
    );
    const statuses = [...r.got.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)].map((m) => m[1]);
    t.equal(statuses.at(-1), '200', `HTTP/${v}: the response after ${Date.now() - t0} ms`);
    // An HTTP/1.0 client gets no 1xx, but its wait is started again all the same.
    t.equal(statuses.length, v === '1.1' ? 16 : 1, `HTTP/${v}: statuses ${statuses.join(' ')}`);
  }
  const stalled = await rawClient(
    port,
    `GET http://direct.test:${up.port}/stall HTTP/1.1\r\nHost: x\r\n\r\n`,
    (g) => /\b504 /.test(g) && g.endsWith('\n'),
    15_000,
  );
  t.match(stalled.got, /HTTP\/1\.1 504 Gateway Timeout\r\n/, 'silence after the interims: 504');
});

t.test('no 1xx goes to an HTTP/1.0 client; a 103 with a bad field is dropped', async (t) => {
  const up = await rawUpstream(t, (path, s: Socket) => {
    const hint =
      path === '/bad'
        ? 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nX-Bad: a\x01b\r\n\r\n'
        : 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n';
    s.end(`${hint}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`);
  });
  const { port } = await proxyFor(t);
  const old = await rawClient(port, `GET http://direct.test:${up.port}/old HTTP/1.0\r\n\r\n`, (g) =>
    g.endsWith('\r\n\r\nok'),
  );
  t.match(old.got, /^HTTP\/1\.[01] 200 OK\r\n/, 'HTTP/1.0: the final response first');
  t.notMatch(old.got, /103/, 'and no 103');
  const bad = await rawClient(
    port,
    `GET http://direct.test:${up.port}/bad HTTP/1.1\r\nHost: x\r\n\r\n`,
    (g) => g.endsWith('\r\n\r\nok'),
  );
  t.match(bad.got, /^HTTP\/1\.1 200 OK\r\n/, 'a 103 node will not send is dropped, not a 502');
});

t.test("the upstream's trailer fields reach an HTTP/1.1 client", async (t) => {
  const up = await rawUpstream(t, (_path, s: Socket) => s.end(CHUNKED_WITH_TRAILER));
  const { port } = await proxyFor(t);
  const r = await rawClient(
    port,
    `GET http://direct.test:${up.port}/sum HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n`,
    (g) => g.endsWith('\r\n\r\n') && g.includes('0\r\n'),
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(r.got, /\r\ntrailer: X-Checksum\r\n/i, 'the Trailer field is kept');
  t.match(
    r.got,
    /\r\n0\r\nX-Checksum: abc123\r\n\r\n$/,
    `trailer forwarded: ${JSON.stringify(r.got.slice(-60))}`,
  );
  t.match(up.heads[0] ?? '', /\r\nte: trailers\r\n/i, "the client's TE: trailers goes upstream");
  t.match(up.heads[0] ?? '', /\r\nconnection: keep-alive, te\r\n/i, 'named in Connection');
});

t.test("a request's trailer fields reach the upstream", async (t) => {
  let trailers: Record<string, string> | null = null;
  let body = '';
  const server = createServer((req, res) => {
    req.setEncoding('latin1');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      trailers = { ...req.trailers } as Record<string, string>;
      res.end('done');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const { port: upPort } = server.address() as { port: number };
  const { port } = await proxyFor(t);
  const got = await new Promise<string>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: `http://direct.test:${upPort}/upload`,
      headers: { host: `direct.test:${upPort}`, trailer: 'X-Digest' },
      agent: false,
    });
    req.on('response', (res) => {
      let b = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => {
        b += c;
      });
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.write('hello');
    req.addTrailers({ 'X-Digest': 'sha-256=abc' });
    req.end();
  });
  t.equal(got, 'done');
  t.equal(body, 'hello');
  t.same(trailers, { 'x-digest': 'sha-256=abc' }, 'the trailer arrived upstream');
});

t.test('a Trailer field on a request without chunked framing: no crash, not sent on', async (t) => {
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  const { port } = await proxyFor(t);
  for (const req of [
    `GET http://direct.test:${up.port}/get HTTP/1.1\r\nHost: x\r\nTrailer: X-Foo\r\n\r\n`,
    `POST http://direct.test:${up.port}/post HTTP/1.1\r\nHost: x\r\nTrailer: X-Foo\r\nContent-Length: 2\r\n\r\nhi`,
  ]) {
    const r = await rawClient(port, req, (g) => g.endsWith('\r\n\r\nok'));
    t.match(r.got, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/, `answered: ${req.slice(0, 4)}`);
  }
  t.equal(up.heads.length, 2, 'both went upstream');
  for (const h of up.heads) t.notMatch(h, /\r\ntrailer:/i, 'without the Trailer field');
});

t.test('a Trailer field on a response node does not chunk: dropped, not a 502', async (t) => {
  const up = await rawUpstream(t, (path, s: Socket) => {
    if (path === '/head') s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTrailer: X-Sum\r\n\r\n');
    else if (path === '/length')
      s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTrailer: X-Sum\r\n\r\nok');
    else s.end(CHUNKED_WITH_TRAILER);
  });
  const { port } = await proxyFor(t);
  const cases: Array<[string, string, RegExp]> = [
    ['HTTP/1.0 client', `GET http://direct.test:${up.port}/old HTTP/1.0\r\n\r\n`, /\r\n\r\nok$/],
    ['HEAD', `HEAD http://direct.test:${up.port}/head HTTP/1.1\r\nHost: x\r\n\r\n`, /\r\n\r\n$/],
    [
      'Content-Length',
      `GET http://direct.test:${up.port}/length HTTP/1.1\r\nHost: x\r\n\r\n`,
      /\r\n\r\nok$/,
    ],
  ];
  for (const [name, req, end] of cases) {
    const r = await rawClient(port, req, (g) => end.test(g));
    t.match(r.got, /^HTTP\/1\.[01] 200 OK\r\n/, `${name}: 200`);
    t.match(r.got, end, `${name}: the whole response`);
    t.notMatch(r.got, /\r\ntrailer:/i, `${name}: without the Trailer field`);
  }
});
