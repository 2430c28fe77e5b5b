/**
 * `Expect: 100-continue` through the plain HTTP proxy: the destination is classified (and
 * opened) before the client is told to send its body. A request that will be refused gets
 * its final status with no `100 Continue` and closes the connection (its body was never
 * sent); an allowed one gets `100 Continue`, then the upstream's response. Raw sockets on
 * 127.0.0.1: the headers go first, and what comes back is read before any body is sent.
 */
import { once } from 'node:events';
import { createServer as httpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { type HttpForwarder, HttpProxy } from '../../src/capture/http-proxy.js';
import { decision, fakeForwarder } from '../forward/fixtures/fakes.js';

const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });
const BLOCK = decision({ action: 'block', channel: 'internet', ruleId: 'r-42' });

async function proxyFor(t: Test, opts: Partial<ConstructorParameters<typeof HttpProxy>[0]> = {}) {
  const { fwd: forwarder, classifier } = fakeForwarder(
    [{ host: 'casino.test', decision: BLOCK }, { decision: BYPASS }],
    { 'direct.test': '127.0.0.1' },
    { openTimeoutMs: 300 },
  );
  // Opening takes a while, as through a real tunnel; `opened` counts the flows it returned.
  const state = { opened: 0 };
  const slow: HttpForwarder = {
    connectTcp: async (m) => {
      await new Promise((r) => setTimeout(r, 100));
      const r = await forwarder.connectTcp(m);
      state.opened++;
      return r;
    },
    relay: (a, b, h) => forwarder.relay(a, b, h),
  };
  const proxy = new HttpProxy({ forwarder: slow, port: 0, ...opts });
  const { port } = await proxy.listen();
  t.teardown(() => proxy.close());
  return { proxy, port, classifier, state };
}

/** An upstream that answers with the body it received. */
async function echoUpstream(t: Test) {
  const bodies: string[] = [];
  const server = httpServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      bodies.push(body);
      res.end(`got ${body}`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as { port: number }).port, bodies };
}

/** A raw connection: what it has received so far, and whether the proxy closed it. */
async function open(port: number) {
  const s: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  await once(s, 'connect');
  const st = { got: '', ended: false, s };
  s.on('data', (c: Buffer) => {
    st.got += c.toString('latin1');
  });
  s.once('end', () => {
    st.ended = true;
  });
  s.once('close', () => {
    st.ended = true;
  });
  return st;
}

async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

const BODY = 'x'.repeat(1000);
const head = (target: string, extra = ''): string =>
  `POST ${target} HTTP/1.1\r\nHost: h\r\nContent-Length: ${BODY.length}\r\n` +
  `Expect: 100-continue\r\n${extra}\r\n`;

t.test('a blocked destination: 403 without 100 Continue, before any body', async (t) => {
  const { port, classifier } = await proxyFor(t);
  const c = await open(port);
  c.s.write(head('http://casino.test/upload'));
  t.ok(await until(() => c.got.includes('\r\n\r\n')), 'an answer to the headers alone');
  t.notMatch(c.got, /100 Continue/, 'never told to send the body');
  t.match(c.got, /^HTTP\/1\.1 403 Forbidden\r\n/, 'the final status first');
  t.match(c.got, /connection: close/i, 'closes: the unsent body cannot be told apart');
  t.match(c.got, /Blocked by Global Secure Access[\s\S]*r-42/);
  t.ok(await until(() => c.ended), 'the proxy closes the connection');
  t.equal(classifier.seen.length, 1, 'classified once');
  c.s.destroy();
});

t.test('a destination that does not resolve: 502 without 100 Continue', async (t) => {
  const { port } = await proxyFor(t);
  const c = await open(port);
  c.s.write(head('http://nowhere.test/upload'));
  t.ok(await until(() => c.got.includes('\r\n\r\n')));
  t.notMatch(c.got, /100 Continue/);
  t.match(c.got, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  c.s.destroy();
});

t.test('refusals decided on the head alone: no 100 Continue either', async (t) => {
  const { port } = await proxyFor(t, { host: '127.0.0.1', auth: { username: 'u', password: 'p' } });
  let c = await open(port);
  c.s.write(head('http://direct.test/upload'));
  t.ok(await until(() => c.got.includes('\r\n\r\n')));
  t.notMatch(c.got, /100 Continue/);
  t.match(c.got, /^HTTP\/1\.1 407 /, 'credentials first');
  c.s.destroy();
  const auth = `Proxy-Authorization: Basic ${Buffer.from('u:p').toString('base64')}\r\n`;
  c = await open(port);
  c.s.write(head('https://direct.test/upload', auth));
  t.ok(await until(() => c.got.includes('\r\n\r\n')));
  t.notMatch(c.got, /100 Continue/);
  t.match(c.got, /^HTTP\/1\.1 400 /, 'https:// without CONNECT');
  c.s.destroy();
});

t.test('an allowed destination: 100 Continue, then the upstream answer', async (t) => {
  const up = await echoUpstream(t);
  const { port, classifier, state } = await proxyFor(t);
  const c = await open(port);
  c.s.write(head(`http://direct.test:${up.port}/upload`));
  t.ok(await until(() => c.got.includes('\r\n\r\n')), 'an answer to the headers alone');
  t.equal(state.opened, 1, 'the flow was open before the 100');
  t.equal(classifier.seen.length, 1, 'classified before the 100');
  t.match(c.got, /^HTTP\/1\.1 100 Continue\r\n\r\n$/, 'told to send the body, nothing else');
  c.s.write(BODY);
  t.ok(await until(() => c.got.endsWith(`got ${BODY}`)), 'the upstream got the body');
  t.match(c.got, /HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  t.match(c.got, /x-gsa-connection-id: [0-9a-f-]{36}/);
  t.same(up.bodies, [BODY]);
  // Keep-alive as without Expect: a second request on the same connection.
  const before = c.got.length;
  c.s.write(`GET http://direct.test:${up.port}/again HTTP/1.1\r\nHost: h\r\n\r\n`);
  t.ok(await until(() => c.got.slice(before).endsWith('got ')), 'the connection is reused');
  c.s.destroy();
});

t.test(
  'the upstream decides: its 413 before the body goes to the client without a 100',
  async (t) => {
    // As an origin that refuses uploads on their headers: no 100 Continue, a final 413.
    const server = httpServer();
    server.on('checkContinue', (_req, res) => {
      res.writeHead(413, { 'content-length': '3', connection: 'close' }).end('big');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    });
    const { port: up } = server.address() as { port: number };
    const { port } = await proxyFor(t);
    const c = await open(port);
    c.s.write(head(`http://direct.test:${up}/upload`));
    t.ok(await until(() => c.got.endsWith('big')), "the upstream's answer to the headers alone");
    t.notMatch(c.got, /100 Continue/, 'never told to send the body');
    t.match(c.got, /^HTTP\/1\.1 413 /);
    c.s.destroy();
  },
);

t.test('an upstream that ignores Expect: the proxy says 100 Continue after 1 s', async (t) => {
  // A raw upstream that never says 100 Continue (HTTP/1.0 servers and many others).
  const raw = createServer((s) => {
    s.on('error', () => {});
    let got = '';
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      if (got.endsWith(BODY)) s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  t.teardown(() => new Promise<void>((r) => raw.close(() => r())));
  const { port: rp } = raw.address() as { port: number };
  const { port } = await proxyFor(t);
  const c = await open(port);
  c.s.write(head(`http://direct.test:${rp}/upload`));
  t.ok(await until(() => c.got.includes('100 Continue'), 2500), 'the 100 came anyway');
  c.s.write(BODY);
  t.ok(await until(() => c.got.endsWith('ok')), 'then the answer');
  c.s.destroy();
});

t.test('without Expect nothing changes: no 100 Continue', async (t) => {
  const up = await echoUpstream(t);
  const { port } = await proxyFor(t);
  const c = await open(port);
  c.s.write(
    `POST http://direct.test:${up.port}/p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab`,
  );
  t.ok(await until(() => c.got.endsWith('got ab')));
  t.notMatch(c.got, /100 Continue/);
  t.match(c.got, /^HTTP\/1\.1 200 OK\r\n/);
  c.s.destroy();
});
