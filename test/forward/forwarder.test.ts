import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { PROTO_TCP, PROTO_UDP } from '../../src/classify/types.js';
import { type FlowRecord, FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder, type ForwarderOptions, refusalOfReset } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import { ResetCode } from '../../src/tunnel/types.js';
import { until } from '../edge/helpers.js';
import {
  clientState,
  closedPort,
  decision,
  type EdgeBehaviour,
  echoServer,
  FakeClassifier,
  FakeTunnels,
  readAll,
  udpEcho,
} from './fixtures/fakes.js';

const TUNNEL_INET = decision({
  action: 'tunnel',
  channel: 'internet',
  ruleId: 'ia-acquire',
  policyId: 'p-ia',
  fallback: 'bypass',
});
const TUNNEL_PRIV = decision({
  action: 'tunnel',
  channel: 'private',
  ruleId: 'pa-app1',
  fallback: 'block',
});
const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'ia-bypass' });
const BLOCK = decision({
  action: 'block',
  channel: 'internet',
  ruleId: 'blk',
  ruleName: 'no-gambling',
});
const DROP = decision({
  action: 'drop',
  channel: null,
  ruleId: null,
  reason: 'QUIC dropped (iOS)',
});
const TUNNEL_EXO_UDP = decision({
  action: 'tunnel',
  channel: 'm365',
  ruleId: 'exo-udp',
  group: 'exchange',
});

/** A TCP flow request from 127.0.0.1:`srcPort`, as a capture makes it. */
function tcpReq(
  host: string | null,
  ip: string | null,
  port: number,
  srcPort = 1,
  capture: 'socks' | 'http' = 'socks',
) {
  return { host, ip, port, srcIp: '127.0.0.1', srcPort, capture };
}

function setup(
  rules: ConstructorParameters<typeof FakeClassifier>[0],
  hosts: Record<string, string> = {},
  over: Partial<ForwarderOptions> = {},
) {
  const classifier = new FakeClassifier(rules);
  const tunnels = new FakeTunnels();
  const flows = new FlowTable({ keepClosed: 50 });
  let state = clientState();
  const fwd = new Forwarder({
    classifier: () => classifier,
    tunnels,
    clientState: () => state,
    resolver: new Resolver({ hosts, system: false }),
    flows,
    connectTimeoutMs: 2000,
    openTimeoutMs: 300,
    udpIdleMs: 200,
    ...over,
  });
  return {
    classifier,
    tunnels,
    flows,
    fwd,
    setState: (s: ReturnType<typeof clientState>) => {
      state = s;
    },
  };
}

/** A connected pair of loopback sockets: [app side, capture side]. */
async function socketPair(): Promise<[Socket, Socket, () => void]> {
  const srv = createServer({ allowHalfOpen: true });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const accepted = once(srv, 'connection');
  const app = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const [inner] = (await accepted) as [Socket];
  await once(app, 'connect').catch(() => {});
  return [app, inner, () => srv.close()];
}

t.test('refusalOfReset maps RST codes', async (t) => {
  t.equal(refusalOfReset(ResetCode.BLOCKED, ''), 'blocked');
  t.equal(refusalOfReset(ResetCode.TIMEOUT, ''), 'timeout');
  t.equal(refusalOfReset(ResetCode.CONNECT_FAILED, 'connect ECONNREFUSED'), 'refused');
  t.equal(refusalOfReset(ResetCode.CONNECT_FAILED, 'EHOSTUNREACH'), 'unreachable');
  // The edge refused the stream itself (stream limit): nothing was tried.
  t.equal(refusalOfReset(ResetCode.REFUSED, 'too many streams'), 'failed');
});

t.test(
  'tunnel: one classification, meta carries the connection id, bytes counted, half-close',
  async (t) => {
    const echo = await echoServer();
    t.teardown(echo.close);
    const { fwd, tunnels, classifier, flows } = setup([
      { host: 'www.example.test', decision: TUNNEL_INET },
    ]);
    const res = await fwd.connectTcp(tcpReq('WWW.Example.test.', null, echo.port, 5555));
    t.notOk(res.refused, 'not refused');
    t.equal(classifier.seen.length, 1, 'classified once');
    t.same(classifier.seen[0], {
      proto: PROTO_TCP,
      family: 0,
      ip: null,
      host: 'www.example.test',
      port: echo.port,
    });
    t.equal(tunnels.opened.length, 1);
    const meta = tunnels.opened[0]!.meta;
    t.equal(meta.channel, 'internet');
    t.equal(meta.host, 'www.example.test');
    t.equal(meta.ruleId, 'ia-acquire');
    t.equal(meta.connectionId, res.flow.connectionId);
    t.equal(meta.flowId, res.flow.flowId);
    t.equal(meta.srcPort, 5555);

    const [app, inner, stop] = await socketPair();
    t.teardown(stop);
    const done = fwd.relay(res.upstream!, inner);
    app.write('ping');
    const got = await new Promise<Buffer>((r) => app.once('data', r));
    t.equal(got.toString(), 'ping');
    t.equal(flows.list()[0]!.status, 'Active');
    app.end(); // half-close: the server answers 'bye' after our FIN
    const rest = await readAll(app);
    t.equal(rest.toString(), 'bye', 'data after half-close arrives');
    await done;
    await new Promise((r) => setImmediate(r));
    const rec = flows.list()[0]!;
    t.equal(rec.status, 'Closed');
    t.equal(rec.action, 'Tunnel');
    t.equal(rec.channel, 'internet');
    t.equal(rec.hardening, 'N');
    t.equal(rec.bytesSent, 4);
    t.equal(rec.bytesReceived, 7);
    t.equal(flows.counters.flows.Tunnel.internet, 1);
    t.match(flows.metrics(), /gsa_client_bytes_total\{direction="received",channel="internet"\} 7/);
  },
);

t.test(
  'half-close: a server silent after the application FIN does not hold the flow',
  async (t) => {
    // Accepts, then writes `drip` bytes 100 ms apart and ends; never reads.
    const serve = async (drip: number) => {
      const conns = new Set<Socket>();
      const srv = createServer({ allowHalfOpen: true }, (s) => {
        conns.add(s);
        s.on('error', () => {});
        let n = 0;
        const timer = setInterval(() => {
          if (n++ < drip) s.write('.');
          else if (drip > 0) {
            clearInterval(timer);
            s.end();
          }
        }, 100);
        s.once('close', () => clearInterval(timer));
      });
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
      t.teardown(() => {
        // It never closes its side by itself.
        for (const c of conns) c.destroy();
        srv.close();
      });
      return (srv.address() as { port: number }).port;
    };
    const { fwd, flows } = setup(
      [{ host: 'direct.test', decision: BYPASS }],
      { 'direct.test': '127.0.0.1' },
      // Ten times the servers' 100 ms pace: a loaded machine's stall is not silence.
      { halfCloseTimeoutMs: 1000 },
    );
    const run = async (port: number) => {
      const res = await fwd.connectTcp(tcpReq('direct.test', null, port, 2));
      const [app, inner, stop] = await socketPair();
      t.teardown(stop);
      app.on('error', () => {});
      const t0 = performance.now();
      const done = fwd.relay(res.upstream!, inner);
      app.end('GET / HTTP/1.0\r\n\r\n');
      // Bounded: a flow that is never closed fails the timing check below, not the run.
      const bound = setTimeout(() => app.destroy(), 5000);
      const got = (await readAll(app)).toString();
      const ms = performance.now() - t0;
      clearTimeout(bound);
      if (ms < 5000) await done;
      return { got, ms };
    };
    const silent = await run(await serve(0));
    t.equal(silent.got, '', 'nothing came back');
    t.ok(
      silent.ms >= 900 && silent.ms < 3500,
      `closed after the half-close timeout (${Math.round(silent.ms)} ms)`,
    );
    t.ok(await until(() => flows.activeCount === 0, 2000), 'the flow is not left active');
    // Data keeps coming, for longer than the timeout but each byte within it: all of it arrives.
    const slow = await run(await serve(15));
    t.equal(slow.got, '.'.repeat(15), 'a server still answering is not cut off');
  },
);

t.test(
  'an application that ended or reset before the relay started does not hold the flow',
  async (t) => {
    // A server that never closes and never answers (a port probe's peer).
    const conns = new Set<Socket>();
    const srv = createServer({ allowHalfOpen: true }, (s) => {
      conns.add(s);
      s.on('error', () => {});
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    t.teardown(() => {
      for (const c of conns) c.destroy();
      srv.close();
    });
    const port = (srv.address() as { port: number }).port;
    const { fwd, flows } = setup(
      [{ host: 'direct.test', decision: BYPASS }],
      { 'direct.test': '127.0.0.1' },
      // Ten times the servers' 100 ms pace: a loaded machine's stall is not silence.
      { halfCloseTimeoutMs: 1000 },
    );
    for (const how of ['FIN', 'RST'] as const) {
      const res = await fwd.connectTcp(tcpReq('direct.test', null, port, 3));
      const [app, inner, stop] = await socketPair();
      t.teardown(stop);
      app.on('error', () => {});
      inner.on('error', () => {});
      // The application goes before relay() runs (as while a tunnel stream is opening).
      if (how === 'FIN') {
        app.end();
        await once(inner, 'end');
      } else {
        app.resetAndDestroy();
        await new Promise((r) => inner.once('close', r));
      }
      const done = fwd.relay(res.upstream!, inner);
      const ended = await Promise.race([
        done.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 3000).unref()),
      ]);
      t.ok(ended, `${how}: the relay ended`);
      t.ok(await until(() => flows.activeCount === 0, 2000), `${how}: the flow is not left active`);
    }
  },
);

t.test('bypass: direct connect through the hosts map; flow Bypassed', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { fwd, tunnels, flows } = setup([{ host: 'direct.test', decision: BYPASS }], {
    'direct.test': '127.0.0.1',
  });
  const res = await fwd.connectTcp(tcpReq('direct.test', null, echo.port, 1, 'http'));
  t.notOk(res.refused);
  t.equal(tunnels.opened.length, 0, 'nothing tunneled');
  t.equal(res.flow.destinationIp, '127.0.0.1');
  const [app, inner, stop] = await socketPair();
  t.teardown(stop);
  const done = fwd.relay(res.upstream!, inner);
  app.end('abc');
  t.equal((await readAll(app)).toString(), 'abcbye');
  await done;
  await new Promise((r) => setImmediate(r));
  const rec = flows.list()[0]!;
  t.equal(rec.status, 'Bypassed');
  t.equal(rec.action, 'Bypass');
  t.equal(rec.bytesSent, 3);
  t.equal(rec.bytesReceived, 6);
});

t.test('block: refused without any connection', async (t) => {
  const { fwd, tunnels, flows } = setup([{ host: 'casino.test', decision: BLOCK }]);
  const res = await fwd.connectTcp(tcpReq('casino.test', null, 443, 1));
  t.equal(res.refused, 'blocked');
  t.match(res.refused && res.reason, /no-gambling/);
  t.equal(tunnels.opened.length, 0);
  const rec = flows.list()[0]!;
  t.equal(rec.action, 'Block');
  t.equal(rec.status, 'Terminated');
  t.equal(flows.counters.refusals.get('blocked'), 1);
  t.equal(flows.activeCount, 0);
});

t.test('drop on TCP is refused as blocked', async (t) => {
  const { fwd } = setup([{ port: 9, decision: DROP }]);
  const res = await fwd.connectTcp(tcpReq(null, '192.0.2.1', 9, 1));
  t.equal(res.refused, 'blocked');
  t.equal(res.flow.action, 'Drop');
});

t.test('hardening: channel down -> fallback bypass goes direct (hardening Y)', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { fwd, tunnels, flows } = setup([{ host: 'www.example.test', decision: TUNNEL_INET }], {
    'www.example.test': '127.0.0.1',
  });
  tunnels.up.internet = false;
  const res = await fwd.connectTcp(tcpReq('www.example.test', null, echo.port, 2));
  t.notOk(res.refused);
  t.equal(tunnels.opened.length, 0);
  t.equal(res.flow.hardening, 'Y');
  t.equal(res.flow.action, 'Bypass');
  res.upstream!.destroy();
  t.equal(flows.counters.hardened, 1);
});

t.test('hardening: a fallback bypass that fails says the channel is down', async (t) => {
  // No address for the name (gsa-emu up asks no system DNS): the direct connection fails.
  const { fwd, tunnels, flows } = setup([{ host: 'outlook.office365.com', decision: TUNNEL_INET }]);
  tunnels.up.internet = false;
  const res = await fwd.connectTcp(tcpReq('outlook.office365.com', null, 443, 2));
  t.equal(res.refused, 'unreachable');
  const why = 'internet channel down: fallback bypass; cannot resolve outlook.office365.com';
  t.equal(res.refused && res.reason, why, 'what the HTTP proxy puts in its 502');
  const rec = flows.list()[0]!;
  t.equal(rec.reason, why, 'the flow table says it too');
  t.equal(res.refused && res.direct, undefined, 'hardening: its reason says it, nothing more');
  t.equal(rec.hardening, 'Y');
  t.equal(rec.action, 'Bypass');
  t.equal(rec.status, 'Terminated');
  // A bypass by the rule itself that fails says only why.
  const plain = setup([{ host: 'nowhere.test', decision: BYPASS }]);
  const r2 = await plain.fwd.connectTcp(tcpReq('nowhere.test', null, 80, 3));
  t.equal(r2.refused && r2.reason, 'cannot resolve nowhere.test');
  t.equal(
    plain.flows.list()[0]!.reason,
    'cannot resolve nowhere.test; test bypass',
    'the flow table keeps why the flow went direct',
  );
});

t.test('a bypass that fails: the flow table says why it went direct, too', async (t) => {
  // `gsa-emu vpn off`, then a SOCKS flow to fs1: the name only Private DNS resolves.
  const off = decision({
    action: 'bypass',
    reason:
      'Global Secure Access is disabled: the VPN is off (switched off in Settings); nothing is forwarded (goes direct)',
  });
  const { fwd, flows } = setup([{ host: 'fs1', decision: off }]);
  const res = await fwd.connectTcp(tcpReq('fs1', null, 80, 2));
  t.equal(res.refused, 'unreachable');
  t.equal(res.refused && res.reason, 'cannot resolve fs1', 'the reply: the failure alone');
  t.equal(flows.list()[0]!.reason, `cannot resolve fs1; ${off.reason}`);
  t.equal(res.refused && res.direct, off.reason, 'the HTTP proxy says why it went direct');
  // A closed port on a bypassed address: the same.
  const port = await closedPort();
  const direct = setup([{ host: 'closed.test', decision: BYPASS }], { 'closed.test': '127.0.0.1' });
  const r2 = await direct.fwd.connectTcp(tcpReq('closed.test', null, port, 3));
  t.equal(r2.refused, 'refused');
  t.match(direct.flows.list()[0]!.reason, /ECONNREFUSED.*; test bypass$/);
  // A tunneled flow the edge refuses keeps the edge's reason alone.
  const blocked = setup([{ host: 'blk.test', decision: BLOCK }]);
  const r3 = await blocked.fwd.connectTcp(tcpReq('blk.test', null, 80, 4));
  t.equal(r3.refused && r3.direct, undefined, 'blocked: no bypass to explain');
  t.equal(blocked.flows.list()[0]!.reason, 'blocked by no-gambling');
});

t.test(
  'hardening: open() throws ChannelDownError -> fallback block refuses (hardening Y)',
  async (t) => {
    const { fwd, tunnels } = setup([{ host: 'app1.contoso.test', decision: TUNNEL_PRIV }]);
    tunnels.throwOnOpen = true;
    const res = await fwd.connectTcp(tcpReq('app1.contoso.test', null, 80, 2));
    t.equal(res.refused, 'blocked');
    t.equal(res.flow.hardening, 'Y');
    t.equal(res.flow.action, 'Block');
  },
);

t.test('hardening: session dies while opening (SESSION_CLOSED) -> fallback', async (t) => {
  const { fwd, tunnels } = setup([{ host: 'app1.contoso.test', decision: TUNNEL_PRIV }]);
  tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
  const res = await fwd.connectTcp(tcpReq('app1.contoso.test', null, 80, 2));
  t.equal(res.refused, 'blocked');
  t.equal(res.flow.hardening, 'Y');
});

t.test(
  'a session closed under the OPEN while it is replaced: opened again on the new one',
  async (t) => {
    const echo = await echoServer();
    t.teardown(echo.close);
    const { fwd, tunnels } = setup([{ host: 'app1.contoso.test', decision: TUNNEL_PRIV }]);
    // Each OPEN goes on a session that then dies under it; whenBack brings the replacement,
    // whose edge answers as `next` says.
    let next: EdgeBehaviour = { kind: 'connect' };
    tunnels.replacedUnderOpen('private', () => next);
    tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
    const res = await fwd.connectTcp(tcpReq('app1.contoso.test', null, echo.port, 2));
    t.equal(res.refused, undefined, 'tunneled on the replacement, not refused');
    t.equal(res.flow.action, 'Tunnel');
    t.equal(tunnels.opened.length, 2, 'one OPEN on each session');
    const [first, second] = tunnels.opened.map((o) => o.meta.connectionId);
    t.not(second, first, 'the second OPEN has a connection id of its own');
    t.equal(res.flow.connectionId, second, "the flow record names the second OPEN's id");
    t.equal(tunnels.opened[1]!.meta.flowId, tunnels.opened[0]!.meta.flowId, 'one flow');
    res.upstream?.destroy();
    // Once only: a second death under the OPEN takes the fallback.
    tunnels.behaviour = { kind: 'reset', code: ResetCode.SESSION_CLOSED };
    next = tunnels.behaviour;
    const again = await fwd.connectTcp(tcpReq('app1.contoso.test', null, echo.port, 3));
    t.equal(again.refused, 'blocked', 'the fallback after the second try');
    t.equal(tunnels.opened.length, 4);
  },
);

t.test('edge resets map to refusals; open timeout', async (t) => {
  const { fwd, tunnels, flows } = setup([{ host: 'x.test', decision: TUNNEL_INET }]);
  const cases: Array<[number, string, string]> = [
    [ResetCode.BLOCKED, 'category gambling', 'blocked'],
    [ResetCode.CONNECT_FAILED, 'connect ECONNREFUSED 1.2.3.4:80', 'refused'],
    [ResetCode.CONNECT_FAILED, 'getaddrinfo ENOTFOUND', 'unreachable'],
    [ResetCode.TIMEOUT, '', 'timeout'],
  ];
  for (const [code, reason, want] of cases) {
    tunnels.behaviour = { kind: 'reset', code, reason };
    const res = await fwd.connectTcp(tcpReq('x.test', null, 80, 3));
    t.equal(res.refused, want, `code ${code} ${reason}`);
    t.equal(res.flow.status, 'Terminated');
    t.equal(res.refused && res.direct, undefined, 'tunneled: no bypass to explain');
  }
  tunnels.behaviour = { kind: 'hang' };
  const t0 = Date.now();
  const res = await fwd.connectTcp(tcpReq('x.test', null, 80, 3));
  t.equal(res.refused, 'timeout');
  t.ok(Date.now() - t0 < 2000);
  t.equal(tunnels.opened.at(-1)!.resetCode, ResetCode.TIMEOUT, 'the stream was reset');
  t.equal(flows.activeCount, 0);
});

t.test('bypass failures: connection refused, unresolvable name', async (t) => {
  const port = await closedPort();
  const { fwd } = setup([{ decision: BYPASS }], {});
  let res = await fwd.connectTcp(tcpReq(null, '127.0.0.1', port, 3));
  t.equal(res.refused, 'refused');
  res = await fwd.connectTcp(tcpReq('nowhere.invalid', null, port, 3));
  t.equal(res.refused, 'unreachable');
});

t.test('a name that acquired nothing is resolved and classified by address', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { fwd, classifier, tunnels } = setup(
    [{ ip: '127.0.0.1', port: echo.port, decision: TUNNEL_PRIV }],
    { 'rdp.corp.test': '127.0.0.1' },
  );
  const res = await fwd.connectTcp(tcpReq('rdp.corp.test', null, echo.port, 3));
  t.notOk(res.refused);
  t.equal(classifier.seen.length, 2, 'second pass by address');
  t.equal(classifier.seen[1]!.family, 4);
  t.equal(classifier.seen[1]!.ip, '127.0.0.1');
  t.equal(classifier.seen[1]!.host, 'rdp.corp.test');
  t.equal(tunnels.opened[0]!.meta.ip, '127.0.0.1');
  t.equal(tunnels.opened[0]!.meta.host, 'rdp.corp.test');
  res.upstream!.destroy();
  // An IP literal given as the host is classified as an address, once.
  classifier.seen.length = 0;
  const r2 = await fwd.connectTcp(tcpReq('127.0.0.1', null, echo.port, 3));
  t.equal(classifier.seen.length, 1);
  t.same(classifier.seen[0], {
    proto: PROTO_TCP,
    family: 4,
    ip: '127.0.0.1',
    host: null,
    port: echo.port,
  });
  r2.upstream?.destroy();
});

t.test('toggle: a tunnel decision for a channel switched off goes direct', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { fwd, tunnels, setState } = setup([{ host: 'www.example.test', decision: TUNNEL_INET }], {
    'www.example.test': '127.0.0.1',
  });
  setState(clientState({ internet: false }));
  const res = await fwd.connectTcp(tcpReq('www.example.test', null, echo.port, 3));
  t.notOk(res.refused);
  t.equal(tunnels.opened.length, 0);
  t.equal(res.flow.action, 'Bypass');
  t.equal(res.flow.hardening, 'N');
  t.equal(res.flow.reason, 'internet channel off: bypass', 'not the decision\'s "tunnels it"');
  res.upstream!.destroy();
});

t.test('toggle: a flow of a channel switched off that fails says why it went direct', async (t) => {
  const { fwd, flows, setState } = setup([
    { proto: PROTO_UDP, port: 3389, decision: TUNNEL_PRIV },
    { host: 'gone.test', decision: TUNNEL_INET },
  ]);
  setState(clientState({ internet: false, private: false }));
  const res = await fwd.connectTcp(tcpReq('gone.test', null, 80, 3));
  t.equal(res.refused, 'unreachable');
  t.equal(res.refused && res.reason, 'cannot resolve gone.test', 'the reply: the failure alone');
  t.equal(flows.list()[0]!.reason, 'cannot resolve gone.test; internet channel off: bypass');
  t.equal(res.refused && res.direct, 'internet channel off: bypass', 'the HTTP proxy says it');
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 4002, capture: 'socks' }, () => {});
  t.teardown(() => a.close());
  a.send('gone.test', null, 3389, Buffer.from('x'));
  let rec: FlowRecord | undefined;
  for (let i = 0; i < 100 && rec?.status !== 'Terminated'; i++) {
    await new Promise((r) => setTimeout(r, 10));
    rec = flows.list().find((f) => f.protocol === 'udp');
  }
  t.equal(rec?.action, 'Bypass');
  t.equal(rec?.reason, 'unreachable: cannot resolve gone.test; private channel off: bypass');
});

/**
 * A tunneled flow (FakeTunnels, to an echo server) and a loopback socket pair standing for
 * the application: relay `upstream` to `inner`; `app` is the application's end.
 */
async function tunneledFlow(t: Test, srcPort: number) {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { fwd, flows } = setup([{ host: 'x.test', decision: TUNNEL_INET }]);
  const res = await fwd.connectTcp(tcpReq('x.test', null, echo.port, srcPort));
  const [app, inner, stop] = await socketPair();
  t.teardown(stop);
  const upstream = res.upstream as NonNullable<typeof res.upstream> & {
    push(c: null): void;
    reset(c: number): void;
  };
  return { fwd, flows, upstream, app, inner };
}

t.test('relay: an upstream reset terminates the flow and closes the client', async (t) => {
  const { fwd, flows, upstream, app, inner } = await tunneledFlow(t, 3);
  const appError = new Promise<NodeJS.ErrnoException>((r) => app.once('error', r));
  app.resume();
  const done = fwd.relay(upstream, inner);
  upstream.reset(ResetCode.INTERNAL);
  await done;
  t.equal((await appError).code, 'ECONNRESET', 'the application sees a reset, not a clean end');
  const rec = flows.list()[0]!;
  t.equal(rec.status, 'Terminated');
  t.match(rec.reason, /^stream reset by the edge: INTERNAL\b/);
});

t.test('relay: a reset right after the edge FIN still closes the client socket', async (t) => {
  // Ending the client socket starts a shutdown; a reset before libuv performed it used to go
  // through resetAndDestroy(), which Node then leaves unclosed (docs/decisions/forward-socket-reset.md).
  const { fwd, flows, upstream, app, inner } = await tunneledFlow(t, 4);
  app.on('error', () => {});
  app.resume();
  const resetErrors: string[] = [];
  inner.on('error', (e: NodeJS.ErrnoException) => resetErrors.push(`${e.syscall} ${e.code}`));
  const closed = once(inner, 'close').then(() => 'closed');
  const done = fwd.relay(upstream, inner);
  upstream.once('end', () =>
    process.nextTick(() => process.nextTick(() => upstream.reset(ResetCode.INTERNAL))),
  );
  upstream.push(null); // the edge's FIN: the relay ends the client socket
  await done;
  const timeout = new Promise<string>((r) => setTimeout(() => r('not closed'), 3000).unref());
  t.equal(await Promise.race([closed, timeout]), 'closed', "the client socket emits 'close'");
  t.same(resetErrors, [], 'no failed reset');
  t.equal(flows.list()[0]!.status, 'Terminated');
});

t.test(
  'UDP association: a bug while setting a flow up drops its datagrams, not the process',
  async (t) => {
    const { fwd, flows, classifier } = setup([{ proto: PROTO_UDP, decision: BYPASS }]);
    classifier.decide = () => {
      throw new TypeError('boom');
    };
    const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 4001, capture: 'socks' }, () => {});
    t.teardown(() => a.close());
    a.send('x.test', null, 5300, Buffer.from('one'));
    a.send('x.test', null, 5300, Buffer.from('two'));
    for (let i = 0; i < 100 && !flows.counters.drops.get('internal'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    t.equal(flows.counters.drops.get('internal'), 2, 'both datagrams counted as dropped');
    a.send('x.test', null, 5300, Buffer.from('three'));
    for (let i = 0; i < 100 && flows.counters.drops.get('internal') === 2; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    t.equal(flows.counters.drops.get('internal'), 3, 'a later datagram tries afresh');
  },
);

t.test('UDP association: QUIC dropped, EXO QUIC tunneled, bypass via a UDP socket', async (t) => {
  const echo = await udpEcho();
  t.teardown(() => echo.close());
  const { fwd, tunnels, flows } = setup(
    [
      { host: 'outlook.office365.com', proto: PROTO_UDP, port: 443, decision: TUNNEL_EXO_UDP },
      { proto: PROTO_UDP, port: 443, decision: DROP },
      { host: 'dns.test', proto: PROTO_UDP, decision: BYPASS },
    ],
    { 'dns.test': '127.0.0.1' },
  );
  const replies: Array<{ p: string; host: string | null; ip: string | null; port: number }> = [];
  const a = fwd.udpAssociation(
    { srcIp: '127.0.0.1', srcPort: 4000, capture: 'socks' },
    (p, host, ip, port) => replies.push({ p: p.toString(), host, ip, port }),
  );
  t.teardown(() => a.close());
  a.send('www.youtube.test', null, 443, Buffer.from('quic1'));
  a.send('www.youtube.test', null, 443, Buffer.from('quic2'));
  a.send('outlook.office365.com', null, 443, Buffer.from('exo'));
  a.send('dns.test', null, echo.port, Buffer.from('query'));
  for (let i = 0; i < 100 && replies.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(flows.counters.drops.get('quic'), 2, 'both QUIC datagrams dropped');
  const exo = replies.find((r) => r.host === 'outlook.office365.com');
  t.ok(exo, 'EXO datagram relayed through the tunnel');
  t.equal(exo?.p, 'oxe');
  t.equal(tunnels.opened.length, 1);
  t.equal(tunnels.opened[0]!.meta.proto, 'udp');
  t.equal(tunnels.opened[0]!.meta.channel, 'm365');
  const dns = replies.find((r) => r.p === 'QUERY');
  t.ok(dns, 'bypassed datagram answered directly');
  t.equal(dns?.port, echo.port);
  const recs = flows.list();
  t.equal(recs.filter((r) => r.action === 'Drop').length, 1, 'one flow record per destination');
  t.equal(recs.find((r) => r.action === 'Drop')!.drops, 2);
  t.equal(a.size, 3);
  // Idle expiry closes destination flows.
  for (let i = 0; i < 100 && a.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(a.size, 0, 'idle flows expired');
  t.equal(flows.activeCount, 0);
});

t.test('UDP association: channel down with fallback block discards and counts', async (t) => {
  const { fwd, tunnels, flows } = setup([{ proto: PROTO_UDP, port: 3389, decision: TUNNEL_PRIV }]);
  tunnels.up.private = false;
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 4000, capture: 'socks' }, () => {});
  t.teardown(() => a.close());
  a.send(null, '10.1.2.3', 3389, Buffer.from('x'));
  a.send(null, '10.1.2.3', 3389, Buffer.from('y'));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(flows.counters.drops.get('hardening'), 2);
  const rec = flows.list()[0]!;
  t.equal(rec.hardening, 'Y');
  t.equal(rec.action, 'Block');
});

t.test(
  'resolver: hosts, wildcard, dial map remaps, directIp false confines direct dials',
  async (t) => {
    const r = new Resolver({
      hosts: { 'www.example.test': '6.6.254.10', '*.corp.test': '127.77.0.5' },
      dial: {
        'www.example.test': '127.0.0.1:8081',
        '6.6.254.11:443': '127.0.0.1:9443',
        '*.demo.test': '127.0.0.2',
      },
      directIp: false,
      system: false,
    });
    t.equal(await r.resolve('WWW.example.test'), '6.6.254.10');
    t.equal(await r.resolve('a.b.corp.test'), '127.77.0.5');
    t.equal(await r.resolve('corp.test'), null, 'a wildcard does not match its parent');
    t.equal(await r.resolve('10.0.0.1'), '10.0.0.1');
    t.same(r.dialTarget('www.example.test', '6.6.254.10', 80), { ip: '127.0.0.1', port: 8081 });
    t.same(r.dialTarget(null, '6.6.254.11', 443), { ip: '127.0.0.1', port: 9443 });
    t.equal(r.dialTarget(null, '6.6.254.11', 80), null);
    t.same(r.dialTarget('x.demo.test', null, 25), { ip: '127.0.0.2', port: 25 });
    t.notOk(r.mayDial('6.6.254.12'));
    t.ok(r.mayDial('127.0.0.1'));
  },
);

t.test(
  'directIp false: a bypassed flow to a public address is refused, never dialed',
  async (t) => {
    const classifier = new FakeClassifier([{ decision: BYPASS }]);
    const flows = new FlowTable();
    const fwd = new Forwarder({
      classifier: () => classifier,
      tunnels: new FakeTunnels(),
      clientState: () => clientState(),
      resolver: new Resolver({
        hosts: { 'www.example.test': '6.6.254.10' },
        system: false,
        directIp: false,
      }),
      flows,
    });
    const res = await fwd.connectTcp(tcpReq('www.example.test', null, 80, 1));
    t.equal(res.refused, 'unreachable');
    t.match(res.refused && res.reason, /no route to 6\.6\.254\.10/);
  },
);
