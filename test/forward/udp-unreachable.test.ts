/**
 * A UDP destination that cannot be reached: the association tells its `unreachable`
 * callback `net` (ENETUNREACH) or `host` (EHOSTUNREACH, a name or address that cannot be
 * resolved or dialed), as it tells `port` for a refusal (test/forward/udp-refused.test.ts),
 * for a bypassed flow (its socket's connect() or later error, the client's resolver) and a
 * tunneled one (the edge's OPEN failure, its later CONNECT_FAILED reset); what the flow
 * table and the drop counters record is unchanged. And the mapping behind it
 * (src/forward/refusal.ts).
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { PROTO_UDP } from '../../src/classify/types.js';
import type { Forwarder } from '../../src/forward/forwarder.js';
import {
  refusalOfError,
  refusalOfReset,
  unreachableOf,
  unreachableOfError,
  unreachableOfReset,
} from '../../src/forward/refusal.js';
import { Resolver } from '../../src/forward/resolver.js';
import { ResetCode } from '../../src/tunnel/types.js';
import { decision, fakeForwarder } from './fixtures/fakes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (f: () => boolean, ms = 2000): Promise<void> => {
  for (let i = 0; i < ms / 10 && !f(); i++) await sleep(10);
};

function associationOf(t: Test, fwd: Forwarder) {
  const told: string[] = [];
  const a = fwd.udpAssociation(
    { srcIp: '10.255.0.1', srcPort: 40000, capture: 'tun' },
    () => {},
    (host, ip, port, kind) => told.push(`${host ?? ip}:${port} ${kind}`),
  );
  t.teardown(() => a.close());
  return { a, told };
}

/** A UDP sink on 127.0.0.1 (never answers), closed by `t`'s teardown. */
async function sink(t: Test): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  t.teardown(() => s.close());
  return s.address().port;
}

const errno = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`connect ${code}`), { code });

t.test('the mapping: refusal, socket errno and edge reset to the ICMP', async (t) => {
  t.equal(unreachableOf('network'), 'net');
  t.equal(unreachableOf('unreachable'), 'host');
  t.equal(unreachableOf('refused'), 'port');
  for (const r of ['blocked', 'timeout', 'failed'] as const) t.equal(unreachableOf(r), null, r);

  t.equal(unreachableOfError(errno('ECONNREFUSED')), 'port');
  t.equal(unreachableOfError(errno('ENETUNREACH')), 'net');
  t.equal(unreachableOfError(errno('EHOSTUNREACH')), 'host');
  t.equal(unreachableOfError(errno('EHOSTDOWN')), 'host');
  for (const c of ['EMSGSIZE', 'ENOBUFS', 'EPERM', 'EACCES', 'ETIMEDOUT', 'EINVAL']) {
    t.equal(unreachableOfError(errno(c)), null, `${c}: a local error, no ICMP`);
  }
  t.equal(unreachableOfError({}), null);
  // Consistent with the refusal the flow table records.
  for (const c of ['ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH']) {
    t.equal(unreachableOf(refusalOfError(errno(c))), unreachableOfError(errno(c)), c);
  }

  const CF = ResetCode.CONNECT_FAILED;
  const cases: [number, string, string | null][] = [
    [CF, 'ECONNREFUSED', 'port'],
    [CF, 'ENETUNREACH', 'net'],
    [CF, 'EHOSTUNREACH', 'host'],
    [CF, 'connect failed: EHOSTUNREACH from 10.1.2.3:53', 'host'],
    [CF, 'cannot resolve nx.contoso.test (not in the hosts map)', 'host'],
    [CF, 'cannot resolve nx.example.test: ENOTFOUND', 'host'],
    [CF, 'connector cannot resolve nx.contoso.test', 'host'],
    [CF, 'connector cannot resolve udp-echo.contoso.test:7002 (it knows port 7000)', 'host'],
    [CF, 'connector cannot resolve intranet.contoso.test:8001 (it knows ports 80, 443)', 'host'],
    [CF, 'connector cannot resolve db (search suffixes: contoso.test)', 'host'],
    [CF, 'no route to 10.9.9.9 (not in the hosts map)', 'host'],
    [CF, 'connector has no route to 10.9.9.9', 'host'],
    // A name that looks like an errno is not one (errno tokens are upper case).
    [CF, 'cannot resolve econnrefused.test (not in the hosts map)', 'host'],
    [CF, 'ETIMEDOUT', null],
    [CF, 'EMSGSIZE', null],
    [CF, 'udp error', null],
    [CF, 'no destination', null],
    [ResetCode.BLOCKED, 'ENETUNREACH', null],
    [ResetCode.TIMEOUT, 'connect timeout', null],
    [ResetCode.REFUSED, 'stream limit', null],
    [ResetCode.INTERNAL, 'cannot resolve x', null],
  ];
  for (const [code, reason, want] of cases) {
    t.equal(unreachableOfReset(code, reason), want, `${code} ${reason}`);
  }
  t.equal(refusalOfReset(CF, 'ENETUNREACH'), 'network', 'the recorded refusal, unchanged');
});

t.test('bypassed: a name that cannot be resolved, an address not dialed: host', async (t) => {
  const { fwd, flows } = fakeForwarder(
    [],
    {},
    {
      resolver: new Resolver({ hosts: {}, system: false, directIp: false }),
    },
  );
  const { a, told } = associationOf(t, fwd);
  a.send('nx.example.test', null, 5353, Buffer.from('x'));
  await until(() => told.length > 0);
  t.same(told, ['nx.example.test:5353 host']);
  a.send(null, '198.51.100.7', 9999, Buffer.from('y'));
  await until(() => told.length > 1);
  t.same(told.at(-1), '198.51.100.7:9999 host', 'no route to it: directIp off');
  const rec = flows.list().find((r) => r.destinationPort === 9999)!;
  t.equal(rec.action, 'Bypass');
  t.equal(rec.status, 'Terminated');
  t.match(rec.reason, /^unreachable: no route to 198\.51\.100\.7/, 'recorded as before');
  t.match(rec.reason, /; no profile acquired it$/, 'and why it went direct, as for TCP');
  const nx = flows.list().find((r) => r.destinationFqdn === 'nx.example.test')!;
  t.equal(nx.reason, 'unreachable: cannot resolve nx.example.test; no profile acquired it');
  t.equal(flows.counters.drops.get('unreachable'), 2, 'each first datagram dropped, as before');
  // A later datagram of the discarded flow is answered again, as a router answers each.
  a.send(null, '198.51.100.7', 9999, Buffer.from('z'));
  await until(() => told.length > 2);
  t.same(told.slice(2), ['198.51.100.7:9999 host']);
  t.equal(flows.counters.drops.get('unreachable'), 3, 'and counted as before');
});

t.test("bypassed: connect() finds no route: net, from the socket's errno", async (t) => {
  const { fwd, flows } = fakeForwarder();
  const { a, told } = associationOf(t, fwd);
  // As connect(2) on a host without a route to 203.0.113.9 (test/e2e does it for real).
  const stub = a as unknown as { connectedSocket: () => Promise<Error> };
  stub.connectedSocket = async () => errno('ENETUNREACH');
  a.send(null, '203.0.113.9', 4000, Buffer.from('x'));
  await until(() => told.length > 0);
  t.same(told, ['203.0.113.9:4000 net']);
  const rec = flows.list().find((r) => r.destinationPort === 4000)!;
  t.equal(rec.status, 'Terminated');
  t.match(rec.reason, /^unreachable: ENETUNREACH 203\.0\.113\.9:4000/);
  stub.connectedSocket = async () => errno('EMSGSIZE');
  a.send(null, '203.0.113.9', 4001, Buffer.from('x'));
  await until(() => flows.list().some((r) => r.destinationPort === 4001 && r.endTime !== null));
  await sleep(20);
  t.equal(told.length, 1, 'another errno: nothing told');
});

t.test("bypassed: the connected socket's later host / net unreachable is told", async (t) => {
  const port = await sink(t);
  const { fwd, flows } = fakeForwarder();
  const { a, told } = associationOf(t, fwd);
  a.send(null, '127.0.0.1', port, Buffer.from('x'));
  const flowsOf = (a as unknown as { flows: Map<string, { sock: Socket | null }> }).flows;
  await until(() => flowsOf.get(`127.0.0.1|${port}`)?.sock != null);
  const sock = flowsOf.get(`127.0.0.1|${port}`)!.sock!;
  // What the kernel reports on a connected socket for an ICMP host / net unreachable.
  sock.emit('error', errno('EHOSTUNREACH'));
  sock.emit('error', errno('ENETUNREACH'));
  sock.emit('error', errno('ENOBUFS'));
  t.same(told, [`127.0.0.1:${port} host`, `127.0.0.1:${port} net`]);
  const rec = flows.list().find((r) => r.destinationPort === port)!;
  t.equal(rec.status, 'Active', 'the flow stays, as a connected socket does');
  t.equal(flows.counters.drops.get('refused'), undefined, 'not counted as a refusal');
});

t.test("tunneled: the edge's OPEN failure for a name it cannot resolve: host", async (t) => {
  const PRIV = decision({ action: 'tunnel', channel: 'private', ruleId: 'pa-udp' });
  const { fwd, tunnels, flows } = fakeForwarder([
    { host: 'nx.contoso.test', proto: PROTO_UDP, decision: PRIV },
    { ip: '127.77.0.5', proto: PROTO_UDP, decision: PRIV },
  ]);
  const reason = 'connector cannot resolve nx.contoso.test';
  tunnels.behaviour = { kind: 'reset', code: ResetCode.CONNECT_FAILED, reason };
  const { a, told } = associationOf(t, fwd);
  a.send('nx.contoso.test', null, 7000, Buffer.from('x'));
  await until(() => told.length > 0);
  t.same(told, ['nx.contoso.test:7000 host']);
  await until(() => flows.list().some((r) => r.destinationFqdn === 'nx.contoso.test'));
  const rec = flows.list().find((r) => r.destinationFqdn === 'nx.contoso.test')!;
  t.equal(rec.action, 'Tunnel');
  t.equal(rec.status, 'Terminated');
  t.match(rec.reason, /^unreachable: .*connector cannot resolve nx\.contoso\.test/);
  t.equal(flows.counters.drops.get('unreachable'), 1, 'its datagram counted as before');
  // The flow discards until udpIdleMs, without asking the edge again: each datagram answered.
  a.send('nx.contoso.test', null, 7000, Buffer.from('y'));
  await until(() => told.length > 1);
  t.same(told.slice(1), ['nx.contoso.test:7000 host']);
  t.equal(tunnels.opened.length, 1);

  // ENETUNREACH before OPEN_OK: net. A refusal of the stream itself, a block, a
  // timeout: nothing.
  tunnels.behaviour = { kind: 'reset', code: ResetCode.CONNECT_FAILED, reason: 'ENETUNREACH' };
  a.send(null, '127.77.0.5', 7001, Buffer.from('x'));
  await until(() => told.length > 2);
  t.same(told.slice(2), ['127.77.0.5:7001 net']);
  let port = 7002;
  for (const [code, why] of [
    [ResetCode.REFUSED, 'stream limit'],
    [ResetCode.BLOCKED, 'web filtering'],
    [ResetCode.TIMEOUT, 'connect timeout'],
  ] as const) {
    tunnels.behaviour = { kind: 'reset', code, reason: why };
    a.send(null, '127.77.0.5', port++, Buffer.from('x'));
  }
  await until(() => flows.list().filter((r) => r.status === 'Terminated').length >= 5);
  await sleep(30);
  t.equal(told.length, 3, 'failed, blocked, timeout: no ICMP');
});

t.test("tunneled: the edge's CONNECT_FAILED after OPEN_OK: host / net", async (t) => {
  const PRIV = decision({ action: 'tunnel', channel: 'private', ruleId: 'pa-udp' });
  const { fwd, tunnels, flows } = fakeForwarder([
    { ip: '127.77.0.5', proto: PROTO_UDP, decision: PRIV },
  ]);
  const { a, told } = associationOf(t, fwd);
  const resetAfterOpen = (reason: string) =>
    tunnels.resetAfterOpen(
      () => a.send(null, '127.77.0.5', 7000, Buffer.from('x')),
      ResetCode.CONNECT_FAILED,
      reason,
    );
  await resetAfterOpen('EHOSTUNREACH');
  await resetAfterOpen('ENETUNREACH');
  await resetAfterOpen('EMSGSIZE');
  t.same(told, ['127.77.0.5:7000 host', '127.77.0.5:7000 net']);
  const rec = flows
    .list()
    .filter((r) => r.destinationPort === 7000)
    .at(-2)!;
  t.match(rec.reason, /reset 1 ENETUNREACH/, 'the flow table says why, as before');
  t.equal(flows.counters.drops.get('refused'), undefined);
});
