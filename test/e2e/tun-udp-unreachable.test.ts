/**
 * UDP to a destination that cannot be reached, from an application in the TUN namespace,
 * through the real client (and the real edge): as on a direct network, the application's
 * connected socket with IP_RECVERR fails at once instead of waiting for its own timeout
 * (Linux passes net and host unreachable, "soft" errors, only to such a socket: one
 * without it is not told, as on a direct network; shown once below):
 * - bypassed, an address the client has no route to (its resolver dials loopback only):
 *   ICMP host unreachable, EHOSTUNREACH;
 * - bypassed, a destination whose connect() finds no route (the client in a namespace of
 *   the test's own, loopback only): ICMP net unreachable, ENETUNREACH;
 * - tunneled, a port of a name that the edge's connector cannot reach (it knows the name
 *   on another port only: RST CONNECT_FAILED): ICMP host unreachable, EHOSTUNREACH;
 * - tunneled, a destination the edge's connect() finds no route to (the same namespace):
 *   the edge fails the OPEN (CONNECT_FAILED `connect failed: ENETUNREACH`), ENETUNREACH.
 * Port unreachable is test/e2e/tun-udp-refused.test.ts.
 *
 * Skipped, saying what is missing, without root, /dev/net/tun, iproute2, python3 (for
 * IP_RECVERR: Node's dgram cannot set it) or the built addon. Nothing leaves the machine: the unreachable addresses are never sent to (the
 * client's resolver refuses them, or the test's namespace has no route at all).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DEMO_UDP_PRIVATE } from '../../src/client/demo.js';
import { attachTun, demoDnsHosts, type TunCapture } from '../../src/client/tun-capture.js';
import { connectedUdpClient, ipCmd, tsInNsArgs, tunMissing } from '../tun/helpers.js';
import { collect, startTestWorld, type TestWorld, until } from './helpers.js';

/** The python3 executable (pyenv shims resolve it per directory): null when there is none. */
const PYTHON = (() => {
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
})();

const missing = tunMissing() ?? (PYTHON ? null : 'python3 (for IP_RECVERR) not found');
if (missing) {
  t.plan(0, missing);
}

/** An address no route of the client's resolver (loopback only) leads to: never sent to. */
const NO_ROUTE = '198.51.100.77';
const NO_ROUTE_PORT = 18211;
/** A destination bypassed flows dial (the client's dial map) in a namespace without routes. */
const NO_NET = '203.0.113.9';
const NO_NET_PORT = 18212;
/** In the private UDP segment: the connector sends it to NO_NET (the edge's connect() fails). */
const NO_NET_TUNNEL_PORT = 7003;
/** Within the private UDP app segment (udp-echo.contoso.test, 7000-7010), not in the connector's hosts. */
const TUNNEL_PORT = 7002;

/**
 * A python3 script: a connected UDP socket with IP_RECVERR (11) to `host:port`, sending once;
 * prints the errno's name and its delay in ms (`EHOSTUNREACH 4`), `reply` or `timeout`.
 * Linux reports ICMP net and host unreachable (codes 0 and 1: "soft" errors, RFC 1122
 * 4.1.3.3 leaves them to the application) to a UDP socket only with IP_RECVERR, as for the
 * same ICMP from a router on a direct network; port unreachable is reported to every
 * connected socket.
 */
const recverrUdpClient = (host: string, port: number, timeoutMs = 3000): string =>
  `import errno, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 11, 1)
s.settimeout(${timeoutMs / 1000})
s.connect(('${host}', ${port}))
t0 = time.monotonic()
s.send(b'first')
try:
    s.recv(100)
    print('reply')
except socket.timeout:
    print('timeout')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), int((time.monotonic() - t0) * 1000))
`;

/**
 * The app's connected UDP socket in the namespace (with IP_RECVERR; `plain`: Node's dgram,
 * without): what it saw, and after how long.
 */
async function appSees(
  tun: TunCapture,
  host: string,
  port: number,
  plain = false,
): Promise<{ what: string; ms: number }> {
  const [cmd, args] = plain
    ? [process.execPath, ['-e', connectedUdpClient(host, port, 1000)]]
    : [PYTHON!, ['-c', recverrUdpClient(host, port)]];
  const r = await collect(tun.spawn(cmd, args, { stdio: 'pipe' }), 10_000);
  const [what = '', ms = 'NaN'] = r.out.trim().split(' ');
  return { what: what || `nothing (${r.err.trim()})`, ms: Number(ms) };
}

if (!missing) {
  let w: TestWorld;
  let tun: TunCapture | null = null;

  t.before(async () => {
    w = await startTestWorld({
      prefix: 'h-121-tun-udp-unreachable-',
      metrics: () => tun?.metrics() ?? '',
    });
    tun = await attachTun(w.client, { hostsForDns: demoDnsHosts(w.demo) });
  });

  t.teardown(async () => {
    await tun?.close();
    await w?.close();
  });

  t.test(
    'bypassed UDP to an address with no route: the app gets EHOSTUNREACH at once',
    async (t) => {
      const sent = tun!.stack.counters.icmpHostUnreachable;
      const { what, ms } = await appSees(tun!, NO_ROUTE, NO_ROUTE_PORT);
      t.equal(what, 'EHOSTUNREACH', 'ICMP host unreachable reached the connected socket');
      t.ok(ms < 2000, `after ${ms} ms`);
      // Without IP_RECVERR the kernel keeps a host unreachable from the socket, as it does
      // a router's on a direct network: the application waits for its own timeout.
      const plain = await appSees(tun!, NO_ROUTE, NO_ROUTE_PORT + 1, true);
      t.equal(plain.what, 'timeout', 'a socket without IP_RECVERR is not told (soft error)');
      const f = await until(
        () =>
          w.client.flows.list().find((r) => r.destinationIp === NO_ROUTE && r.protocol === 'udp'),
        'bypassed udp flow',
      );
      t.equal(f.action, 'Bypass');
      t.equal(f.capture, 'tun');
      t.match(f.reason, /unreachable: no route to 198\.51\.100\.77/, 'the flow table says why');
      t.ok(tun!.stack.counters.icmpHostUnreachable > sent);
    },
  );

  t.test('tunneled UDP to a port the connector cannot reach: EHOSTUNREACH at once', async (t) => {
    const sent = tun!.stack.counters.icmpHostUnreachable;
    const { what, ms } = await appSees(tun!, DEMO_UDP_PRIVATE, TUNNEL_PORT);
    t.equal(what, 'EHOSTUNREACH', "the edge's failure reached the connected socket");
    t.ok(ms < 2000, `after ${ms} ms`);
    const f = await until(() => {
      const r = w.flowTo(DEMO_UDP_PRIVATE, 'udp');
      return r?.destinationPort === TUNNEL_PORT ? r : undefined;
    }, 'tunneled udp flow');
    t.equal(f.action, 'Tunnel');
    t.equal(f.channel, 'private');
    t.match(
      f.reason,
      /connector cannot resolve udp-echo\.contoso\.test:7002 \(it knows port 7000\)/,
      'the flow table says why',
    );
    t.ok(tun!.stack.counters.icmpHostUnreachable > sent);
    const m = tun!.metrics();
    t.match(m, /^gsa_client_tun_icmp_sent_total\{type="host_unreachable"\} [1-9]\d*$/m);
    t.match(m, /^gsa_client_tun_icmp_sent_total\{type="net_unreachable"\} 0$/m);
  });
}

/**
 * The client, its edge and the TUN capture in a namespace of the test's own, with loopback
 * only: a bypassed flow's connect() to NO_NET finds no route (ENETUNREACH), as on a host
 * without a default route. The scenario runs in a child (`ip netns exec`); it prints what
 * the app saw and the stack's counters as JSON.
 */
const inNamespace = (python: string, prefix: string): string => `
import { startTestWorld } from ${JSON.stringify(new URL('./helpers.ts', import.meta.url).href)};
import { attachTun, demoDnsHosts } from ${JSON.stringify(new URL('../../src/client/tun-capture.ts', import.meta.url).href)};
import { collect } from ${JSON.stringify(new URL('../util/ts-child.ts', import.meta.url).href)};
const w = await startTestWorld({
  prefix: '${prefix}',
  clientDial: { 'bypass.example.test:${NO_NET_PORT}': '${NO_NET}:${NO_NET_PORT}' },
  connectorHosts: { '${DEMO_UDP_PRIVATE}:${NO_NET_TUNNEL_PORT}': '${NO_NET}:${NO_NET_TUNNEL_PORT}' },
});
const app = (tun, host, port) =>
  collect(
    tun.spawn(${JSON.stringify(python)}, ['-c', ${JSON.stringify(recverrUdpClient('HOST', 0))}.replace("'HOST', 0", "'" + host + "', " + port)], { stdio: 'pipe' }),
    10_000,
  );
let out = {};
try {
  const tun = await attachTun(w.client, { hostsForDns: demoDnsHosts(w.demo) });
  try {
    const r = await app(tun, 'bypass.example.test', ${NO_NET_PORT});
    const f = w.flowTo('bypass.example.test', 'udp');
    const r2 = await app(tun, '${DEMO_UDP_PRIVATE}', ${NO_NET_TUNNEL_PORT});
    const f2 = w.flowTo('${DEMO_UDP_PRIVATE}', 'udp');
    out = { app: r.out.trim(), err: r.err.trim(), reason: f?.reason, action: f?.action,
      tunneled: r2.out.trim(), tunneledErr: r2.err.trim(), tunneledReason: f2?.reason,
      tunneledAction: f2?.action,
      net: tun.stack.counters.icmpNetUnreachable, metrics: tun.metrics() };
  } finally {
    await tun.close();
  }
} finally {
  await w.close();
}
console.log(JSON.stringify(out));
process.exit(0);
`;

// After plan(0), tap refuses any subtest ("test count exceeds plan").
if (!missing) {
  t.test(
    'no route (a namespace without routes): bypassed, and tunneled (the edge): ENETUNREACH at once',
    { timeout: 60_000 },
    async (t) => {
      const ns = `h121w${randomBytes(3).toString('hex')}`;
      const prefix = `h-121-tun-udp-no-net-${ns}-`;
      t.teardown(() => {
        spawnSync('ip', ['netns', 'del', ns]);
        // The scenario's state folder, should it have died before removing it.
        for (const d of readdirSync(tmpdir())) {
          if (d.startsWith(prefix)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
        }
      });
      ipCmd(['netns', 'add', ns]);
      ipCmd(['-n', ns, 'link', 'set', 'lo', 'up']);
      t.notMatch(ipCmd(['-n', ns, '-4', 'route', 'show']), /default/, 'no route out of it');
      const r = await collect(
        spawn('ip', tsInNsArgs(ns, inNamespace(PYTHON!, prefix)), {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
        45_000,
      );
      const line = r.out.trim().split('\n').at(-1) ?? '';
      t.ok(line.startsWith('{'), `the scenario ran: ${r.err.slice(-2000)}`);
      if (!line.startsWith('{')) return;
      const o = JSON.parse(line) as {
        app: string;
        err: string;
        reason?: string;
        action?: string;
        tunneled: string;
        tunneledErr: string;
        tunneledReason?: string;
        tunneledAction?: string;
        net: number;
        metrics: string;
      };
      const [what = '', ms = 'NaN'] = o.app.split(' ');
      t.equal(what, 'ENETUNREACH', `ICMP net unreachable reached the connected socket ${o.err}`);
      t.ok(Number(ms) < 2000, `after ${ms} ms`);
      t.equal(o.action, 'Bypass');
      t.match(
        o.reason,
        /^unreachable: ENETUNREACH 203\.0\.113\.9:18212/,
        'the flow table says why',
      );
      // Tunneled: the edge's connect() finds no route either; it fails the OPEN
      // (CONNECT_FAILED `connect failed: ENETUNREACH`), which the client answers the same way.
      const [what2 = '', ms2 = 'NaN'] = o.tunneled.split(' ');
      t.equal(
        what2,
        'ENETUNREACH',
        `the edge's no route reached the connected socket ${o.tunneledErr}`,
      );
      t.ok(Number(ms2) < 2000, `after ${ms2} ms`);
      t.equal(o.tunneledAction, 'Tunnel');
      t.match(o.tunneledReason, /ENETUNREACH/, 'the flow table says why');
      t.ok(o.net >= 2, 'counted');
      t.match(o.metrics, /^gsa_client_tun_icmp_sent_total\{type="net_unreachable"\} [1-9]\d*$/m);
    },
  );
}
