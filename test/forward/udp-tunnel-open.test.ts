/**
 * A tunneled UDP destination flow while and after the edge is asked to open it, as for TCP
 * (Forwarder.connectTcp / awaitOpened):
 * - the wait for OPEN_OK is bounded by `openTimeoutMs`, then the stream is given up;
 * - an edge refusal RST BLOCKED is recorded as action Block, its datagrams as `blocked`;
 * - a session lost before OPEN_OK (SESSION_CLOSED) applies the rule's fallback (hardening);
 * - the refused flow stays (discarding) until `udpIdleMs`: one OPEN and one record per
 *   destination, not one per datagram;
 * - the association closing while the edge has not answered gives the stream up;
 * - the edge's FIN (its own idle timeout) ends the flow, and the next datagram opens a fresh
 *   one rather than going into a stream the edge no longer relays.
 */
import t from 'tap';
import type { Decision } from '../../src/classify/types.js';
import { PROTO_UDP } from '../../src/classify/types.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import { ResetCode } from '../../src/tunnel/types.js';
import {
  clientState,
  decision,
  type EdgeBehaviour,
  FakeClassifier,
  FakeTunnels,
  udpEcho,
} from './fixtures/fakes.js';

const TUNNEL = decision({
  action: 'tunnel',
  channel: 'private',
  ruleId: 'pa-udp',
  fallback: 'block',
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(d: Decision = TUNNEL) {
  const tunnels = new FakeTunnels();
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () => new FakeClassifier([{ proto: PROTO_UDP, decision: d }]),
    tunnels,
    clientState: () => clientState(),
    resolver: new Resolver({ system: false }),
    flows,
    openTimeoutMs: 200,
    udpIdleMs: 5000,
  });
  const replies: string[] = [];
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, (p) =>
    replies.push(p.toString()),
  );
  return { tunnels, flows, a, replies };
}

t.test('an edge that never accepts: the flow ends after openTimeoutMs', async (t) => {
  const { tunnels, flows, a } = setup();
  t.teardown(() => a.close());
  tunnels.behaviour = { kind: 'hang' };
  // An application retrying every 50 ms for 3x openTimeoutMs.
  for (let i = 0; i < 12; i++) {
    a.send(null, '127.77.0.9', 7000, Buffer.from(`ping ${i}`));
    await sleep(50);
  }
  const rec = flows.list().find((f) => f.destinationIp === '127.77.0.9')!;
  t.not(rec.status, 'Active', 'the flow did not stay pending past openTimeoutMs');
  t.equal(tunnels.opened[0]?.destroyed, true, 'the unanswered stream was given up');
  t.equal(tunnels.opened[0]?.resetCode, ResetCode.TIMEOUT, 'reset with TIMEOUT, as for TCP');
  t.equal(tunnels.opened.length, 1, 'not asked again within udpIdleMs');
  t.ok((flows.counters.drops.get('timeout') ?? 0) > 0, 'its datagrams counted as timeout');
});

t.test('an edge block (RST BLOCKED) is recorded as Block, datagrams as blocked', async (t) => {
  const { tunnels, flows, a } = setup();
  t.teardown(() => a.close());
  tunnels.behaviour = { kind: 'reset', code: ResetCode.BLOCKED, reason: 'not in a segment' };
  a.send(null, '127.77.0.9', 7000, Buffer.from('x'));
  await sleep(50);
  const rec = flows.list().find((f) => f.destinationIp === '127.77.0.9')!;
  t.equal(rec.status, 'Terminated');
  t.equal(rec.action, 'Block', 'the edge blocked it: action Block, as for TCP');
  t.equal(flows.counters.drops.get('blocked'), 1, 'the datagram counted as blocked');
  t.equal(flows.counters.drops.get('unreachable') ?? 0, 0, 'not as unreachable');
});

t.test('an edge refusal is not re-asked for every later datagram', async (t) => {
  const { tunnels, flows, a } = setup();
  t.teardown(() => a.close());
  tunnels.behaviour = { kind: 'reset', code: ResetCode.BLOCKED, reason: 'not in a segment' };
  for (let i = 0; i < 5; i++) {
    a.send(null, '127.77.0.9', 7000, Buffer.from(`x${i}`));
    await sleep(30);
  }
  t.equal(tunnels.opened.length, 1, 'one OPEN for the destination within udpIdleMs');
  t.equal(
    flows.list().filter((f) => f.destinationIp === '127.77.0.9').length,
    1,
    'one flow record for the destination',
  );
  t.equal(flows.counters.drops.get('blocked'), 5, 'every datagram counted as blocked');
});

t.test('the session dies before OPEN_OK: the rule fallback applies', async (t) => {
  t.test('fallback block', async (t) => {
    const { tunnels, flows, a } = setup();
    t.teardown(() => a.close());
    tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
    a.send(null, '127.77.0.9', 7000, Buffer.from('x'));
    await sleep(50);
    const rec = flows.list().find((f) => f.destinationIp === '127.77.0.9')!;
    t.equal(rec.hardening, 'Y');
    t.equal(rec.action, 'Block');
    t.equal(rec.status, 'Terminated');
    t.equal(flows.counters.drops.get('hardening'), 1);
    t.equal(flows.counters.hardened, 1);
  });
  t.test('fallback bypass', async (t) => {
    const echo = await udpEcho();
    t.teardown(() => echo.close());
    const { tunnels, flows, a, replies } = setup({ ...TUNNEL, fallback: 'bypass' });
    t.teardown(() => a.close());
    tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
    a.send(null, '127.0.0.1', echo.port, Buffer.from('direct'));
    for (let i = 0; i < 100 && replies.length === 0; i++) await sleep(10);
    t.same(replies, ['DIRECT'], 'sent direct, answered');
    const rec = flows.list().find((f) => f.destinationPort === echo.port)!;
    t.equal(rec.hardening, 'Y');
    t.equal(rec.action, 'Bypass');
    t.equal(rec.status, 'Active');
    t.equal(flows.counters.hardened, 1, 'counted once');
  });
  t.test('fallback bypass that fails: the reason says both', async (t) => {
    const { tunnels, flows, a } = setup({ ...TUNNEL, fallback: 'bypass' });
    t.teardown(() => a.close());
    tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
    a.send('nx.example.test', null, 7001, Buffer.from('x'));
    let rec: FlowRecord | undefined;
    for (let i = 0; i < 100 && rec?.status !== 'Terminated'; i++) {
      await sleep(10);
      rec = flows.list().find((f) => f.destinationPort === 7001);
    }
    t.equal(rec?.hardening, 'Y');
    t.match(
      rec?.reason,
      /^unreachable: \w+ channel down: fallback bypass; cannot resolve nx\.example\.test$/,
    );
  });
});

t.test('a session being replaced (token expiry, GOAWAY): the flow waits for it', async (t) => {
  t.test(
    'down when the first datagram comes: queued, then tunneled on the new session',
    async (t) => {
      const { tunnels, flows, a, replies } = setup();
      t.teardown(() => a.close());
      tunnels.up.private = false;
      let back: (ok: boolean) => void = () => {};
      const waited = new Promise<boolean>((r) => {
        back = r;
      });
      tunnels.whenBack = () => (tunnels.up.private ? null : waited);
      a.send(null, '127.77.0.9', 7000, Buffer.from('one'));
      a.send(null, '127.77.0.9', 7000, Buffer.from('two'));
      await sleep(30);
      t.equal(tunnels.opened.length, 0, 'no OPEN while the session is being replaced');
      t.equal(flows.counters.drops.get('hardening') ?? 0, 0, 'no fallback meanwhile');
      tunnels.up.private = true;
      back(true);
      for (let i = 0; i < 100 && replies.length < 2; i++) await sleep(10);
      t.same(replies, ['eno', 'owt'], 'both datagrams went through the new session');
      t.equal(tunnels.opened.length, 1);
      const rec = flows.list().find((f) => f.destinationIp === '127.77.0.9')!;
      t.equal(rec.action, 'Tunnel');
      t.equal(rec.hardening, 'N', 'not a hardening decision');
      t.equal(rec.status, 'Active');
    },
  );
  t.test('the replacement fails: the fallback applies', async (t) => {
    const { tunnels, flows, a } = setup();
    t.teardown(() => a.close());
    tunnels.up.private = false;
    tunnels.whenBack = () => Promise.resolve(false);
    a.send(null, '127.77.0.9', 7000, Buffer.from('x'));
    for (let i = 0; i < 100 && !flows.counters.drops.get('hardening'); i++) await sleep(10);
    const rec = flows.list().find((f) => f.destinationIp === '127.77.0.9')!;
    t.equal(rec.hardening, 'Y');
    t.equal(rec.action, 'Block');
    t.equal(flows.counters.drops.get('hardening'), 1);
    t.equal(tunnels.opened.length, 0);
  });
  t.test('the session ends under the OPEN: opened once more on the new one', async (t) => {
    const { tunnels, flows, a, replies } = setup();
    t.teardown(() => a.close());
    // Each OPEN goes on a session that then dies under it; whenBack brings the replacement,
    // whose edge answers as `next` says.
    let next: EdgeBehaviour = { kind: 'connect' };
    tunnels.replacedUnderOpen('private', () => next);
    tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
    a.send(null, '127.77.0.9', 7000, Buffer.from('one'));
    for (let i = 0; i < 100 && replies.length < 1; i++) await sleep(10);
    t.same(replies, ['eno'], 'relayed on the replacement');
    t.equal(tunnels.opened.length, 2, 'one OPEN on each session');
    const rec = flows.list().find((f) => f.destinationIp === '127.77.0.9')!;
    t.equal(rec.action, 'Tunnel');
    const [first, second] = tunnels.opened.map((o) => o.meta.connectionId);
    t.not(second, first, 'the second OPEN has a connection id of its own');
    t.equal(rec.connectionId, second, "the flow record names the second OPEN's id");
    t.equal(rec.hardening, 'N');
    // Once only: a second death under the OPEN takes the fallback.
    tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
    next = tunnels.behaviour;
    a.send(null, '127.77.0.10', 7000, Buffer.from('x'));
    for (let i = 0; i < 100 && !flows.counters.drops.get('hardening'); i++) await sleep(10);
    t.equal(tunnels.opened.length, 4, 'two OPENs, then the fallback');
    const other = flows.list().find((f) => f.destinationIp === '127.77.0.10')!;
    t.equal(other.hardening, 'Y');
    t.equal(flows.counters.drops.get('hardening'), 1);
  });
});

t.test('closing the association while the edge has not answered gives the stream up', async (t) => {
  const { tunnels, flows, a } = setup();
  tunnels.behaviour = { kind: 'hang' };
  a.send(null, '127.77.0.9', 7000, Buffer.from('x'));
  await sleep(30);
  a.close();
  await sleep(30);
  t.equal(tunnels.opened[0]?.destroyed, true, 'the stream is given up');
  t.equal(flows.activeCount, 0, 'no flow Active');
});

t.test('the edge ends an idle flow (FIN): the next datagram opens a fresh one', async (t) => {
  const { tunnels, flows, a, replies } = setup();
  t.teardown(() => a.close());
  a.send(null, '127.77.0.9', 7000, Buffer.from('one'));
  for (let i = 0; i < 100 && replies.length < 1; i++) await sleep(10);
  t.same(replies, ['eno']);
  const first = tunnels.opened[0]!;
  first.push(null); // the edge's FIN
  for (let i = 0; i < 100 && !first.destroyed; i++) await sleep(10);
  t.ok(first.writableEnded, 'the client ended its side too');
  t.ok(first.destroyed, 'the stream closed');
  t.equal(flows.list()[0]?.status, 'Closed', 'the flow closed cleanly');
  a.send(null, '127.77.0.9', 7000, Buffer.from('two'));
  for (let i = 0; i < 100 && replies.length < 2; i++) await sleep(10);
  t.equal(tunnels.opened.length, 2, 'a fresh stream for the next datagram');
  t.same(replies, ['eno', 'owt'], 'answered through it');
  t.same(first.datagrams.map(String), ['one'], 'nothing sent into the ended stream');
});
