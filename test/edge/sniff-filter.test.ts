/**
 * Web content filtering on the name in a flow's first bytes (egress.ts + sniff.ts), through
 * the real tunnel: a flow the client opened by address (or by another name) whose TLS SNI or
 * HTTP Host names a blocked site is reset BLOCKED before the destination gets a byte, and
 * logged with that name. Loopback only: the edge's hosts map sends the documentation
 * address 198.51.100.7 to an echo server on 127.0.0.1; nothing else is dialed.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SNIFF_WAIT_MS } from '../../src/edge/egress.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import type { NetworkAccessTraffic } from '../../src/edge/traffic-log.js';
import { type OpenMeta, ResetCode, type TunnelStream } from '../../src/tunnel/types.js';
import { collect, echoServer, edgeClients, exchange, meta, tempDir } from './helpers.js';
import { shapeProblems } from './shape.js';
import { clientHello } from './tls-hello.js';

const GREETING = 'HELLO\n';
const ADDR = '198.51.100.7';

async function setup(t: Test) {
  const tmp = await tempDir();
  const echo = await echoServer(GREETING);
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    logFile: join(tmp.dir, 'traffic.jsonl'),
    hostsMap: {
      'echo.contoso.test': `127.0.0.1:${echo.port}`,
      [ADDR]: `127.0.0.1:${echo.port}`,
    },
    connectorHosts: { 'intranet.contoso.test:443': `127.0.0.1:${echo.port}` },
    filtering: { blockedCategories: ['gambling'], blockedFqdns: ['*.ads.test'] },
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 200, connectTimeoutMs: 2000 },
  });
  const { client, closeAll } = edgeClients(edge);
  t.teardown(async () => {
    await closeAll();
    await edge.close({ graceMs: 0 });
    await echo.close();
    await tmp.remove();
  });
  return { edge, echo, client };
}

function byConn(edge: Edge, m: OpenMeta): Promise<NetworkAccessTraffic> {
  return edge.logs.waitFor((r) => r.connectionId === m.connectionId, 5000);
}

const byAddress = (over: Partial<OpenMeta> = {}): OpenMeta =>
  meta({ host: null, ip: ADDR, port: 443, ...over });

/** Resolves with the first bytes `s` reads. */
function firstRead(s: TunnelStream): Promise<Buffer> {
  return new Promise((r) => s.once('data', (c: Buffer) => r(c)));
}

t.test('TLS SNI and HTTP Host of a flow opened by address: blocked and logged', async (t) => {
  const { edge, echo, client } = await setup(t);
  const c = await client('internet');
  const peersBefore = echo.peers.length;
  const m1 = byAddress();
  const r1 = await exchange(c.open(m1), await clientHello('www.casino.test'));
  t.equal(r1.reset, ResetCode.BLOCKED, 'SNI in the gambling category');
  const rec1 = await byConn(edge, m1);
  t.same(shapeProblems(rec1), []);
  t.equal(rec1.action, 'block');
  t.equal(rec1.operationStatus, 'failure');
  t.equal(rec1.policyRuleId, 'category:gambling');
  t.equal(rec1.policyId, 'web-content-filtering');
  t.equal(rec1.destinationFQDN, 'www.casino.test', 'the name from the SNI');
  t.equal(rec1.destinationIp, ADDR);
  t.equal(rec1.sentBytes, 0);
  t.match(rec1.failureReason, /www\.casino\.test is in blocked category gambling \(TLS SNI\)$/);

  const m2 = byAddress({ port: 80 });
  const r2 = await exchange(
    c.open(m2),
    Buffer.from('GET / HTTP/1.1\r\nHost: banner.ads.test\r\nAccept: */*\r\n\r\n'),
  );
  t.equal(r2.reset, ResetCode.BLOCKED, 'Host matching a blocked FQDN pattern');
  const rec2 = await byConn(edge, m2);
  t.equal(rec2.policyRuleId, 'fqdn:*.ads.test');
  t.equal(rec2.destinationFQDN, 'banner.ads.test');
  t.match(rec2.failureReason, /\(HTTP Host\)$/);
  t.equal(rec2.sentBytes, 0);

  // The destination was connected to (the edge read the bytes after OPEN_OK) but got none.
  const peers = echo.peers.slice(peersBefore);
  t.equal(peers.length, 2);
  t.same(
    peers.map((p) => p.bytes),
    [0, 0],
    'no byte of a blocked flow reached the destination',
  );
});

t.test('a name the OPEN gave does not cover another name in the SNI', async (t) => {
  const { edge, client } = await setup(t);
  const c = await client('internet');
  const m = meta({ host: 'echo.contoso.test', port: 443 });
  const r = await exchange(c.open(m), await clientHello('www.casino.test'));
  t.equal(r.reset, ResetCode.BLOCKED);
  const rec = await byConn(edge, m);
  t.equal(rec.destinationFQDN, 'echo.contoso.test', 'the log keeps the OPEN name');
  t.equal(rec.policyRuleId, 'category:gambling');
});

t.test('allowed names pass every byte; the log names the SNI of an address flow', async (t) => {
  const { edge, client } = await setup(t);
  const c = await client('internet');
  const hello = await clientHello('www.contoso.test');
  const m = byAddress();
  const r = await exchange(c.open(m), hello);
  t.equal(r.reset, null);
  t.same(r.bytes, Buffer.concat([Buffer.from(GREETING), hello]), 'greeting, then the echo');
  const rec = await byConn(edge, m);
  t.equal(rec.action, 'allow');
  t.equal(rec.destinationFQDN, 'www.contoso.test');
  t.equal(rec.sentBytes, hello.length);

  // The same name as the OPEN's, no SNI, and bytes that are neither TLS nor HTTP.
  for (const [over, data] of [
    [{ host: 'echo.contoso.test' }, await clientHello('echo.contoso.test')],
    [{}, await clientHello()],
    [{}, Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')],
  ] as Array<[Partial<OpenMeta>, Buffer]>) {
    const m2 = byAddress(over);
    const r2 = await exchange(c.open(m2), data);
    t.equal(r2.reset, null);
    t.same(r2.bytes, Buffer.concat([Buffer.from(GREETING), data]));
    const rec2 = await byConn(edge, m2);
    t.equal(rec2.destinationFQDN, over.host ?? null);
  }
});

t.test(
  'a ClientHello in pieces is read whole; a server that speaks first is not held',
  async (t) => {
    const { edge, client } = await setup(t);
    const c = await client('internet');
    const m = byAddress();
    const s = c.open(m);
    const greeting = firstRead(s);
    t.equal((await greeting).toString(), GREETING, 'the greeting came before any client byte');
    const hello = await clientHello('www.casino.test');
    const done = collect(s);
    const cuts = [0, 3, 9, 60, hello.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      s.write(hello.subarray(cuts[i], cuts[i + 1]));
      await new Promise((r) => setTimeout(r, 20));
    }
    s.end();
    t.equal((await done).reset, ResetCode.BLOCKED);
    t.equal((await byConn(edge, m)).destinationFQDN, 'www.casino.test');
  },
);

t.test('a ClientHello one byte per DATA frame, and HTTP a filter must not miss', async (t) => {
  const { edge, echo, client } = await setup(t);
  const c = await client('internet');
  const peersBefore = echo.peers.length;
  const m = byAddress();
  const s = c.open(m);
  const done = collect(s);
  const hello = await clientHello('www.casino.test');
  for (let i = 0; i < hello.length; i++) s.write(hello.subarray(i, i + 1));
  s.end();
  t.equal((await done).reset, ResetCode.BLOCKED, `${hello.length} one-byte writes`);
  t.equal((await byConn(edge, m)).destinationFQDN, 'www.casino.test');
  // Empty TLS records before the ClientHello, which OpenSSL skips.
  const me = byAddress();
  const empty = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
  const re = await exchange(c.open(me), Buffer.concat([empty, empty, hello]));
  t.equal(re.reset, ResetCode.BLOCKED, 'empty records first');
  for (const head of [
    '\r\nGET / HTTP/1.1\r\nHost: casino.test\r\n\r\n', // a blank line first (RFC 9112 2.2)
    'PROPFIND / HTTP/1.1\r\nHost: casino.test\r\nDepth: 1\r\n\r\n', // WebDAV
    'CONNECT casino.test:443 HTTP/1.1\r\nHost: www.contoso.test\r\n\r\n', // to a proxy
    'GET  http://6.6.254.12/ HTTP/1.0\r\nHost: casino.test\r\n\r\n', // two spaces, an address
  ]) {
    const mh = byAddress({ port: 80 });
    const r = await exchange(c.open(mh), Buffer.from(head));
    t.equal(r.reset, ResetCode.BLOCKED, JSON.stringify(head.slice(0, 12)));
    t.equal((await byConn(edge, mh)).destinationFQDN, 'casino.test');
  }
  t.same(
    echo.peers.slice(peersBefore).map((p) => p.bytes),
    [0, 0, 0, 0, 0, 0],
    'no byte reached the destination',
  );
});

t.test('a head that never completes goes on without a name after the wait', async (t) => {
  const { edge, client } = await setup(t);
  const c = await client('internet');
  const m = byAddress({ port: 80 });
  const s = c.open(m);
  t.equal((await firstRead(s)).toString(), GREETING);
  const started = Date.now();
  const echoed = firstRead(s);
  s.write('GET / HTTP/1.1\r\nHo');
  t.equal((await echoed).toString(), 'GET / HTTP/1.1\r\nHo');
  t.ok(Date.now() - started >= SNIFF_WAIT_MS - 50, 'held for the wait, then passed on');
  const rest = collect(s);
  s.end();
  t.equal((await rest).reset, null);
  const rec = await byConn(edge, m);
  t.equal(rec.action, 'allow');
  t.equal(rec.destinationFQDN, null);
});

t.test('channels not filtered are not read: a private flow passes any SNI', async (t) => {
  const { edge, client } = await setup(t);
  const c = await client('private');
  const m = meta({ channel: 'private', host: 'intranet.contoso.test', port: 443 });
  const hello = await clientHello('www.casino.test');
  const r = await exchange(c.open(m), hello);
  t.equal(r.reset, null);
  t.same(r.bytes, Buffer.concat([Buffer.from(GREETING), hello]));
  t.equal((await byConn(edge, m)).destinationFQDN, 'intranet.contoso.test');
});
