import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { SocksClient } from 'socks';
import t, { type Test } from 'tap';
import {
  encodeReply,
  encodeUdpHeader,
  parseUdpHeader,
  Reply,
  type Socks5Msg,
  Socks5Parser,
  Socks5Server,
} from '../../src/capture/socks5.js';
import { PROTO_UDP } from '../../src/classify/types.js';
import { OpenRelayError } from '../../src/errors.js';
import {
  closedPort,
  decision,
  echoServer,
  fakeForwarder,
  udpEcho,
} from '../forward/fixtures/fakes.js';
import { udpApp } from '../util/socks-udp.js';
import { brokenForwarder, warningLog } from './broken.js';
import { checkConnectionLimit } from './stalled.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function drain(p: Socks5Parser): Socks5Msg[] {
  const out: Socks5Msg[] = [];
  for (;;) {
    const m = p.next();
    if (m.type === 'need-more') return out;
    out.push(m);
    if (m.type === 'greeting') p.state = 'request';
    if (m.type === 'invalid' || m.type === 'request') return out;
  }
}

t.test('parser: hex fixtures', async (t) => {
  let p = new Socks5Parser();
  p.push(hex('05 02 00 02'));
  t.same(p.next(), { type: 'greeting', methods: [0, 2] });

  p = new Socks5Parser();
  p.state = 'auth';
  p.push(hex('01 04 75736572 06 736563726574'));
  t.same(p.next(), { type: 'auth', username: 'user', password: 'secret' });

  const req = (h: string): Socks5Msg => {
    const q = new Socks5Parser();
    q.state = 'request';
    q.push(hex(h));
    return q.next();
  };
  t.same(req('05 01 00 01 7f000001 0050'), {
    type: 'request',
    cmd: 1,
    atyp: 1,
    host: null,
    ip: '127.0.0.1',
    port: 80,
  });
  t.same(req('05 01 00 04 00000000000000000000000000000001 01bb'), {
    type: 'request',
    cmd: 1,
    atyp: 4,
    host: null,
    ip: '::1',
    port: 443,
  });
  t.same(req('05 01 00 03 15 6f75746c6f6f6b2e6f66666963653336352e636f6d 01bb'), {
    type: 'request',
    cmd: 1,
    atyp: 3,
    host: 'outlook.office365.com',
    ip: null,
    port: 443,
  });
  // A domain that is an address literal is treated as an address.
  t.same(req('05 01 00 03 09 31302e312e322e3334 0d3d'), {
    type: 'request',
    cmd: 1,
    atyp: 3,
    host: null,
    ip: '10.1.2.34',
    port: 3389,
  });
  t.same(req('05 03 00 01 00000000 0000'), {
    type: 'request',
    cmd: 3,
    atyp: 1,
    host: null,
    ip: '0.0.0.0',
    port: 0,
  });
  t.same(req('05 01 00 05 00'), {
    type: 'invalid',
    reply: Reply.ADDRESS_TYPE_NOT_SUPPORTED,
    reason: 'address type 5',
  });
  t.match(req('05 01 00 03 00 0050'), { type: 'invalid', reply: Reply.GENERAL_FAILURE });
  t.match(
    req('05 01 00 03 03 610a62 0050'),
    { type: 'invalid', reply: Reply.GENERAL_FAILURE },
    'control char in name',
  );
  t.match(req('04 01 00 50 7f000001 00'), { type: 'invalid', reply: null });

  p = new Socks5Parser();
  p.push(hex('04 01 00 50 7f000001 00'));
  t.match(p.next(), { type: 'invalid', reply: null }, 'SOCKS4 greeting closed silently');
  p = new Socks5Parser();
  p.push(hex('05 00'));
  t.match(p.next(), { type: 'invalid', reply: null }, 'no methods');
  p = new Socks5Parser();
  p.state = 'auth';
  p.push(hex('01 00 00'));
  t.match(p.next(), { type: 'invalid' }, 'empty username');
});

t.test('parser: byte-at-a-time equals whole, pipelined data is kept', async (t) => {
  const whole = hex('05 01 00  05 01 00 03 0b 6578616d706c652e636f6d 0050');
  const data = Buffer.from('GET / HTTP/1.1\r\n\r\n');
  const p = new Socks5Parser();
  p.push(Buffer.concat([whole, data]));
  const all = drain(p);
  t.equal(all.length, 2);
  t.same(all[1], { type: 'request', cmd: 1, atyp: 3, host: 'example.com', ip: null, port: 80 });
  t.equal(p.rest().toString(), data.toString());

  const q = new Socks5Parser();
  const got: Socks5Msg[] = [];
  for (const byte of whole) {
    q.push(Buffer.from([byte]));
    got.push(...drain(q));
  }
  t.same(got, all);
  t.equal(q.rest().length, 0);
});

t.test(
  'parser: the limit is on an unfinished handshake; data after the request is not',
  async (t) => {
    const p = new Socks5Parser(64);
    t.ok(p.push(hex('05 ff')), 'a greeting of 255 methods, unfinished');
    t.ok(p.push(Buffer.alloc(60, 1)));
    t.same(drain(p), [], 'within the limit: waits for more');
    t.ok(p.push(Buffer.alloc(10, 1)));
    t.match(drain(p), [{ type: 'invalid', reply: null, reason: 'handshake over 64 bytes' }]);
    t.equal(p.state, 'closed');
    t.notOk(p.push(Buffer.alloc(1)), 'closed: takes nothing more');

    const q = new Socks5Parser(64);
    q.push(hex('05 01 00'));
    t.same(drain(q), [{ type: 'greeting', methods: [0] }]);
    q.state = 'request';
    const data = Buffer.alloc(20_000, 0x61);
    t.ok(q.push(Buffer.concat([hex('05 01 00 01 7f000001 0050'), data])), 'one chunk');
    t.match(drain(q), [{ type: 'request', cmd: 1, ip: '127.0.0.1', port: 80 }]);
    t.same(q.rest(), data, 'the data after the request, whole');
  },
);

t.test('parser: never throws, any split gives the same messages (property)', async (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 600 }),
      fc.array(fc.nat(600), { maxLength: 8 }),
      (bytes, cuts) => {
        const buf = Buffer.from(bytes);
        const a = new Socks5Parser();
        a.push(buf);
        const whole = drain(a);
        const b = new Socks5Parser();
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
        const parts: Socks5Msg[] = [];
        let prev = 0;
        for (const c of [...points, buf.length]) {
          b.push(buf.subarray(prev, c));
          prev = c;
          if (b.state !== 'closed' && b.state !== 'done') parts.push(...drain(b));
        }
        return JSON.stringify(parts) === JSON.stringify(whole);
      },
    ),
    { numRuns: 500 },
  );
  t.pass('ok');
});

t.test('UDP header parse/encode', async (t) => {
  const h = parseUdpHeader(hex('0000 00 01 7f000001 1f90 414243'));
  t.same(h, { frag: 0, host: null, ip: '127.0.0.1', port: 8080, data: 10 });
  t.same(parseUdpHeader(hex('0000 01 03 04 612e6263 01bb 00')), {
    frag: 1,
    host: 'a.bc',
    ip: null,
    port: 443,
    data: 11,
  });
  t.equal(parseUdpHeader(hex('0001 00 01 7f000001 1f90')), null, 'RSV must be zero');
  t.equal(parseUdpHeader(hex('0000 00 01 7f00')), null, 'short');
  t.equal(parseUdpHeader(hex('0000 00 09 00')), null, 'bad atyp');
  t.same(encodeUdpHeader(null, '127.0.0.1', 53), hex('0000 00 01 7f000001 0035'));
  t.same(encodeUdpHeader('a.bc', null, 443), hex('0000 00 03 04 612e6263 01bb'));
  t.same(encodeReply(0, '::1', 80).length, 22);
  t.same(encodeReply(5), hex('05 05 00 01 00000000 0000'));
});

// --- server tests ---------------------------------------------------------------------

const TUNNEL = decision({ action: 'tunnel', channel: 'internet', ruleId: 'ia' });
const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });
const BLOCK = decision({ action: 'block', channel: 'internet', ruleId: 'blk' });
const DROP = decision({ action: 'drop', reason: 'QUIC' });

async function startServer(
  t: { teardown(fn: () => unknown): void },
  opts: Partial<ConstructorParameters<typeof Socks5Server>[0]> = {},
  hosts: Record<string, string> = {},
) {
  const {
    fwd: forwarder,
    tunnels,
    flows,
  } = fakeForwarder(
    [
      { host: 'tunnel.test', decision: TUNNEL },
      { host: 'blocked.test', decision: BLOCK },
      { host: 'hang.test', decision: TUNNEL },
      { proto: PROTO_UDP, port: 443, decision: DROP },
      { decision: BYPASS },
    ],
    { 'direct.test': '127.0.0.1', ...hosts },
    { openTimeoutMs: 300 },
  );
  const server = new Socks5Server({ forwarder, port: 0, handshakeTimeoutMs: 300, ...opts });
  const addr = await server.listen();
  t.teardown(() => server.close());
  return { server, port: addr.port, tunnels, flows, forwarder };
}

/** Raw client: writes `out` and collects everything until the server closes (bounded). */
async function exchange(
  port: number,
  out: Buffer[],
  waitMs = 2000,
): Promise<{ data: Buffer; closed: boolean }> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  await once(s, 'connect');
  const parts: Buffer[] = [];
  s.on('data', (c) => parts.push(c));
  for (const o of out) s.write(o);
  const closed = await Promise.race([
    new Promise<boolean>((r) => s.once('close', () => r(true))),
    new Promise<boolean>((r) => setTimeout(() => r(false), waitMs)),
  ]);
  s.destroy();
  return { data: Buffer.concat(parts), closed };
}

function domainReq(cmd: number, host: string, port: number): Buffer {
  const h = Buffer.from(host);
  const b = Buffer.alloc(7 + h.length);
  b[0] = 5;
  b[1] = cmd;
  b[3] = 3;
  b[4] = h.length;
  h.copy(b, 5);
  b.writeUInt16BE(port, 5 + h.length);
  return b;
}

async function socksConnect(
  port: number,
  host: string,
  dport: number,
): Promise<{ s: Socket; reply: Buffer }> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(hex('05 01 00'));
  s.write(domainReq(1, host, dport));
  const buf: Buffer[] = [];
  let total = 0;
  while (total < 12) {
    const r = await Promise.race([
      once(s, 'data').then(([c]) => c as Buffer),
      once(s, 'close').then(() => null),
    ]);
    if (r === null) break;
    buf.push(r);
    total += r.length;
  }
  return { s, reply: Buffer.concat(buf) };
}

t.test('CONNECT: bypass and tunnel relay data; reply codes for refusals', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { port, tunnels, flows } = await startServer(t, {}, { 'tunnel.test': '127.0.0.1' });

  let { s, reply } = await socksConnect(port, 'direct.test', echo.port);
  t.same(reply.subarray(0, 6), hex('05 00 05 00 00 01'), 'granted (method, then reply)');
  s.write('hi');
  const got = await new Promise<Buffer>((r) => s.on('data', r));
  t.equal(got.toString(), 'hi');
  s.destroy();

  ({ s, reply } = await socksConnect(port, 'tunnel.test', echo.port));
  t.same(reply.subarray(2, 12), encodeReply(0), 'tunneled: BND 0.0.0.0:0');
  t.equal(tunnels.opened.length, 1);
  t.equal(tunnels.opened[0]!.meta.host, 'tunnel.test');
  s.write('tun');
  t.equal((await new Promise<Buffer>((r) => s.on('data', r))).toString(), 'tun');
  s.destroy();

  const codes: Array<[string, number, number]> = [
    ['blocked.test', 443, Reply.NOT_ALLOWED],
    ['direct.test', await closedPort(), Reply.CONNECTION_REFUSED],
    ['unknown.invalid', 80, Reply.HOST_UNREACHABLE],
  ];
  for (const [host, p, code] of codes) {
    const r = await exchange(port, [hex('05 01 00'), domainReq(1, host, p)]);
    t.same(r.data, Buffer.concat([hex('05 00'), encodeReply(code)]), `${host} -> 0x0${code}`);
    t.ok(r.closed);
  }
  tunnels.behaviour = { kind: 'hang' };
  const r = await exchange(port, [hex('05 01 00'), domainReq(1, 'hang.test', 443)]);
  t.same(r.data.subarray(2), encodeReply(Reply.TTL_EXPIRED), 'edge timeout -> 0x06');
  t.ok(flows.list().length >= 6);
});

t.test('BIND, bad address type, port 0, malformed and oversized input', async (t) => {
  const { port, server } = await startServer(t);
  let r = await exchange(port, [hex('05 01 00'), domainReq(2, 'direct.test', 80)]);
  t.same(r.data, Buffer.concat([hex('05 00'), encodeReply(Reply.COMMAND_NOT_SUPPORTED)]));
  r = await exchange(port, [hex('05 01 00'), hex('05 01 00 07 00 00')]);
  t.same(r.data, Buffer.concat([hex('05 00'), encodeReply(Reply.ADDRESS_TYPE_NOT_SUPPORTED)]));
  r = await exchange(port, [hex('05 01 00'), domainReq(1, 'direct.test', 0)]);
  t.same(r.data.subarray(2), encodeReply(Reply.GENERAL_FAILURE));
  r = await exchange(port, [hex('05 01 00'), domainReq(9, 'direct.test', 80)]);
  t.same(r.data.subarray(2), encodeReply(Reply.COMMAND_NOT_SUPPORTED), 'unknown command');
  r = await exchange(port, [Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
  t.match(r.data.toString(), /^HTTP\/1\.1 400 /, 'HTTP to the SOCKS port: a 400 saying so');
  t.ok(r.closed);
  r = await exchange(port, [hex('00 01 02')]);
  t.equal(r.data.length, 0, 'neither SOCKS nor HTTP: closed without reply');
  t.ok(r.closed);
  r = await exchange(port, [hex('05 01 02')]);
  t.same(r.data, hex('05 ff'), 'no acceptable method');
  t.ok(r.closed);
  r = await exchange(port, [hex('05'), Buffer.alloc(100_000, 0x41)]);
  t.ok(r.closed, 'oversized handshake closed');
  // Still serving.
  r = await exchange(port, [hex('05 01 00'), domainReq(2, 'x.test', 1)]);
  t.same(r.data.subarray(0, 2), hex('05 00'));
  t.ok(server.stats.failed >= 8);
});

t.test("data beyond the handshake limit, in the request's own chunk, goes upstream", async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { port } = await startServer(t, { maxHandshakeBytes: 64 });
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  await once(s, 'connect');
  const parts: Buffer[] = [];
  s.on('data', (c) => parts.push(c));
  s.write(hex('05 01 00'));
  for (let i = 0; i < 100 && Buffer.concat(parts).length < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const data = Buffer.alloc(1000, 0x62);
  const req = Buffer.alloc(10);
  req.set([5, 1, 0, 1, 127, 0, 0, 1]);
  req.writeUInt16BE(echo.port, 8);
  s.write(Buffer.concat([req, data]));
  const want = 2 + 10 + data.length;
  for (let i = 0; i < 200 && Buffer.concat(parts).length < want; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const got = Buffer.concat(parts);
  t.same(got.subarray(0, 4), hex('05 00 05 00'), 'method reply, then granted');
  t.equal(got.length, want, 'the reply and every byte echoed back');
  t.same(got.subarray(12), data, 'the bytes, whole');
});

t.test('a refused greeting or login closes even if the client keeps its side open', async (t) => {
  const { port, server } = await startServer(t, {
    auth: { username: 'alice', password: 's3cret' },
  });
  const held = (server as unknown as { sockets: Set<Socket> }).sockets;
  for (const [what, bytes, reply] of [
    ['no acceptable method', [hex('05 01 00')], hex('05 ff')],
    [
      'wrong password',
      [hex('05 01 02'), hex('01 05 616c696365 05 7772306e67')],
      hex('05 02 01 01'),
    ],
  ] as const) {
    // allowHalfOpen: after the server's FIN this client neither ends nor closes.
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    s.on('error', () => {});
    t.teardown(() => s.destroy());
    await once(s, 'connect');
    const parts: Buffer[] = [];
    s.on('data', (c) => parts.push(c));
    for (const b of bytes) s.write(b);
    await once(s, 'end');
    t.same(Buffer.concat(parts), reply, `${what}: the reply, then FIN`);
    const t0 = Date.now();
    while (held.size > 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
    t.equal(held.size, 0, `${what}: the server closed its socket (${Date.now() - t0} ms)`);
  }
});

t.test('slow-loris: a handshake that does not finish in time is closed', async (t) => {
  const { port, server } = await startServer(t, { handshakeTimeoutMs: 200 });
  const clients: Socket[] = [];
  for (let i = 0; i < 20; i++) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.write(hex('05'));
    clients.push(s);
  }
  const t0 = Date.now();
  await Promise.all(clients.map((s) => once(s, 'close')));
  t.ok(Date.now() - t0 < 2000, 'closed by the timeout');
  t.equal(server.stats.timeouts, 20);
  await new Promise((r) => setTimeout(r, 20));
  t.equal((server as unknown as { sockets: Set<Socket> }).sockets.size, 0, 'no sockets held');
});

t.test(
  'a client that leaves mid-handshake (FIN) is closed at once, not at the timeout',
  async (t) => {
    const { port, server } = await startServer(t, { handshakeTimeoutMs: 5000 });
    const t0 = Date.now();
    // Part of a greeting, a whole greeting, a greeting and half a request: then FIN.
    for (const bytes of ['05', '050100', '05010005010003']) {
      const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      s.on('error', () => {});
      s.end(hex(bytes));
      s.resume();
      await once(s, 'close');
    }
    t.ok(Date.now() - t0 < 2000, `closed by the server (${Date.now() - t0} ms)`);
    t.equal(server.stats.timeouts, 0);
    t.equal(server.stats.failed, 3);
    await new Promise((r) => setTimeout(r, 20));
    t.equal((server as unknown as { sockets: Set<Socket> }).sockets.size, 0, 'no sockets held');
  },
);

t.test('maxConnections: stalled handshakes beyond the limit are closed at once', async (t) => {
  const { port, server } = await startServer(t, { maxConnections: 5, handshakeTimeoutMs: 2000 });
  await checkConnectionLimit(t, {
    port,
    server: server.server,
    max: 5,
    n: 8,
    bytes: hex('05'),
    what: 'handshake',
  });
  t.equal(server.stats.timeouts, 5);
});

t.test('username/password (RFC 1929)', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { port } = await startServer(t, { auth: { username: 'alice', password: 's3cret' } });
  let r = await exchange(port, [hex('05 01 00')]);
  t.same(r.data, hex('05 ff'), 'no-auth refused when credentials are required');
  r = await exchange(port, [hex('05 01 02'), hex('01 05 616c696365 05 7772306e67')]);
  t.same(r.data, hex('05 02 01 01'), 'wrong password refused');
  t.ok(r.closed);
  const info = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port, type: 5, userId: 'alice', password: 's3cret' },
    command: 'connect',
    destination: { host: 'direct.test', port: echo.port },
  });
  info.socket.write('ok');
  t.equal((await new Promise<Buffer>((res) => info.socket.once('data', res))).toString(), 'ok');
  info.socket.destroy();
});

t.test('non-loopback listener without credentials is refused', async (t) => {
  const forwarder = {} as ConstructorParameters<typeof Socks5Server>[0]['forwarder'];
  t.throws(() => new Socks5Server({ forwarder, host: '0.0.0.0' }), OpenRelayError);
  t.throws(() => new Socks5Server({ forwarder, host: '0.0.0.0' }), { code: 'GSA_ERR_OPEN_RELAY' });
  t.throws(() => new Socks5Server({ forwarder, host: '192.168.1.10' }), {
    code: 'GSA_ERR_OPEN_RELAY',
  });
  t.doesNotThrow(
    () => new Socks5Server({ forwarder, host: '0.0.0.0', auth: { username: 'a', password: 'b' } }),
  );
  t.doesNotThrow(() => new Socks5Server({ forwarder, host: '127.0.0.2' }));
});

t.test(
  'UDP ASSOCIATE with the socks client: bypass relayed, QUIC dropped, FRAG dropped',
  async (t) => {
    const echo = await udpEcho();
    t.teardown(() => echo.close());
    const { port, flows } = await startServer(t);
    const client = new SocksClient({
      proxy: { host: '127.0.0.1', port, type: 5 },
      command: 'associate',
      destination: { host: '0.0.0.0', port: 0 },
    });
    const established = once(client, 'established');
    client.connect();
    const [info] = (await established) as [
      { socket: Socket; remoteHost?: { host: string; port: number } },
    ];
    t.teardown(() => info.socket.destroy());
    const relay = info.remoteHost!;
    t.equal(relay.host, '127.0.0.1');
    const { u, got: replies } = await udpApp(t);
    const frame = (host: string, p: number, data: string, frag = 0) =>
      SocksClient.createUDPFrame({
        remoteHost: { host, port: p },
        data: Buffer.from(data),
        frameNumber: frag,
      });
    u.send(frame('direct.test', echo.port, 'hello'), relay.port, relay.host);
    u.send(frame('quic.test', 443, 'quic'), relay.port, relay.host);
    u.send(frame('direct.test', echo.port, 'frag', 1), relay.port, relay.host);
    u.send(Buffer.from('garbage'), relay.port, relay.host);
    for (let i = 0; i < 100 && replies.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    t.equal(replies.length, 1);
    const parsed = SocksClient.parseUDPFrame(replies[0]!);
    t.equal(parsed.data.toString(), 'HELLO');
    t.equal(parsed.remoteHost.port, echo.port);
    t.equal(parsed.remoteHost.host, 'direct.test', 'from the name it was sent to');
    t.equal(flows.counters.drops.get('quic'), 1);
    t.equal(flows.counters.drops.get('frag'), 1);
    t.equal(flows.counters.drops.get('bad-header'), 1);
    t.equal(echo.seen, 1, 'the FRAG datagram never reached the server');
    // Closing the control connection ends the association.
    info.socket.destroy();
    await new Promise((r) => setTimeout(r, 50));
    t.equal(flows.activeCount, 0);
  },
);

/**
 * UDP ASSOCIATE over a raw control connection from 127.0.0.1 (with `auth`, RFC 1929 first)
 * announcing `announce` (DST.ADDR, DST.PORT); returns the reply's BND and the socket.
 */
async function associateRaw(
  t: Test,
  port: number,
  announce: { ip: number[]; port: number },
  auth?: Buffer,
): Promise<{ atyp: number; relayPort: number; relayIp: string }> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  await once(s, 'connect');
  const parts: Buffer[] = [];
  s.on('data', (c) => parts.push(c));
  const req = Buffer.alloc(10);
  req.set([5, 3, 0, 1, ...announce.ip]);
  req.writeUInt16BE(announce.port, 8);
  const head = auth ? [hex('05 01 02'), auth] : [hex('05 01 00')];
  s.write(Buffer.concat([...head, req]));
  const want = (auth ? 4 : 2) + 10;
  for (let i = 0; i < 200 && Buffer.concat(parts).length < want; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const r = Buffer.concat(parts).subarray(auth ? 4 : 2);
  t.equal(r[1], 0, 'association granted');
  return {
    atyp: r[3]!,
    relayIp: r[3] === 1 ? [...r.subarray(4, 8)].join('.') : r.subarray(4).toString('hex'),
    relayPort: r[3] === 1 ? r.readUInt16BE(8) : 0,
  };
}

/** Sends `data` for 127.0.0.1:`dport` through the relay from `u`; the first reply, or null. */
async function udpRoundTrip(
  u: ReturnType<typeof createSocket>,
  relay: { relayIp: string; relayPort: number },
  dport: number,
  data: string,
): Promise<Buffer | null> {
  const got: Buffer[] = [];
  u.on('message', (m) => got.push(m));
  u.send(
    Buffer.concat([encodeUdpHeader(null, '127.0.0.1', dport), Buffer.from(data)]),
    relay.relayPort,
    relay.relayIp,
  );
  for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  return got[0] ?? null;
}

t.test('UDP ASSOCIATE: replies go to the address the client announced', async (t) => {
  const echo = await udpEcho();
  t.teardown(() => echo.close());
  const { port } = await startServer(t);
  const u = createSocket('udp4');
  try {
    u.bind(0, '127.0.0.2');
    await once(u, 'listening');
  } catch (err) {
    t.plan(0, `cannot bind UDP on 127.0.0.2 here: ${(err as Error).message}`);
    return;
  }
  t.teardown(() => u.close());
  const relay = await associateRaw(t, port, { ip: [127, 0, 0, 2], port: u.address().port });
  const reply = await udpRoundTrip(u, relay, echo.port, 'announced');
  t.ok(reply, 'the reply reached 127.0.0.2, the announced address');
  if (reply) t.equal(SocksClient.parseUDPFrame(reply).data.toString(), 'ANNOUNCED');
});

t.test(
  'UDP ASSOCIATE on a dual-stack (IPv4-mapped) listener: IPv4 relay, replies arrive',
  async (t) => {
    const echo = await udpEcho();
    t.teardown(() => echo.close());
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer(t, {
        host: '::ffff:127.0.0.1',
        auth: { username: 'alice', password: 's3cret' },
      });
    } catch (err) {
      t.plan(0, `cannot listen on ::ffff:127.0.0.1 here: ${(err as Error).message}`);
      return;
    }
    const u = createSocket('udp4');
    u.bind(0, '127.0.0.1');
    await once(u, 'listening');
    t.teardown(() => u.close());
    const relay = await associateRaw(
      t,
      server.port,
      { ip: [0, 0, 0, 0], port: 0 },
      hex('01 05 616c696365 06 733363726574'),
    );
    t.same(relay.atyp, 1, 'BND.ADDR is IPv4 (ATYP 1)');
    t.equal(relay.relayIp, '127.0.0.1');
    const reply = await udpRoundTrip(u, relay, echo.port, 'mapped');
    t.ok(reply, 'the reply came back');
    if (reply) t.equal(SocksClient.parseUDPFrame(reply).data.toString(), 'MAPPED');
  },
);

t.test('a bug in one connection closes that connection, not the server', async (t) => {
  const { log, warnings } = warningLog();
  const { server, port } = await startServer(t, { forwarder: brokenForwarder(), log });
  for (let i = 0; i < 2; i++) {
    const r = await exchange(port, [hex('05 01 00'), domainReq(1, 'direct.test', 9)]);
    t.equal(r.closed, true, `connection ${i + 1} is closed`);
    t.same(r.data, hex('05 00'), 'after the method reply, nothing');
  }
  t.equal(server.stats.internalErrors, 2);
  t.same(warnings, [
    'socks5: internal error; connection closed',
    'socks5: internal error; connection closed',
  ]);
});

t.test('address is still known after close (flows finishing while it stops)', async (t) => {
  const { server, port } = await startServer(t);
  await server.close();
  t.equal(server.address.port, port);
});
