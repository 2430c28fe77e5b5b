/**
 * The edge end to end through the real tunnel: TunnelClient (src/tunnel/client.ts) ->
 * startEdge -> echo servers on 127.0.0.1 named by the hosts maps. Nothing leaves loopback:
 * the edge runs with systemResolver and directIp off.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { PROCESS_WAIT_MS } from '../../src/edge/egress.js';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import type { NetworkAccessTraffic } from '../../src/edge/traffic-log.js';
import { loadTenantFile } from '../../src/policy/tenant-file.js';
import { TunnelClient } from '../../src/tunnel/client.js';
import { CloseCode } from '../../src/tunnel/frame.js';
import { type OpenMeta, ResetCode } from '../../src/tunnel/types.js';
import { packageVersion } from '../../src/util/package.js';
import {
  closedPort,
  delay,
  echoServer,
  edgeClients,
  exchange,
  firehose,
  meta,
  tempDir,
  udpEcho,
  until,
} from './helpers.js';
import { shapeProblems } from './shape.js';

const GREETING = 'HELLO\n';

async function setup(t: Test, over: Partial<EdgeOptions> = {}) {
  const tmp = await tempDir();
  const echo = await echoServer(GREETING);
  const udp = await udpEcho('re:');
  const dead = await closedPort();
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    logFile: join(tmp.dir, 'traffic.jsonl'),
    hostsMap: {
      'echo.contoso.test': `127.0.0.1:${echo.port}`,
      'www.casino.test': `127.0.0.1:${echo.port}`,
      'dead.contoso.test': `127.0.0.1:${dead}`,
      'udp.contoso.test': `127.0.0.1:${udp.port}`,
    },
    connectorHosts: {
      'intranet.contoso.test:443': `127.0.0.1:${echo.port}`,
      'udp-echo.contoso.test': `127.0.0.1:${udp.port}`,
      '127.77.0.5:3389': `127.0.0.1:${echo.port}`,
    },
    filtering: { blockedCategories: ['gambling'], blockedFqdns: ['*.ads.test'] },
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 200, connectTimeoutMs: 2000 },
    ...over,
  });
  const { client, closeAll } = edgeClients(edge);
  t.teardown(async () => {
    await closeAll();
    await edge.close({ graceMs: 0 });
    await echo.close();
    await udp.close();
    await tmp.remove();
  });
  return { edge, echo, udp, client, tmp };
}

function byConn(edge: Edge, m: OpenMeta): Promise<NetworkAccessTraffic> {
  return edge.logs.waitFor((r) => r.connectionId === m.connectionId, 5000);
}

t.test('tunnel upgrade rejects bad tokens with the documented status and close code', async (t) => {
  const events: Array<{ msg: string; obj: Record<string, unknown> }> = [];
  const log = {
    info: (obj: object, msg?: string) =>
      events.push({ msg: msg ?? '', obj: obj as Record<string, unknown> }),
    warn: (obj: object, msg?: string) =>
      events.push({ msg: msg ?? '', obj: obj as Record<string, unknown> }),
  };
  const { edge } = await setup(t, { log });
  const wsUrl = edge.url.replace(/^http/, 'ws');
  const attempt = (path: string, token: string | null): Promise<{ status: number; code: number }> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${wsUrl}${path}`, {
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0, code: Number(res.headers['x-gsa-close-code']) });
        res.resume();
        ws.terminate();
      });
      ws.on('open', () => {
        ws.terminate();
        resolve({ status: 101, code: 0 });
      });
      ws.on('error', (e) => reject(e));
    });
  const otherDir = await tempDir();
  t.teardown(otherDir.remove);
  const other = await startEdge({
    stateDir: join(otherDir.dir, 's'),
    tls: false,
    persistKey: false,
  });
  const forged = await other.issueToken({ channel: 'internet' });
  await other.close();
  const cases: Array<[string, string | null, number, number]> = [
    ['missing', null, 401, CloseCode.AUTH_MISSING],
    ['malformed', 'not.a.jwt', 401, CloseCode.AUTH_MISSING],
    [
      'expired',
      await edge.issueToken({ channel: 'internet', ttlSeconds: -300 }),
      401,
      CloseCode.AUTH_EXPIRED,
    ],
    ['forged (other key)', forged, 403, CloseCode.AUTH_FORBIDDEN],
    ['wrong audience', await edge.issueToken({ channel: 'm365' }), 403, CloseCode.AUTH_FORBIDDEN],
    [
      'graph token on a tunnel',
      await edge.issueToken({ channel: 'graph' }),
      403,
      CloseCode.AUTH_FORBIDDEN,
    ],
    [
      'wrong tenant',
      await edge.issueToken({ channel: 'internet', tenantId: 'another-tenant' }),
      403,
      CloseCode.AUTH_FORBIDDEN,
    ],
  ];
  for (const [name, token, status, code] of cases) {
    const r = await attempt('/tunnel/internet', token);
    t.same(r, { status, code }, name);
  }
  const ok = await attempt('/tunnel/internet', await edge.issueToken({ channel: 'internet' }));
  t.equal(ok.status, 101, 'a good token upgrades');
  const refused = events.filter((e) => e.msg === 'tunnel refused').map((e) => e.obj.reason);
  t.same(
    refused,
    [
      'missing',
      'malformed',
      'expired',
      'forged',
      'wrong-audience',
      'wrong-audience',
      'wrong-tenant',
    ],
    'refusals logged with their reason',
  );
  t.ok(
    await until(() => events.some((e) => e.msg === 'session down'), 2000),
    'session up/down logged',
  );
  t.ok(events.some((e) => e.msg === 'session up' && e.obj.channel === 'internet'));
  t.equal(
    (await attempt('/tunnel/nope', await edge.issueToken({ channel: 'internet' }))).status,
    404,
  );
  // TunnelClient reports the refusal.
  const c = new TunnelClient({
    url: edge.url,
    channel: 'private',
    getToken: () => edge.issueToken({ channel: 'private', ttlSeconds: -300 }),
    backoff: { baseMs: 1000, maxMs: 1000 },
  });
  const down = new Promise<{ status?: number; code?: number }>((r) => c.once('down', r));
  c.start();
  const info = await down;
  await c.close();
  t.equal(info.status, 401);
  t.equal(info.code, CloseCode.AUTH_EXPIRED);
});

t.test("internet flow: the log names the client's policy and rule from the tenant", async (t) => {
  const { edge, client } = await setup(t);
  const internet = edge.tenant.spec.profiles.find((p) => p.type === 'internet')!;
  const policy = internet.policies.find((p) => p.rules.length > 0)!;
  const rule = policy.rules[0]!;
  const c = await client('internet');
  const m = meta({ host: 'echo.contoso.test', port: 443, policyId: policy.id, ruleId: rule.id });
  const r = await exchange(c.open(m), randomBytes(1000));
  t.equal(r.reset, null, 'no reset');
  const rec = await byConn(edge, m);
  t.equal(rec.policyId, policy.id);
  t.equal(rec.policyName, policy.name, `policy ${policy.name}`);
  t.equal(rec.policyRuleId, rule.id);
  t.equal(rec.policyRuleName, rule.name, `rule ${rule.name}`);
});

t.test('internet flow: echo through the edge, byte counts and shape in the log', async (t) => {
  const { edge, echo, client, tmp } = await setup(t);
  const c = await client('internet');
  const m = meta({ host: 'Echo.Contoso.Test', port: 443 });
  const s = c.open(m);
  const data = randomBytes(300_000);
  const r = await exchange(s, data);
  t.equal(r.reset, null, 'no reset');
  t.equal(r.bytes.length, GREETING.length + data.length);
  t.ok(r.bytes.subarray(GREETING.length).equals(data), 'echoed intact');
  const rec = await byConn(edge, m);
  t.same(shapeProblems(rec), []);
  t.equal(rec.sentBytes, data.length, 'sentBytes = client -> destination');
  t.equal(
    rec.receivedBytes,
    GREETING.length + data.length,
    'receivedBytes = destination -> client',
  );
  t.equal(echo.peers.at(-1)?.bytes, data.length, 'the destination got every byte');
  t.equal(
    echo.peers.at(-1)?.remoteAddress,
    '127.0.0.1',
    'the destination sees the edge as its peer',
  );
  t.equal(rec.action, 'allow');
  t.equal(rec.operationStatus, 'success');
  t.equal(rec.trafficType, 'internet');
  t.equal(rec.destinationFQDN, 'echo.contoso.test');
  t.equal(rec.destinationIp, '127.0.0.1');
  t.equal(rec.destinationPort, 443, 'the port the client asked for');
  t.equal(rec.userId, 'alice');
  t.equal(rec.userPrincipalName, 'alice@contoso.test');
  t.equal(rec.deviceId, 'dev-1');
  t.equal(rec.tenantId, edge.tenantId);
  t.equal(rec.policyRuleId, 'rule-x');
  t.equal(rec.policyRuleName, null, 'a rule id the tenant does not have: no name');
  t.equal(rec.initiatingProcessName, 'curl');
  t.equal(rec.agentVersion, packageVersion(), 'the client version from x-gsa-agent-version');
  t.not(rec.agentVersion, 'unknown');
  // The file has the same record as a JSON line.
  await until(() => false, 50);
  const lines = (await readFile(join(tmp.dir, 'traffic.jsonl'), 'utf8')).trim().split('\n');
  const fromFile = lines.map((l) => JSON.parse(l)).find((x) => x.connectionId === m.connectionId);
  t.same(fromFile, rec);
});

t.test(
  'process pending at OPEN: the record waits for the late META, at most PROCESS_WAIT_MS',
  async (t) => {
    const { edge, client } = await setup(t);
    const c = await client('internet');
    const has = (m: OpenMeta): boolean =>
      edge.logs.all().some((r) => r.connectionId === m.connectionId);

    // Named after the flow ended: logged as soon as the META comes, with the name.
    const named = meta({ process: null, processPending: true });
    const s1 = c.open(named);
    t.equal((await exchange(s1, Buffer.from('a'))).reset, null);
    await delay(150);
    t.notOk(has(named), 'not logged while the process is pending');
    const t1 = Date.now();
    s1.updateMeta?.({ process: 'curl' });
    const r1 = await byConn(edge, named);
    t.ok(Date.now() - t1 < PROCESS_WAIT_MS - 500, `logged on the META (${Date.now() - t1} ms)`);
    t.equal(r1.initiatingProcessName, 'curl');
    t.equal(r1.sentBytes, 1, 'the rest of the record is the ended flow');

    // Not found (null): logged at once, without a name.
    const unknown = meta({ process: null, processPending: true });
    const s2 = c.open(unknown);
    await exchange(s2, Buffer.from('b'));
    const t2 = Date.now();
    s2.updateMeta?.({ process: null });
    const r2 = await byConn(edge, unknown);
    t.ok(Date.now() - t2 < PROCESS_WAIT_MS - 500, 'a null answer also ends the wait');
    t.equal(r2.initiatingProcessName, null);

    // No answer at all: logged after PROCESS_WAIT_MS.
    const silent = meta({ process: null, processPending: true });
    const s3 = c.open(silent);
    await exchange(s3, Buffer.from('c'));
    const t3 = Date.now();
    const r3 = await byConn(edge, silent);
    t.ok(Date.now() - t3 >= PROCESS_WAIT_MS - 300, `logged after the wait (${Date.now() - t3} ms)`);
    t.equal(r3.initiatingProcessName, null);

    // Known at OPEN, or not pending: logged at once.
    const plain = meta({ process: null });
    const t4 = Date.now();
    await exchange(c.open(plain), Buffer.from('d'));
    await byConn(edge, plain);
    t.ok(Date.now() - t4 < PROCESS_WAIT_MS - 500, 'no wait without processPending');
  },
);

t.test('process pending: a closing edge logs the waiting records at once', async (t) => {
  const { edge, client, tmp } = await setup(t);
  const c = await client('internet');
  const m = meta({ process: null, processPending: true });
  await exchange(c.open(m), Buffer.from('x'));
  await delay(50);
  t.notOk(
    edge.logs.all().some((r) => r.connectionId === m.connectionId),
    'waiting',
  );
  const t0 = Date.now();
  await edge.close({ graceMs: 0 });
  t.ok(Date.now() - t0 < PROCESS_WAIT_MS - 500, 'close does not wait for it');
  const lines = (await readFile(join(tmp.dir, 'traffic.jsonl'), 'utf8')).trim().split('\n');
  const rec = lines
    .map((l) => JSON.parse(l) as NetworkAccessTraffic)
    .find((r) => r.connectionId === m.connectionId);
  t.ok(rec, 'in the log file');
  t.equal(rec?.initiatingProcessName, null);
});

t.test('m365 flow is logged as microsoft365 and is not web-filtered', async (t) => {
  const { edge, client } = await setup(t);
  const c = await client('m365');
  const m = meta({ channel: 'm365', host: 'www.casino.test' });
  const r = await exchange(c.open(m), Buffer.from('ping'));
  t.equal(r.reset, null);
  const rec = await byConn(edge, m);
  t.equal(rec.trafficType, 'microsoft365');
  t.equal(rec.action, 'allow');
  t.same(shapeProblems(rec), []);
});

t.test(
  'web content filtering: category and FQDN blocks reset the stream and log block',
  async (t) => {
    const { edge, echo, client } = await setup(t);
    const c = await client('internet');
    const before = echo.peers.length;
    const m1 = meta({ host: 'www.casino.test' });
    const r1 = await exchange(c.open(m1), Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    t.equal(r1.reset, ResetCode.BLOCKED);
    t.equal(r1.bytes.length, 0);
    const rec1 = await byConn(edge, m1);
    t.same(shapeProblems(rec1), []);
    t.equal(rec1.action, 'block');
    t.equal(rec1.operationStatus, 'failure');
    t.equal(rec1.policyRuleId, 'category:gambling');
    t.equal(rec1.policyId, 'web-content-filtering');
    t.equal(rec1.sentBytes, 0);
    t.equal(rec1.destinationIp, null, 'never resolved');
    const m2 = meta({ host: 'banner.ads.test' });
    const r2 = await exchange(c.open(m2), Buffer.from('x'));
    t.equal(r2.reset, ResetCode.BLOCKED);
    t.equal((await byConn(edge, m2)).policyRuleId, 'fqdn:*.ads.test');
    const health = (await (await fetch(`${edge.url}/health`)).json()) as {
      flows: { blocked: number };
    };
    t.equal(health.flows.blocked, 2, '/health counts blocked flows');
    t.equal(echo.peers.length, before, 'blocked flows never reached the destination');
  },
);

t.test(
  'private access: app segments allowed through the connector, others refused and logged',
  async (t) => {
    const { edge, echo, udp, client } = await setup(t);
    const c = await client('private');
    // Allowed: intranet.contoso.test:443 (segment "Contoso intranet web"), remapped by the connector.
    const ok = meta({ channel: 'private', host: 'intranet.contoso.test', port: 443 });
    const r = await exchange(c.open(ok), Buffer.from('hello intranet'));
    t.equal(r.reset, null);
    t.equal(r.bytes.toString(), `${GREETING}hello intranet`);
    const rec = await byConn(edge, ok);
    t.same(shapeProblems(rec), []);
    t.equal(rec.trafficType, 'private');
    t.equal(rec.action, 'allow');
    t.match(rec.policyRuleName, /Contoso intranet web|Quick Access/);
    t.equal(rec.privateAccessDetails?.resolvedDestination, `127.0.0.1:${echo.port}`);
    t.equal(rec.privateAccessDetails?.appSegmentId, rec.policyRuleId);
    // IP segment (127.77.0.0/16 tcp 3389), remapped by address.
    const rdp = meta({ channel: 'private', host: null, ip: '127.77.0.5', port: 3389 });
    const r2 = await exchange(c.open(rdp), Buffer.from('rdp'));
    t.equal(r2.bytes.toString(), `${GREETING}rdp`);
    // Refused: a port outside every segment, a name outside, an address outside. The client
    // names its rule (Quick Access), whose name the edge would otherwise log.
    const qa = loadTenantFile(undefined).tenant.profiles.find((p) => p.type === 'private')!
      .policies[0]!;
    const named = { policyId: qa.id, ruleId: qa.rules[0]!.id };
    for (const bad of [
      meta({ ...named, channel: 'private', host: 'db.contoso.test', port: 5432 }),
      meta({ ...named, channel: 'private', host: 'evil.example.test', port: 443 }),
      meta({ ...named, channel: 'private', host: null, ip: '127.79.0.1', port: 3389 }),
      meta({
        ...named,
        channel: 'private',
        host: 'intranet.contoso.test',
        port: 443,
        proto: 'udp',
      }),
    ]) {
      const before = echo.peers.length;
      const rr = await exchange(c.open(bad), Buffer.from('x'));
      t.equal(
        rr.reset,
        ResetCode.BLOCKED,
        `${bad.host ?? bad.ip}:${bad.port}/${bad.proto} refused`,
      );
      const br = await byConn(edge, bad);
      t.same(shapeProblems(br), []);
      t.equal(br.action, 'block');
      t.equal(br.operationStatus, 'failure');
      t.match(br.privateAccessDetails?.accessDeniedReason, /no application segment/);
      // No segment names it: no rule id, and no rule name either (not the client's rule).
      t.same(
        [br.policyId, br.policyRuleId, br.policyName, br.policyRuleName],
        [null, null, null, null],
        'neither ids nor names of a rule',
      );
      t.equal(echo.peers.length, before, 'nothing reached the private network');
    }
    // In a segment, but the connector cannot resolve it: connect failed, action allow, failure.
    const unres = meta({ channel: 'private', host: 'wiki.contoso.test', port: 443 });
    const r3 = await exchange(c.open(unres), Buffer.from('x'));
    t.equal(r3.reset, ResetCode.CONNECT_FAILED);
    const ur = await byConn(edge, unres);
    t.equal(ur.operationStatus, 'failure');
    t.match(ur.failureReason, /cannot resolve/);
    // Private UDP segment: datagrams relayed.
    const um = meta({
      channel: 'private',
      proto: 'udp',
      host: 'udp-echo.contoso.test',
      port: 7005,
    });
    const us = c.open(um);
    const got: string[] = [];
    us.on('datagram', (d: Buffer) => got.push(d.toString()));
    us.on('error', () => {});
    await us.opened;
    us.sendDatagram(Buffer.from('one'));
    us.sendDatagram(Buffer.from('two'));
    t.ok(await until(() => got.length === 2, 3000), 'two replies');
    t.same(got.sort(), ['re:one', 're:two']);
    us.end();
    const urec = await byConn(edge, um);
    t.equal(urec.transportProtocol, 'udp');
    t.equal(urec.sentBytes, 6);
    t.equal(urec.receivedBytes, 12);
    t.same(shapeProblems(urec), []);
    void udp;
  },
);

t.test('failed flows are logged at once: unresolvable name, refused port', async (t) => {
  const { edge, client } = await setup(t);
  const c = await client('internet');
  const m1 = meta({ host: 'not-in-the-map.test' });
  const s1 = c.open(m1);
  const r1 = await exchange(s1, Buffer.from('x'));
  t.equal(r1.reset, ResetCode.CONNECT_FAILED);
  const rec1 = await byConn(edge, m1);
  t.same(shapeProblems(rec1), []);
  t.equal(rec1.operationStatus, 'failure');
  t.equal(rec1.action, 'allow');
  t.match(rec1.failureReason, /not in the hosts map/);
  const m2 = meta({ host: 'dead.contoso.test' });
  const r2 = await exchange(c.open(m2), Buffer.from('x'));
  t.equal(r2.reset, ResetCode.CONNECT_FAILED);
  const rec2 = await byConn(edge, m2);
  t.match(rec2.failureReason, /ECONNREFUSED/);
  t.equal(rec2.destinationIp, '127.0.0.1');
  // An IP destination outside the hosts map is refused when directIp is off.
  const m3 = meta({ host: null, ip: '192.0.2.1', port: 80 });
  const r3 = await exchange(c.open(m3), Buffer.from('x'));
  t.equal(r3.reset, ResetCode.CONNECT_FAILED);
  t.match((await byConn(edge, m3)).failureReason, /no route/);
});

t.test('internet UDP relay with idle timeout', async (t) => {
  const { edge, client } = await setup(t, { limits: { udpIdleTimeoutMs: 150, graceMs: 100 } });
  const c = await client('internet');
  const m = meta({ proto: 'udp', host: 'udp.contoso.test', port: 5353 });
  const s = c.open(m);
  s.on('error', () => {});
  const got: Buffer[] = [];
  s.on('datagram', (d: Buffer) => got.push(d));
  let ended = false;
  let resetCode: number | null = null;
  s.on('end', () => {
    ended = true;
  });
  s.on('reset', (code: number) => {
    resetCode = code;
  });
  s.resume();
  // Sent before OPEN_OK: the edge holds it until its UDP socket is ready.
  s.sendDatagram(Buffer.from('early'));
  await s.opened;
  s.sendDatagram(Buffer.from('abc'));
  t.ok(await until(() => got.length === 2, 3000));
  t.same(got.map((d) => d.toString()).sort(), ['re:abc', 're:early']);
  const rec = await byConn(edge, m); // written after ~150 ms of silence
  t.equal(rec.transportProtocol, 'udp');
  t.equal(rec.sentBytes, 8);
  t.equal(rec.receivedBytes, 14);
  t.equal(rec.operationStatus, 'success');
  t.ok(await until(() => ended, 2000), 'the client stream got a FIN');
  t.equal(resetCode, null, 'ended cleanly, not reset');
  s.end();
  t.ok(await until(() => s.destroyed, 2000), 'closed once both sides ended');
});

t.test('edge killed mid-transfer: streams reset, client reconnects, new flows work', async (t) => {
  const tmp = await tempDir();
  const hose = await firehose();
  const echo = await echoServer();
  t.teardown(async () => {
    await hose.close();
    await echo.close();
    await tmp.remove();
  });
  const opts: EdgeOptions = {
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    hostsMap: {
      'big.contoso.test': `127.0.0.1:${hose.port}`,
      'echo.contoso.test': `127.0.0.1:${echo.port}`,
    },
    egress: { systemResolver: false, directIp: false },
  };
  let edge = await startEdge(opts);
  const port = edge.port;
  const url = edge.url;
  let current = edge;
  const c = new TunnelClient({
    url,
    channel: 'internet',
    getToken: (ch) => current.issueToken({ channel: ch }),
    backoff: { baseMs: 20, maxMs: 100 },
    limits: { keepaliveInterval: 0 },
  });
  c.start();
  await c.waitUp(5000);
  const s = c.open(meta({ host: 'big.contoso.test' }));
  let got = 0;
  let resetCode: number | null = null;
  s.on('data', (d: Buffer) => {
    got += d.length;
  });
  s.on('reset', (code: number) => {
    resetCode = code;
  });
  s.on('error', () => {});
  t.ok(await until(() => got > 1_000_000, 5000), 'data flowing');
  const downs: number[] = [];
  c.on('down', () => downs.push(Date.now()));
  await edge.kill();
  t.ok(await until(() => s.destroyed, 5000), 'client stream ended');
  t.equal(resetCode, ResetCode.SESSION_CLOSED, 'reset with SESSION_CLOSED');
  t.ok(downs.length >= 1, 'client saw the channel go down');
  t.throws(() => c.open(meta()), { code: 'GSA_ERR_CHANNEL_DOWN' }, 'no new streams while down');
  // The edge comes back on the same port with the same state (same signing key).
  edge = await startEdge({ ...opts, port });
  current = edge;
  t.teardown(() => edge.close({ graceMs: 0 }));
  await c.waitUp(5000);
  const m = meta({ host: 'echo.contoso.test' });
  const r = await exchange(c.open(m), Buffer.from('after restart'));
  t.equal(r.bytes.toString(), 'after restart');
  t.equal((await byConn(edge, m)).sentBytes, 13);
  await c.close();
  await delay(10);
});

t.test('graceful close: GOAWAY, flows reset and logged, then no listener', async (t) => {
  const { edge, client } = await setup(t);
  const hose = await firehose();
  t.teardown(() => hose.close());
  const c = await client('internet');
  const downs: Array<{ reason: string }> = [];
  c.on('down', (i: { reason: string }) => downs.push(i));
  // A direct IP flow remapped by... use the hosts map entry for echo: keep one open flow.
  const m = meta({ host: 'echo.contoso.test' });
  const s = c.open(m);
  s.on('error', () => {});
  s.write('partial');
  await s.opened;
  await edge.close({ graceMs: 100 });
  const rec = await byConn(edge, m);
  t.same(shapeProblems(rec), []);
  t.ok(rec.sentBytes >= 0);
  t.ok(
    downs.some((d) => /GOAWAY|closed/.test(d.reason)),
    'the client was told',
  );
  const refused = await new Promise<boolean>((r) => {
    const ws = new WebSocket(`${edge.url.replace(/^http/, 'ws')}/tunnel/internet`);
    ws.on('error', () => r(true));
    ws.on('open', () => {
      ws.terminate();
      r(false);
    });
  });
  t.ok(refused, 'nothing listens after close');
});

t.test(
  'graceful close: a flow that finishes in the grace period is logged a success',
  async (t) => {
    const { edge, client } = await setup(t);
    const c = await client('internet');
    const m = meta({ host: 'echo.contoso.test' });
    const s = c.open(m);
    const data = randomBytes(8 * 1024 * 1024);
    const got = exchange(s, data);
    await s.opened;
    const closing = edge.close({ graceMs: 10_000 });
    const r = await got;
    t.equal(r.reset, null, 'not reset');
    t.equal(r.bytes.length, GREETING.length + data.length, 'every byte echoed');
    await closing;
    const rec = await byConn(edge, m);
    t.equal(rec.operationStatus, 'success', `logged a success (${rec.failureReason ?? ''})`);
    t.equal(rec.failureReason, null);
  },
);

t.test('TLS by default: clients trust the edge CA', async (t) => {
  const tmp = await tempDir();
  const echo = await echoServer();
  t.teardown(async () => {
    await echo.close();
    await tmp.remove();
  });
  const edge = await startEdge({
    stateDir: tmp.dir,
    hostsMap: { 'echo.contoso.test': `127.0.0.1:${echo.port}` },
    egress: { systemResolver: false, directIp: false },
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  t.match(edge.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.match(edge.caPem, /BEGIN CERTIFICATE/);
  const c = new TunnelClient({
    url: edge.url,
    channel: 'internet',
    ca: edge.caPem!,
    getToken: (ch) => edge.issueToken({ channel: ch }),
    limits: { keepaliveInterval: 0 },
  });
  t.teardown(() => c.close());
  c.start();
  await c.waitUp(5000);
  const r = await exchange(c.open(meta({ host: 'echo.contoso.test' })), Buffer.from('tls'));
  t.equal(r.bytes.toString(), 'tls');
  // Without the CA the handshake fails.
  const bad = new TunnelClient({
    url: edge.url,
    channel: 'internet',
    getToken: (ch) => edge.issueToken({ channel: ch }),
    backoff: { baseMs: 1000, maxMs: 1000 },
  });
  const down = new Promise<{ error?: Error }>((r) => bad.once('down', r));
  bad.start();
  const info = await down;
  await bad.close();
  t.match(info.error?.message ?? '', /certificate|self.signed|issuer/i);
});

/** An internet tunnel client whose tokens live `ttl()` seconds. */
/**
 * A client of `ttl` s tokens. `rotate`: replace a session before the edge closes it
 * (default false here: these tests are of the close itself).
 */
function ttlClient(
  edge: Edge,
  ttl: () => number,
  rotate = false,
  getToken: (ch: 'internet', o: { fresh: boolean }) => Promise<string> = (ch) =>
    edge.issueToken({ channel: ch, ttlSeconds: ttl() }),
): TunnelClient {
  return new TunnelClient({
    url: edge.url,
    channel: 'internet',
    getToken: (ch, o) => getToken(ch as 'internet', o),
    backoff: { baseMs: 20, maxMs: 50 },
    limits: { keepaliveInterval: 0 },
    rotateBeforeClose: rotate,
  });
}

t.test('closeOnTokenExpiry: the session closes with 4419 when its token expires', async (t) => {
  const { edge } = await setup(t, { limits: { closeOnTokenExpiry: true, graceMs: 100 } });
  // exp is in whole seconds: a 2 s token lives 1 to 2 s (a 1 s one could expire before its
  // session is up, and a session opened within the clock tolerance closes 30 s later).
  let ttl = 2;
  const c = ttlClient(edge, () => ttl);
  t.teardown(() => c.close());
  const down = new Promise<{ code?: number }>((r) => c.once('down', r));
  c.start();
  await c.waitUp(5000);
  ttl = 3600; // the reconnect gets a long-lived token
  const started = Date.now();
  const info = await down;
  t.equal(info.code, CloseCode.AUTH_EXPIRED);
  t.ok(Date.now() - started < 3500, 'closed at expiry');
  await c.waitUp(5000);
  t.ok(c.isUp(), 'reconnected with a fresh token');
});

/** A ttlClient with `ttl` s tokens, up; closed when `t` ends. */
async function upClient(t: Test, edge: Edge, ttl = 3600, rotate = false): Promise<TunnelClient> {
  const c = ttlClient(edge, () => ttl, rotate);
  t.teardown(() => c.close());
  c.start();
  await c.waitUp(5000);
  return c;
}

t.test(
  'a session the edge will close at its token expiry is replaced before then (make-before-break)',
  async (t) => {
    const { edge } = await setup(t, { limits: { closeOnTokenExpiry: true, graceMs: 100 } });
    const c = await upClient(t, edge, 2, true);
    const downs: unknown[] = [];
    c.on('down', (info) => downs.push(info));
    const first = c.session!;
    const firstClosed = new Promise<{ code: number }>((r) => first.once('close', r));
    // A flow on the first session, open across the replacement.
    const m = meta({ host: 'echo.contoso.test', port: 443 });
    const s = c.open(m);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.write('one\n');
    await until(() => Buffer.concat(got).toString().includes('one'), 3000);
    const rotated = await Promise.race([
      new Promise<boolean>((r) => c.once('rotated', () => r(true))),
      delay(3000).then(() => false),
    ]);
    t.ok(rotated, 'replaced within the token life (2 s)');
    t.not(c.session, first, 'a new live session');
    t.ok(c.isUp(), 'up throughout');
    // New flows go to the new session; the old one keeps its flow and takes none.
    const r2 = await exchange(
      c.open(meta({ host: 'echo.contoso.test', port: 443 })),
      Buffer.from('x'),
    );
    t.equal(r2.reset, null, 'a new flow works on the new session');
    t.equal(first.stats().streams, 1, 'the old session holds only its own flow');
    s.write('two\n');
    await until(() => Buffer.concat(got).toString().includes('two'), 3000);
    t.pass('the flow on the old session still relays');
    s.end();
    const info = await Promise.race([firstClosed, delay(3000).then(() => ({ code: -1 }))]);
    t.equal(info.code, CloseCode.NORMAL, 'the old session closed once drained, before its expiry');
    t.same(downs, [], 'the channel never went down');
  },
);

t.test(
  'a replacement that cannot be made: the session stays until the edge closes it',
  async (t) => {
    const { edge } = await setup(t, { limits: { closeOnTokenExpiry: true, graceMs: 100 } });
    let refuse = true;
    const c = ttlClient(
      edge,
      () => 2,
      true,
      (ch, { fresh }) =>
        fresh && refuse
          ? Promise.reject(new Error('token endpoint down'))
          : edge.issueToken({ channel: ch, ttlSeconds: 2 }),
    );
    t.teardown(() => c.close());
    c.start();
    await c.waitUp(5000);
    const failed = new Promise<{ reason: string }>((r) => c.once('rotateFailed', r));
    const down = new Promise<{ code?: number }>((r) => c.once('down', r));
    t.match(await failed, { reason: 'token unavailable' });
    t.ok(c.isUp(), 'still up on the old session');
    refuse = false;
    t.equal((await down).code, CloseCode.AUTH_EXPIRED, 'closed by the edge at expiry');
    await c.waitUp(5000);
    t.ok(c.isUp(), 'and replaced then');
  },
);

t.test('an edge that does not close at expiry: no replacement', async (t) => {
  const { edge } = await setup(t);
  const c = await upClient(t, edge, 2, true);
  const rotated = await Promise.race([
    new Promise<boolean>((r) => c.once('rotated', () => r(true))),
    delay(2500).then(() => false),
  ]);
  t.notOk(rotated, 'the session is kept');
  t.ok(c.isUp());
});

t.test(
  'whenBack: a session closed at expiry is replaced at once, and flows may wait for it',
  async (t) => {
    const { edge } = await setup(t, { limits: { closeOnTokenExpiry: true, graceMs: 100 } });
    const c = await upClient(t, edge, 2);
    t.equal(c.whenBack(), null, 'up: nothing to wait for');
    const down = new Promise<{ retryInMs: number }>((r) => c.once('down', r));
    const info = await down;
    t.equal(info.retryInMs, 0, 'reconnects at once, without backoff');
    const back = c.whenBack();
    t.ok(back !== null, 'down after 4419: a flow may wait');
    t.equal(await back, true, 'and the new session comes');
    t.ok(c.isUp());
  },
);

t.test('whenBack: not after a crash; false at once when the replacement fails', async (t) => {
  const crashed = await setup(t);
  const a = await upClient(t, crashed.edge);
  const aDown = new Promise((r) => a.once('down', r));
  await crashed.edge.kill();
  await aDown;
  t.equal(a.whenBack(), null, 'a crashed edge: the fallback applies at once');

  const going = await setup(t);
  const b = await upClient(t, going.edge);
  const bDown = new Promise((r) => b.once('down', r));
  const closing = going.edge.close({ graceMs: 200 });
  await bDown;
  const back = b.whenBack();
  t.ok(back !== null, 'GOAWAY: a flow may wait for the replacement');
  const t0 = Date.now();
  t.equal(await back, false, 'the edge is gone: no replacement');
  t.ok(
    Date.now() - t0 < 2500,
    `told when the reconnect failed, not after 3 s (${Date.now() - t0} ms)`,
  );
  await closing;
});

t.test(
  'closeOnTokenExpiry: a 30-day token, and one taken within the clock tolerance, stay up',
  async (t) => {
    const { edge } = await setup(t, { limits: { closeOnTokenExpiry: true, graceMs: 100 } });
    for (const [ttl, what] of [
      [30 * 86400, "a 30-day token (past setTimeout's 24.8 days)"],
      [-10, 'a token 10 s past exp (verify allows 30 s)'],
    ] as const) {
      const c = ttlClient(edge, () => ttl);
      let downs = 0;
      c.on('down', () => downs++);
      c.start();
      await c.waitUp(5000);
      await delay(1000);
      t.equal(downs, 0, `${what}: not closed`);
      t.ok(c.isUp(), `${what}: up`);
      await c.close();
    }
  },
);

t.test('OPEN metadata edge cases: IP literal as host, oversized fields, bad port', async (t) => {
  const { edge, echo, client } = await setup(t);
  const c = await client('private');
  // An address given as the host matches address segments (127.77.0.0/16 tcp 3389).
  const m = meta({ channel: 'private', host: '127.77.0.5', ip: null, port: 3389 });
  const r = await exchange(c.open(m), Buffer.from('x'));
  t.equal(r.bytes.toString(), `${GREETING}x`);
  const rec = await byConn(edge, m);
  t.equal(rec.destinationFQDN, null);
  t.equal(rec.privateAccessDetails?.resolvedDestination, `127.0.0.1:${echo.port}`);
  // Oversized strings are capped in the log; an oversized host is refused.
  const long = meta({
    channel: 'private',
    host: 'intranet.contoso.test',
    process: 'p'.repeat(5000),
    connectionId: 'c'.repeat(500),
  });
  await exchange(c.open(long), Buffer.from('x'));
  const lr = await edge.logs.waitFor((x) => x.connectionId === 'c'.repeat(128));
  t.equal(lr.initiatingProcessName?.length, 260);
  const huge = meta({ channel: 'private', host: `${'a'.repeat(300)}.test` });
  const hr = await exchange(c.open(huge), Buffer.from('x'));
  t.equal(hr.reset, ResetCode.PROTOCOL);
  const hrec = await byConn(edge, huge);
  t.equal(hrec.action, 'block');
  t.same(shapeProblems(hrec), []);
  const bad = meta({ channel: 'private', host: 'intranet.contoso.test', port: 0 });
  const br = await exchange(c.open(bad), Buffer.from('x'));
  t.equal(br.reset, ResetCode.PROTOCOL);
  t.match((await byConn(edge, bad)).failureReason, /bad port/);
  // Address-only refusals log the address asked for.
  const ipOnly = meta({ channel: 'private', host: null, ip: '127.79.1.1', port: 3389 });
  await exchange(c.open(ipOnly), Buffer.from('x'));
  t.equal((await byConn(edge, ipOnly)).destinationIp, '127.79.1.1');
});

t.test("an OPEN for another channel than the tunnel's is refused and logged", async (t) => {
  const { edge, client } = await setup(t);
  // An internet token's tunnel cannot reach a private app, nor dodge the web filter as m365.
  const c = await client('internet');
  for (const [m, what] of [
    [meta({ channel: 'private', host: 'intranet.contoso.test', port: 443 }), 'private app'],
    [meta({ channel: 'm365', host: 'www.casino.test' }), 'filtered name as m365'],
  ] as const) {
    const r = await exchange(c.open(m), Buffer.from('x'));
    t.equal(r.reset, ResetCode.PROTOCOL, `${what}: reset PROTOCOL`);
    t.equal(r.bytes.length, 0, `${what}: nothing relayed`);
    const rec = await byConn(edge, m);
    t.equal(rec.action, 'block', `${what}: logged as a block`);
    t.equal(rec.trafficType, 'internet', `${what}: trafficType is the tunnel's`);
    t.match(rec.failureReason, /on the internet tunnel/);
  }
});

t.test('OPEN metadata of the wrong types or size ends the session, leaks no flow', async (t) => {
  const { edge, client } = await setup(t);
  for (const [over, what] of [
    [{ ip: 5 }, 'ip not a string'],
    [{ channel: { toString: 1 } }, 'channel not a string'],
    [{ junk: 'j'.repeat(9000) }, 'an OPEN over 8 KiB'],
  ] as const) {
    const c = await client('internet');
    const m = { ...meta({ channel: 'internet', host: 'echo.contoso.test' }), ...over };
    const s = c.open(m as unknown as OpenMeta);
    const r = await exchange(s, Buffer.from('x'));
    t.not(r.reset, null, `${what}: the stream is reset`);
    t.ok(await until(() => edge.activeFlows === 0, 2000), `${what}: no flow left active`);
    await c.close();
  }
  const c = await client('internet');
  const m = { ...meta({ channel: 'internet', host: 'echo.contoso.test' }), junk: 'j'.repeat(100) };
  const r = await exchange(c.open(m as OpenMeta), Buffer.from('x'));
  t.equal(r.reset, null, 'a good OPEN with an unknown field works');
  const closing = edge.close({ graceMs: 100 });
  t.equal(
    await Promise.race([closing.then(() => 'closed'), delay(5000).then(() => 'hung')]),
    'closed',
    'edge.close() resolves',
  );
});

t.test('backpressure: a client that stops reading stalls the destination', async (t) => {
  const hose = await firehose();
  t.teardown(() => hose.close());
  const { edge, client } = await setup(t, {
    hostsMap: { 'big.contoso.test': `127.0.0.1:${hose.port}` },
  });
  const c = await client('internet');
  const m = meta({ host: 'big.contoso.test' });
  const s = c.open(m);
  s.on('error', () => {});
  let got = 0;
  let paused = false;
  s.on('data', (d: Buffer) => {
    got += d.length;
    if (got > 2_000_000 && !paused) {
      paused = true;
      s.pause();
    }
  });
  t.ok(await until(() => got > 2_000_000, 5000), 'data flowing');
  // Settled (what is in flight drains into the buffers; bounded, 6 s), then still for 400 ms.
  let w1 = hose.written();
  for (let i = 0; i < 20; i++) {
    await delay(300);
    const now = hose.written();
    if (now === w1) break;
    w1 = now;
  }
  await delay(400);
  const w2 = hose.written();
  t.equal(w2, w1, 'the destination is stalled while the client does not read');
  t.ok(w2 - got < 32 * 1024 * 1024, `in flight bounded (${((w2 - got) / 1048576).toFixed(1)} MiB)`);
  s.resume();
  t.ok(await until(() => hose.written() > w2, 3000), 'resumes when the client reads');
  s.destroy();
  const rec = await byConn(edge, m);
  t.ok(rec.receivedBytes >= got, 'receivedBytes counts what the edge sent');
});

t.test('tcpIdleTimeoutMs resets an idle flow with TIMEOUT', async (t) => {
  const { edge, client } = await setup(t, { limits: { tcpIdleTimeoutMs: 150, graceMs: 100 } });
  const c = await client('internet');
  const m = meta({ host: 'echo.contoso.test' });
  const s = c.open(m);
  let reset: number | null = null;
  s.on('reset', (code: number) => {
    reset = code;
  });
  s.on('error', () => {});
  s.on('data', () => {});
  await s.opened;
  t.ok(await until(() => reset !== null, 3000), 'reset after idling');
  t.equal(reset, ResetCode.TIMEOUT);
  const rec = await byConn(edge, m);
  t.equal(rec.operationStatus, 'failure');
  t.match(rec.failureReason, /idle/);
  t.equal(rec.receivedBytes, GREETING.length);
});

t.test(
  'two edges on one state folder accept each other’s tokens (L4 load balancing)',
  async (t) => {
    const tmp = await tempDir();
    const echo = await echoServer();
    const common: EdgeOptions = {
      stateDir: tmp.dir,
      hostsMap: { 'echo.contoso.test': `127.0.0.1:${echo.port}` },
      egress: { systemResolver: false, directIp: false },
    };
    const a = await startEdge(common);
    const b = await startEdge(common);
    t.teardown(async () => {
      await a.close({ graceMs: 0 });
      await b.close({ graceMs: 0 });
      await echo.close();
      await tmp.remove();
    });
    t.equal(a.caPem, b.caPem, 'same CA');
    t.equal(a.issuer.kid, b.issuer.kid, 'same signing key');
    const token = await a.issueToken({ channel: 'internet' });
    for (const e of [a, b]) {
      const c = new TunnelClient({
        url: e.url,
        channel: 'internet',
        ca: e.caPem!,
        getToken: async () => token,
        limits: { keepaliveInterval: 0 },
      });
      c.start();
      await c.waitUp(5000);
      const m = meta({ host: 'echo.contoso.test' });
      const r = await exchange(c.open(m), Buffer.from('lb'));
      t.equal(r.bytes.toString(), 'lb', `edge on port ${e.port}`);
      await byConn(e, m);
      await c.close();
    }
  },
);
