/**
 * The SOCKS5 reply codes (RFC 1928 section 6) of failed CONNECTs say what failed:
 * - the edge refusing a stream before any processing (RST REFUSED "too many streams") is
 *   0x01 general failure: nothing was tried (it was 0x05 "connection refused", which says
 *   the destination refused);
 * - an edge CONNECT_FAILED is classified by the errno token in its reason, not by /refused/
 *   against free text that holds the destination name ("cannot resolve
 *   refused.example.test" was 0x05, not 0x04);
 * - ENETUNREACH (no route to the network) is 0x03 network unreachable, direct or from the
 *   edge (it was 0x04; 0x03 was never sent).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { statusOf } from '../../src/capture/http-proxy.js';
import { Reply, replyOf } from '../../src/capture/socks5.js';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Demo, startDemo } from '../../src/client/demo.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { type Refusal, refusalOfError, refusalOfReset } from '../../src/forward/forwarder.js';
import { ResetCode } from '../../src/tunnel/types.js';
import { until } from '../e2e/helpers.js';
import { decision, fakeForwarder } from '../forward/fixtures/fakes.js';
import { domainRequest, hex, rawClient } from './helpers.js';

/** Demo servers, an edge allowing one stream per session, and a client with a SOCKS port. */
async function world(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-socks5-reply-codes-'));
  let demo: Demo | null = null;
  let edge: Edge | null = null;
  let client: RunningClient | null = null;
  t.teardown(async () => {
    await client?.close();
    await edge?.close({ graceMs: 100 });
    await demo?.close();
    await rm(dir, { recursive: true, force: true });
  });
  demo = await startDemo({ stateDir: dir });
  edge = await startEdge({
    stateDir: join(dir, 'edge'),
    hostsMap: demo.edge.hostsMap,
    connectorHosts: demo.edge.connectorHosts,
    filtering: demo.edge.filtering,
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 100, connectTimeoutMs: 2000, session: { maxConcurrentStreams: 1 } },
  });
  client = await startClient({
    edge: { url: edge.url, ca: edge.caPem },
    tenant: 'edge',
    profilePollMs: 100,
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 },
    resolver: { hosts: demo.client.hosts, dial: demo.client.dial, system: false, directIp: false },
    bypassLocalAddress: demo.bypassSource,
    limits: { openTimeoutMs: 3000, connectTimeoutMs: 2000 },
  });
  await client.waitConnected(10_000);
  return { edge, client, port: Number(client.addresses.socks!.split(':')[1]) };
}

t.test('tunneled CONNECT failures: the reply code says what failed', async (t) => {
  const { edge, client, port } = await world(t);

  // One stream per session: a second flow on the internet channel is refused by the edge.
  const first = await rawClient(t, port, [hex('05 01 00'), domainRequest('news.test', 80)]);
  t.equal((await first.waitBytes(12))[3], 0, 'the first flow is granted');
  await until(() => edge.activeFlows === 1, 'the first flow open at the edge');
  const second = await rawClient(t, port, [hex('05 01 00'), domainRequest('news.test', 80)]);
  const r2 = await second.waitBytes(12);
  const f2 = client.flows.list().at(-1);
  t.match(f2?.reason, /too many streams/, 'the edge refused the second stream (RST REFUSED)');
  t.equal(
    r2[3],
    Reply.GENERAL_FAILURE,
    `the edge's stream limit: 0x01 general failure (got 0x0${r2[3]})`,
  );
  first.s.destroy();
  await until(() => edge.activeFlows === 0, 'the first flow closed at the edge');

  // A tunneled name the edge cannot resolve: host unreachable, whatever the name says.
  for (const name of ['nothere.example.test', 'refused.example.test']) {
    const c = await rawClient(t, port, [hex('05 01 00'), domainRequest(name, 80)]);
    const r = await c.waitBytes(12);
    t.match(client.flows.list().at(-1)?.reason, /cannot resolve/, `${name}: not resolved`);
    t.equal(r[3], Reply.HOST_UNREACHABLE, `${name}: 0x04 host unreachable (got 0x0${r[3]})`);
  }
});

t.test('no route to the network: 0x03 network unreachable', async (t) => {
  const err = Object.assign(new Error('connect ENETUNREACH 10.9.9.9:80'), { code: 'ENETUNREACH' });
  t.equal(replyOf(refusalOfError(err)), Reply.NETWORK_UNREACHABLE, 'bypassed (direct connect)');
  const ehost = Object.assign(new Error('connect EHOSTUNREACH 10.9.9.9:80'), {
    code: 'EHOSTUNREACH',
  });
  t.equal(replyOf(refusalOfError(ehost)), Reply.HOST_UNREACHABLE, 'EHOSTUNREACH stays 0x04');
  const edgeSaid =
    'stream reset by peer: CONNECT_FAILED (connect failed: ENETUNREACH from 10.9.9.9:80)';
  t.equal(
    replyOf(refusalOfReset(ResetCode.CONNECT_FAILED, edgeSaid)),
    Reply.NETWORK_UNREACHABLE,
    'tunneled (the edge could not route)',
  );
});

t.test('refusal kinds: reasons and errno tokens', async (t) => {
  const cf = (reason: string) => refusalOfReset(ResetCode.CONNECT_FAILED, reason);
  t.equal(cf('connect failed: ECONNREFUSED from 10.0.0.1:80'), 'refused');
  t.equal(cf('connect failed: ETIMEDOUT from 10.0.0.1:80'), 'timeout');
  t.equal(cf('connect failed: EHOSTUNREACH from 10.0.0.1:80'), 'unreachable');
  t.equal(cf('cannot resolve econnrefused.enetunreach.test'), 'unreachable', 'a name is no errno');
  t.equal(cf('cannot resolve refused.test'), 'unreachable');
  t.equal(refusalOfReset(ResetCode.REFUSED, 'too many streams'), 'failed');
  t.equal(refusalOfReset(ResetCode.BLOCKED, 'filtered'), 'blocked');
  const replies: Array<[Refusal, number]> = [
    ['blocked', Reply.NOT_ALLOWED],
    ['network', Reply.NETWORK_UNREACHABLE],
    ['unreachable', Reply.HOST_UNREACHABLE],
    ['refused', Reply.CONNECTION_REFUSED],
    ['timeout', Reply.TTL_EXPIRED],
    ['failed', Reply.GENERAL_FAILURE],
  ];
  for (const [r, code] of replies) t.equal(replyOf(r), code, `${r}: 0x0${code}`);
  const statuses: Array<[Refusal, number]> = [
    ['network', 502],
    ['failed', 502],
  ];
  for (const [r, st] of statuses) t.equal(statusOf(r), st, `HTTP proxy: ${r} is ${st}`);
});

t.test('a refusal is counted by kind', async (t) => {
  const tunnel = decision({ action: 'tunnel', channel: 'internet', ruleId: 'ia' });
  const { fwd, tunnels, flows } = fakeForwarder([{ decision: tunnel }]);
  tunnels.behaviour = {
    kind: 'reset',
    code: ResetCode.CONNECT_FAILED,
    reason: 'connect failed: ENETUNREACH from 10.9.9.9:80',
  };
  const req = { host: 'news.test', ip: null, port: 80, srcIp: '127.0.0.1', srcPort: 1 };
  t.equal((await fwd.connectTcp({ ...req, capture: 'socks' })).refused, 'network');
  tunnels.behaviour = { kind: 'reset', code: ResetCode.REFUSED, reason: 'too many streams' };
  t.equal((await fwd.connectTcp({ ...req, capture: 'socks' })).refused, 'failed');
  t.equal(flows.counters.refusals.get('network'), 1);
  t.equal(flows.counters.refusals.get('failed'), 1);
  t.match(flows.metrics(), /gsa_client_refusals_total\{kind="network"\} 1/);
});
