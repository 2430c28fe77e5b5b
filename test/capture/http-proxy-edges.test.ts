/**
 * The HTTP proxy against misbehaving upstreams and unusual but valid clients: bad status
 * lines, unsolicited 101, early answers, hangs, upgrades, chunked bodies on any method, the
 * request target as sent, pipelined garbage, half-closing clients, many headers, refused
 * CONNECTs whose client sent early bytes. Every server here listens on 127.0.0.1 and is
 * stopped by its test.
 */
import { once } from 'node:events';
import { createServer as httpServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { HttpProxy, originForm } from '../../src/capture/http-proxy.js';
import { decision, fakeForwarder } from '../forward/fixtures/fakes.js';
import { rawServer } from './http-proxy-raw.js';

const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });
const BLOCK = decision({ action: 'block', channel: 'internet', ruleId: 'r-42' });

async function proxyFor(t: Test, opts: Partial<ConstructorParameters<typeof HttpProxy>[0]> = {}) {
  const { fwd: forwarder } = fakeForwarder(
    [{ host: 'casino.test', decision: BLOCK }, { decision: BYPASS }],
    { 'direct.test': '127.0.0.1' },
    { openTimeoutMs: 300 },
  );
  const proxy = new HttpProxy({ forwarder, port: 0, ...opts });
  const { port } = await proxy.listen();
  t.teardown(() => proxy.close());
  return { proxy, port };
}

/**
 * An upstream speaking raw bytes, by path: `/s099` and `/del` send status lines node cannot
 * pass on, `/s101` switches protocols unasked, `/hang` never answers, `/closenow` closes at
 * once, `/early` answers 413 before reading the body; anything else 200 "ok <path>".
 */
function rawUpstream(t: Test): Promise<number> {
  return rawServer(t, (s) => {
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      const line = /^[A-Z]+ (\S+) HTTP\/1\.[01]\r\n/.exec(head);
      if (!line) return;
      s.off('data', onData);
      const path = line[1]!;
      const answer = (text: string): void => {
        s.end(text);
      };
      if (path === '/s099') answer('HTTP/1.1 099 Weird\r\ncontent-length: 2\r\n\r\nok');
      else if (path === '/del') answer('HTTP/1.1 200 O\x7fK\r\ncontent-length: 2\r\n\r\nok');
      else if (path === '/s101')
        s.write('HTTP/1.1 101 Switching\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\nxx');
      else if (path === '/hang') {
        // never answers
      } else if (path === '/closenow') s.destroy();
      else if (path === '/early') {
        answer('HTTP/1.1 413 Too Large\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbig');
      } else answer(`HTTP/1.1 200 OK\r\ncontent-length: ${3 + path.length}\r\n\r\nok ${path}`);
    };
    s.on('data', onData);
  });
}

/** A node:http upstream that records each request (method, target, headers, body). */
async function recordingUpstream(t: Test) {
  const seen: Array<{ method: string; url: string; headers: string[]; body: string }> = [];
  const server = httpServer({ maxHeaderSize: 64 * 1024 }, (req: IncomingMessage, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.rawHeaders, body });
      res.end(`got ${req.method} ${req.url} body=${body}`);
    });
  });
  server.maxHeadersCount = 0;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as { port: number }).port, seen };
}

/**
 * A raw client: sends each part (a function runs between parts, e.g. a pause), then waits
 * until `done(received)` holds, the server closes, or `waitMs` passes.
 */
async function client(
  port: number,
  parts: Array<string | Buffer | ((s: Socket) => unknown)>,
  done: (got: string) => boolean = () => false,
  waitMs = 3000,
): Promise<{ got: string; closed: boolean; ended: boolean }> {
  const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  await once(s, 'connect');
  let got = '';
  let closed = false;
  let ended = false;
  s.once('end', () => {
    ended = true;
  });
  s.on('data', (c: Buffer) => {
    got += c.toString('latin1');
  });
  s.once('close', () => {
    closed = true;
  });
  for (const p of parts) {
    if (typeof p === 'function') await p(s);
    else s.write(p);
  }
  const t0 = Date.now();
  while (!closed && !ended && !done(got) && Date.now() - t0 < waitMs) {
    await new Promise((r) => setTimeout(r, 10));
  }
  s.destroy();
  return { got, closed, ended };
}

const sleep = (ms: number) => () => new Promise((r) => setTimeout(r, ms));
const responses = (got: string): number => (got.match(/HTTP\/1\.1 \d{3} /g) ?? []).length;

t.test('originForm: the path and query as sent', async (t) => {
  t.equal(originForm("http://a.test/x/../y/%2e%2e/z?q='1'"), "/x/../y/%2e%2e/z?q='1'");
  t.equal(originForm('http://a.test'), '/');
  t.equal(originForm('http://a.test?x=1'), '/?x=1');
  t.equal(originForm('http://u:p@a.test:81/p#frag'), '/p');
  t.equal(originForm('http://[::1]:8080/v6'), '/v6');
});

t.test('OPTIONS for the whole server goes upstream as OPTIONS * (RFC 9112 3.2.4)', async (t) => {
  t.equal(originForm('http://a.test:81', 'OPTIONS'), '*');
  t.equal(originForm('http://a.test/', 'OPTIONS'), '/', 'a path is kept');
  t.equal(originForm('http://a.test?q', 'OPTIONS'), '/?q', 'so is a query');
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t);
  const r = await client(
    port,
    [`OPTIONS http://direct.test:${web.port} HTTP/1.1\r\nHost: x\r\n\r\n`],
    (g) => g.includes('body='),
  );
  t.match(r.got, /got OPTIONS \* body=$/, 'the origin saw OPTIONS *');
});

t.test(
  'Max-Forwards on OPTIONS and TRACE: 0 ends at the proxy, more goes on one less',
  async (t) => {
    const web = await recordingUpstream(t);
    const { port } = await proxyFor(t);
    for (const [method, status] of [
      ['OPTIONS', 200],
      ['TRACE', 501],
    ] as const) {
      const r = await client(
        port,
        [
          `${method} http://direct.test:${web.port}/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n`,
        ],
        (g) => g.includes('\r\n\r\n'),
      );
      t.match(r.got, new RegExp(`^HTTP/1\\.1 ${status} `), `${method} Max-Forwards 0: ${status}`);
    }
    t.equal(web.seen.length, 0, 'neither went upstream');
    const r = await client(
      port,
      [`TRACE http://direct.test:${web.port}/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n\r\n`],
      (g) => g.includes('body='),
    );
    t.match(r.got, /got TRACE \/mf/);
    const h = web.seen[0]?.headers ?? [];
    t.equal(h[h.findIndex((x) => x.toLowerCase() === 'max-forwards') + 1], '2', 'one less');
  },
);

t.test('an upstream status line node cannot send is a 502; the proxy lives on', async (t) => {
  const up = await rawUpstream(t);
  const { port } = await proxyFor(t);
  for (const path of ['/s099', '/del']) {
    const r = await client(
      port,
      [`GET http://direct.test:${up}${path} HTTP/1.1\r\nHost: x\r\n\r\n`],
      (g) => g.includes('\r\n\r\n'),
    );
    t.match(r.got, /^HTTP\/1\.1 502 Bad Gateway\r\n/, `${path}: 502`);
    t.match(r.got, /x-gsa-connection-id: [0-9a-f-]{36}/, `${path}: names the flow`);
    t.match(r.got, /upstream sent an invalid response/);
  }
  const ok = await client(
    port,
    [`GET http://direct.test:${up}/fine HTTP/1.1\r\nHost: x\r\n\r\n`],
    (g) => g.endsWith('ok /fine'),
  );
  t.match(ok.got, /^HTTP\/1\.1 200 OK/, 'still serving');
});

t.test('an unsolicited 101 from the upstream is a 502 at once', async (t) => {
  const up = await rawUpstream(t);
  const { port } = await proxyFor(t, { responseTimeoutMs: 10_000 });
  const t0 = Date.now();
  const r = await client(
    port,
    [`GET http://direct.test:${up}/s101 HTTP/1.1\r\nHost: x\r\n\r\n`],
    (g) => g.includes('\r\n\r\n'),
    5000,
  );
  t.match(r.got, /^HTTP\/1\.1 502 /);
  t.ok(Date.now() - t0 < 3000, `not after the response timeout (${Date.now() - t0} ms)`);
});

t.test('upstream failures: 502 and 504 name the flow; a 504 keeps the connection', async (t) => {
  const up = await rawUpstream(t);
  const { port } = await proxyFor(t, { responseTimeoutMs: 300 });
  let r = await client(
    port,
    [`GET http://direct.test:${up}/closenow HTTP/1.1\r\nHost: x\r\n\r\n`],
    (g) => g.includes('\r\n\r\n'),
  );
  t.match(r.got, /^HTTP\/1\.1 502 /);
  t.match(r.got, /x-gsa-connection-id: [0-9a-f-]{36}/, '502 names the flow');
  // Pipelined: the 504 for /hang, then /ok on the same connection.
  r = await client(
    port,
    [
      `GET http://direct.test:${up}/hang HTTP/1.1\r\nHost: x\r\n\r\n` +
        `GET http://direct.test:${up}/ok HTTP/1.1\r\nHost: x\r\n\r\n`,
    ],
    (g) => g.endsWith('ok /ok'),
  );
  t.match(r.got, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  t.match(r.got, /x-gsa-connection-id: [0-9a-f-]{36}/, '504 names the flow');
  t.match(r.got, /HTTP\/1\.1 200 OK[\s\S]*ok \/ok$/, 'the next request is answered too');
});

t.test('the response timeout runs from the end of the upload, not its start', async (t) => {
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t, { responseTimeoutMs: 300 });
  const parts: Array<string | ((s: Socket) => unknown)> = [
    `POST http://direct.test:${web.port}/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n`,
  ];
  for (const c of 'abcdefgh') parts.push(sleep(100), c);
  const r = await client(port, parts, (g) => g.includes('body=abcdefgh'));
  t.match(r.got, /^HTTP\/1\.1 200 OK/, 'an 800 ms upload with a 300 ms response timeout');
});

t.test('an answer before the whole body was read closes that connection', async (t) => {
  const up = await rawUpstream(t);
  const { port } = await proxyFor(t);
  const r = await client(
    port,
    [
      `POST http://direct.test:${up}/early HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n`,
      Buffer.alloc(65536, 0x61),
    ],
    () => false,
    5000,
  );
  t.match(r.got, /^HTTP\/1\.1 413 Too Large\r\n/);
  t.match(r.got, /\r\nconnection: close\r\n/i, 'says it closes');
  t.ok(r.ended, 'and closes (FIN)');
});

t.test('Upgrade: WebSocket is 501; h2c is ignored and the request goes on', async (t) => {
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t);
  let r = await client(
    port,
    [
      `GET http://direct.test:${web.port}/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
    ],
    (g) => g.includes('use CONNECT'),
  );
  t.match(r.got, /^HTTP\/1\.1 501 /);
  r = await client(
    port,
    [
      `GET http://direct.test:${web.port}/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    ],
    (g) => g.includes('got GET /h2c'),
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK/, 'h2c: answered over HTTP/1.1');
  const h = web.seen.find((s) => s.url === '/h2c')!.headers.map((x) => x.toLowerCase());
  t.notOk(h.includes('upgrade') || h.includes('http2-settings'), 'no Upgrade upstream');
  // Clients that go away right after an upgrade request do not take the proxy down.
  for (let i = 0; i < 5; i++) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    await once(s, 'connect');
    s.write(
      `GET http://direct.test:${web.port}/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
    );
    if (i % 2) s.resetAndDestroy();
    else s.destroy();
  }
  r = await client(
    port,
    [`GET http://direct.test:${web.port}/after HTTP/1.1\r\nHost: x\r\n\r\n`],
    (g) => g.includes('got GET /after'),
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK/, 'still serving');
});

t.test('a chunked body goes upstream framed, on any method; codings are kept', async (t) => {
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t);
  for (const method of ['DELETE', 'GET', 'OPTIONS', 'POST']) {
    const r = await client(
      port,
      [
        `${method} http://direct.test:${web.port}/${method} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      ],
      (g) => g.includes('body='),
    );
    t.match(
      r.got,
      new RegExp(`got ${method} /${method} body=hello$`),
      `${method}: the body arrived`,
    );
  }
  const r = await client(
    port,
    [
      'POST http://direct.test:' +
        web.port +
        '/gz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n',
    ],
    (g) => g.includes('body='),
  );
  t.match(r.got, /HTTP\/1\.1 200/);
  const gz = web.seen.find((s) => s.url === '/gz')!;
  const te = gz.headers[gz.headers.findIndex((x) => x.toLowerCase() === 'transfer-encoding') + 1];
  t.equal(te, 'gzip, chunked', 'the gzip coding is still named upstream');
});

t.test('the request target goes upstream as sent (RFC 9110 7.7)', async (t) => {
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t);
  const target = "/a/../b/%2e%2e/c?q='x'";
  const r = await client(
    port,
    [`GET http://direct.test:${web.port}${target} HTTP/1.1\r\nHost: x\r\n\r\n`],
    (g) => g.includes('body='),
  );
  t.match(r.got, /^HTTP\/1\.1 200/);
  t.equal(web.seen[0]?.url, target);
});

t.test(
  'garbage pipelined after a valid request: the valid response whole, then close',
  async (t) => {
    const web = await recordingUpstream(t);
    const { port } = await proxyFor(t);
    const r = await client(port, [
      `GET http://direct.test:${web.port}/first HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\x01\r\n\r\n`,
    ]);
    t.match(r.got, /^HTTP\/1\.1 200 OK[\s\S]*got GET \/first body=$/, 'only the valid response');
    t.equal(responses(r.got), 1);
    t.ok(r.ended, 'then closed (FIN)');
  },
);

t.test('a client that half-closes after its request gets the response', async (t) => {
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t);
  const r = await client(
    port,
    [`GET http://direct.test:${web.port}/half HTTP/1.1\r\nHost: x\r\n\r\n`, (s) => s.end()],
    () => false,
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK[\s\S]*got GET \/half body=$/);
  t.ok(r.ended, 'and the connection closes after it (FIN)');
});

t.test('every header field is forwarded; the head limit still holds', async (t) => {
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t);
  const head = (n: number): string => {
    let h = `GET http://direct.test:${web.port}/h${n} HTTP/1.1\r\nHost: x\r\n`;
    for (let i = 0; i < n; i++) h += `x${i}: v\r\n`;
    return `${h}\r\n`;
  };
  let r = await client(port, [head(1500)], (g) => g.includes('body='));
  t.match(r.got, /^HTTP\/1\.1 200/);
  const seen = web.seen.find((s) => s.url === '/h1500')!;
  t.equal(seen.headers.filter((x, i) => i % 2 === 0 && /^x\d+$/.test(x)).length, 1500, 'all 1,500');
  r = await client(port, [head(3000)], (g) => g.includes('\r\n\r\n'));
  t.match(r.got, /^HTTP\/1\.1 431 /, 'a 28 KB head is over the 16 KiB limit');
});

t.test('Proxy-Authorization: the scheme is case-insensitive', async (t) => {
  const web = await recordingUpstream(t);
  const { port } = await proxyFor(t, { auth: { username: 'u', password: 'p' } });
  const token = Buffer.from('u:p').toString('base64');
  for (const [value, status] of [
    [`Basic ${token}`, 200],
    [`basic ${token}`, 200],
    [`BASIC  ${token}`, 200],
    [`Basic ${Buffer.from('u:x').toString('base64')}`, 407],
    [`Bearer ${token}`, 407],
  ] as const) {
    const r = await client(
      port,
      [
        `GET http://direct.test:${web.port}/a HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${value}\r\n\r\n`,
      ],
      (g) => g.includes('\r\n\r\n'),
    );
    t.match(r.got, new RegExp(`^HTTP/1\\.1 ${status} `), `${value.split(' ')[0]}: ${status}`);
  }
});

t.test('a refused CONNECT whose client sent bytes early still closes', async (t) => {
  const { port, proxy } = await proxyFor(t);
  for (let i = 0; i < 3; i++) {
    const r = await client(
      port,
      [
        'CONNECT casino.test:443 HTTP/1.1\r\nHost: casino.test:443\r\n\r\n',
        sleep(5),
        '\x16\x03\x01 early',
        (s) => s.end(),
      ],
      (g) => g.includes('rule:'),
    );
    t.match(r.got, /^HTTP\/1\.1 403 Forbidden/);
  }
  const t0 = Date.now();
  let n = -1;
  while (n !== 0 && Date.now() - t0 < 3000) {
    n = await new Promise<number>((r) => proxy.server.getConnections((_e, c) => r(c)));
    if (n !== 0) await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(n, 0, 'no connection held');
});
