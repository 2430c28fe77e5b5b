/**
 * Plain HTTP through the proxy, as the upstream's response shapes it (review of the plain
 * HTTP path, issue 4): large and many-field heads, bare-LF line ends, Via on both messages,
 * responses cut short, and the 403 body of a block by the edge. Raw bytes on both sides;
 * every server listens on 127.0.0.1 and is stopped by its test.
 */
import type { Socket } from 'node:net';
import t from 'tap';
import { ResetCode } from '../../src/tunnel/types.js';
import { proxyFor, rawClient, rawUpstream } from './http-proxy-raw.js';

const bigCookie = `sso=${'c'.repeat(20_000)}`;

t.test('a 20 KB response head is forwarded; maxResponseHeaderSize bounds it', async (t) => {
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.end(`HTTP/1.1 200 OK\r\nSet-Cookie: ${bigCookie}\r\nContent-Length: 2\r\n\r\nok`);
  });
  const { port } = await proxyFor(t);
  const req = `GET http://direct.test:${up.port}/login HTTP/1.1\r\nHost: x\r\n\r\n`;
  const r = await rawClient(port, req, (g) => /\r\n\r\n[\s\S]*(ok|\n)$/.test(g));
  t.match(r.got, /^HTTP\/1\.1 200 OK\r\n/, `status: ${r.got.split('\r\n')[0]}`);
  t.ok(r.got.includes(`\r\nset-cookie: ${bigCookie}\r\n`), 'the cookie arrives whole');

  const small = await proxyFor(t, { maxResponseHeaderSize: 8 * 1024 });
  const r2 = await rawClient(small.port, req, (g) => /\r\n\r\n[\s\S]*\n$/.test(g));
  t.match(r2.got, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*upstream error: Parse Error/);
});

t.test('every response header field is forwarded, as every request one is', async (t) => {
  const n = 1500;
  let fields = '';
  for (let i = 0; i < n; i++) fields += `x-f${i}: v\r\n`;
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.end(`HTTP/1.1 200 OK\r\n${fields}Content-Length: 2\r\n\r\nok`);
  });
  const { port } = await proxyFor(t);
  const r = await rawClient(
    port,
    `GET http://direct.test:${up.port}/many HTTP/1.1\r\nHost: x\r\n\r\n`,
    (g) => g.endsWith('\r\n\r\nok'),
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK\r\n/);
  const forwarded = (r.got.match(/\r\nx-f\d+: v/g) ?? []).length;
  t.equal(forwarded, n, `all ${n} fields (got ${forwarded})`);
});

t.test('a response with bare-LF line ends is relayed, not a 502', async (t) => {
  // `printf 'HTTP/1.1 200 OK\n\nhello' | nc -l`, embedded devices (RFC 9112 2.2).
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.end('HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\nhello');
  });
  const { port } = await proxyFor(t);
  const r = await rawClient(
    port,
    `GET http://direct.test:${up.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`,
    (g) => /\r\n\r\n[\s\S]+$/.test(g),
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK\r\n/, `status: ${r.got.split('\r\n')[0]}`);
  t.match(r.got, /\r\n\r\nhello$/, 'the body');
});

t.test('a field the lenient parse lets through but node cannot send is a 502', async (t) => {
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.end('HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok');
  });
  const { port, proxy } = await proxyFor(t);
  const r = await rawClient(
    port,
    `GET http://direct.test:${up.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`,
    (g) => /\r\n\r\n[\s\S]*\n$/.test(g),
  );
  t.match(r.got, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*upstream sent an invalid response/);
  t.equal(proxy.stats.internalErrors, 0, 'not taken for a bug of ours');
});

t.test('Via is added on the request and on the response, after any received', async (t) => {
  const up = await rawUpstream(t, (path, s: Socket) => {
    if (path === '/10') s.end('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok');
    else s.end('HTTP/1.1 200 OK\r\nVia: 1.1 origin-cache\r\nContent-Length: 2\r\n\r\nok');
  });
  const { port } = await proxyFor(t);
  const via = (head: string | undefined): string | undefined =>
    /\r\nvia: ([^\r]*)\r\n/i.exec(head ?? '')?.[1];
  const r = await rawClient(
    port,
    `GET http://direct.test:${up.port}/ HTTP/1.1\r\nHost: x\r\nVia: 1.1 corp-proxy\r\n\r\n`,
    (g) => g.endsWith('\r\n\r\nok'),
  );
  t.match(r.got, /^HTTP\/1\.1 200 OK\r\n/);
  t.equal(via(up.heads[0]), '1.1 corp-proxy, 1.1 gsa-emu', 'request');
  t.equal(via(r.got), '1.1 origin-cache, 1.1 gsa-emu', 'response');
  // The protocol is that of the message received: HTTP/1.0 on either side is "1.0".
  const r10 = await rawClient(port, `GET http://direct.test:${up.port}/10 HTTP/1.0\r\n\r\n`);
  t.equal(via(up.heads[1]), '1.0 gsa-emu', 'request from an HTTP/1.0 client');
  t.equal(via(r10.got), '1.0 gsa-emu', 'response from an HTTP/1.0 server');
});

t.test('an upstream response cut short is a reset for an HTTP/1.0 client', async (t) => {
  // The proxy sends such a client a close-delimited body: a FIN there would mean complete.
  const up = await rawUpstream(t, (path, s: Socket) => {
    if (path === '/chunked-cut') {
      // One chunk, then FIN without the last chunk: the message is incomplete.
      s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n');
    } else if (path === '/close-reset') {
      // A close-delimited body ended by an RST, not a FIN: incomplete as well.
      s.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789');
      setTimeout(() => s.resetAndDestroy(), 100);
    } else {
      // A close-delimited body ended by a FIN: complete.
      s.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789');
    }
  });
  const { port, tunnels } = await proxyFor(t);
  tunnels.behaviour = { kind: 'connect', to: { 'tunnel.test': up.port } };
  for (const host of [`direct.test:${up.port}`, 'tunnel.test']) {
    for (const path of ['/chunked-cut', '/close-reset', '/whole']) {
      const r = await rawClient(port, `GET http://${host}${path} HTTP/1.0\r\n\r\n`);
      const what = `${host}${path}`;
      t.match(r.got, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n0123456789$/, `${what}: the body`);
      t.notMatch(r.got, /content-length/i, `${what}: close-delimited to the client`);
      if (path === '/whole') t.equal(r.error, null, `${what}: a clean end`);
      else t.equal(r.error, 'ECONNRESET', `${what}: a reset, not a clean end`);
    }
  }
});

t.test('a 403 names the rule that blocked: the client rule, or the edge', async (t) => {
  const { port, tunnels } = await proxyFor(t);
  tunnels.behaviour = {
    kind: 'reset',
    code: ResetCode.BLOCKED,
    reason: 'web content filtering: tunnel.test is in blocked category gambling',
  };
  tunnels.up.private = false;
  const body = async (req: string): Promise<string> => {
    const r = await rawClient(port, req, (g) => /\r\n\r\n[\s\S]*\n$/.test(g));
    t.match(r.got, /^HTTP\/1\.1 403 Forbidden\r\n/, `${req.split(' ')[0]} ${req.split(' ')[1]}`);
    return r.got.slice(r.got.indexOf('\r\n\r\n') + 4);
  };
  for (const [get, connect] of [
    [
      'GET http://tunnel.test/ HTTP/1.1\r\nHost: x\r\n\r\n',
      'CONNECT tunnel.test:443 HTTP/1.1\r\n\r\n',
    ],
    [
      'GET http://casino.test/ HTTP/1.1\r\nHost: x\r\n\r\n',
      'CONNECT casino.test:443 HTTP/1.1\r\n\r\n',
    ],
    [
      'GET http://strict.test/ HTTP/1.1\r\nHost: x\r\n\r\n',
      'CONNECT strict.test:443 HTTP/1.1\r\n\r\n',
    ],
  ] as const) {
    const b = await body(get);
    t.equal(await body(connect), b, 'CONNECT: the same body');
    if (get.includes('tunnel.test')) {
      // The edge's filtering blocked: the acquire rule only forwarded the flow.
      const [head, ...rest] = b.split('\n');
      t.match(
        head,
        /^Blocked by Global Secure Access at the edge: .*blocked category gambling\)?$/,
      );
      t.same(rest, [
        'forwarded by rule: "Default Acquire rule 1" (acq-1)',
        'profile: Internet traffic forwarding profile',
        '',
      ]);
      t.notMatch(b, /^rule:/m, 'the acquire rule is not presented as the blocking one');
    } else if (get.includes('casino.test')) {
      t.same(b.split('\n'), [
        'Blocked by Global Secure Access: blocked by No gambling',
        'rule: "No gambling" (r-42)',
        'profile: Internet traffic forwarding profile',
        '',
      ]);
    } else {
      // Hardening: the channel is down and the rule's fallback is block.
      t.same(b.split('\n'), [
        'Blocked by Global Secure Access: private channel down: fallback block',
        'rule: "Private app 1" (pa-1)',
        'profile: Private access profile',
        '',
      ]);
    }
  }
});
