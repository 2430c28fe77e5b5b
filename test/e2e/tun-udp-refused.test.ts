/**
 * UDP to a port nothing listens on, from an application in the TUN namespace, through the
 * real client (and the real edge): as on a direct network, the application's connected
 * socket gets ECONNREFUSED (ICMP port unreachable) at once instead of silence, both when
 * the flow is bypassed (the client's own socket is refused) and when it is tunneled (the
 * edge's socket is refused: RST CONNECT_FAILED `ECONNREFUSED`). The SOCKS5 side of the
 * same association is covered by test/capture/socks5*.test.ts.
 *
 * Skipped, saying what is missing, without root, /dev/net/tun, iproute2 or the built
 * addon. Nothing leaves the machine: the refusing ports are on this host's loopback.
 */
import dgram from 'node:dgram';
import t from 'tap';
import { DEMO_UDP_PRIVATE } from '../../src/client/demo.js';
import { attachTun, demoDnsHosts, type TunCapture } from '../../src/client/tun-capture.js';
import { connectedUdpClient, tunMissing } from '../tun/helpers.js';
import { collect, startTestWorld, type TestWorld, until } from './helpers.js';

const missing = tunMissing();
if (missing) {
  t.plan(0, missing);
}

/** Host loopback ports nothing listens on (UDP): checked before the test. */
const BYPASS_CLOSED = 18202;
const TUNNEL_CLOSED = 18203;
/** A UDP port of no rule: bypassed; the client's dial map sends it to BYPASS_CLOSED. */
const BYPASS_PORT = 18202;
/** Within the private UDP app segment (udp-echo.contoso.test, 7000-7010): tunneled. */
const TUNNEL_PORT = 7001;

async function closedUdp(port: number): Promise<void> {
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind(port, '127.0.0.1', () => resolve());
  });
  await new Promise<void>((r) => probe.close(() => r()));
}

let w: TestWorld;
let tun: TunCapture | null = null;

/** The app's connected UDP socket in the namespace: what it saw, and after how long. */
async function appSees(host: string, port: number): Promise<{ what: string; ms: number }> {
  const r = await collect(
    tun!.spawn(process.execPath, ['-e', connectedUdpClient(host, port, 3000)], { stdio: 'pipe' }),
    10_000,
  );
  const [what = '', ms = 'NaN'] = r.out.trim().split(' ');
  return { what: what || `nothing (${r.err.trim()})`, ms: Number(ms) };
}

if (!missing) {
  t.before(async () => {
    await closedUdp(BYPASS_CLOSED);
    await closedUdp(TUNNEL_CLOSED);
    w = await startTestWorld({
      prefix: 'h-113-tun-udp-refused-',
      hostnames: () => tun?.hostnames() ?? [],
      metrics: () => tun?.metrics() ?? '',
      connectorHosts: { [`${DEMO_UDP_PRIVATE}:${TUNNEL_PORT}`]: `127.0.0.1:${TUNNEL_CLOSED}` },
      clientDial: { [`bypass.example.test:${BYPASS_PORT}`]: `127.0.0.1:${BYPASS_CLOSED}` },
    });
    tun = await attachTun(w.client, { hostsForDns: demoDnsHosts(w.demo) });
  });

  t.teardown(async () => {
    await tun?.close();
    await w?.close();
  });

  t.test('bypassed UDP to a closed port: the app gets ECONNREFUSED at once', async (t) => {
    const drops = w.client.flows.counters.drops.get('refused') ?? 0;
    const { what, ms } = await appSees('bypass.example.test', BYPASS_PORT);
    t.equal(what, 'ECONNREFUSED', 'ICMP port unreachable reached the connected socket');
    t.ok(ms < 2000, `after ${ms} ms`);
    const f = await until(() => w.flowTo('bypass.example.test', 'udp'), 'bypassed udp flow');
    t.equal(f.action, 'Bypass');
    t.equal(f.capture, 'tun');
    t.ok(f.drops >= 1, 'the refused datagram counted on the flow');
    t.ok((w.client.flows.counters.drops.get('refused') ?? 0) > drops, 'and as a drop: refused');
    t.ok(tun!.stack.counters.icmpPortUnreachable >= 1);
  });

  t.test('tunneled UDP refused at the edge: the app gets ECONNREFUSED at once', async (t) => {
    const sent = tun!.stack.counters.icmpPortUnreachable;
    const { what, ms } = await appSees(DEMO_UDP_PRIVATE, TUNNEL_PORT);
    t.equal(what, 'ECONNREFUSED', "the edge's refusal reached the connected socket");
    t.ok(ms < 2000, `after ${ms} ms`);
    const f = await until(() => {
      const r = w.flowTo(DEMO_UDP_PRIVATE, 'udp');
      return r?.destinationPort === TUNNEL_PORT && r.endTime !== null ? r : undefined;
    }, 'tunneled udp flow, ended');
    t.equal(f.action, 'Tunnel');
    t.equal(f.channel, 'private');
    t.match(f.reason, /ECONNREFUSED/, 'the flow table says why');
    t.ok(tun!.stack.counters.icmpPortUnreachable > sent);
    const m = tun!.metrics();
    t.match(m, /^gsa_client_tun_icmp_sent_total\{type="port_unreachable"\} [1-9]\d*$/m);
  });
}
