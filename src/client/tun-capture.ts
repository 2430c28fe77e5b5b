/**
 * TUN capture for a running client: glues the TUN "system stack" (src/capture/tun/) to the
 * client's classifier and forwarder, so every IPv4 flow of the processes behind the TUN
 * takes the path the forwarding profiles say, as with the SOCKS/HTTP captures.
 *
 * ```ts
 * const client = await startClient({ ..., hostnames: () => tun?.hostnames() ?? [] });
 * const tun = await attachTun(client, { hostsForDns: demoDnsHosts(demo) }); // own namespace
 * const code = await tun.run('curl', ['-s', 'http://intranet.contoso.test/']);
 * await tun.close();
 * ```
 *
 * Hooks:
 * - `classify` (once per new flow): `client.classifier.decide(flow)` on the stack's TunFlow
 *   (the destination address plus the FQDN behind it, from the DNS table); the Decision
 *   goes into `flow.tag`. tunnel/bypass -> 'accept', block -> 'reset' (RST / ICMP 3/13),
 *   drop -> 'drop' (silence, or ICMP 3/13 with `icmpOnDrop`). Refused and dropped flows are
 *   recorded in the client's flow table (capture 'tun') and counted.
 * - `onTcp`: `forwarder.connectTcp({ host, ip, port, srcIp, srcPort, capture: 'tun' })`,
 *   then `forwarder.relay()`; a refusal resets the application's connection.
 * - `onUdp`: one forwarder UDP association per stack UDP flow (tunnel as datagrams, bypass
 *   through a socket of its own, drop), replies go back through the flow; a destination
 *   that refused (ECONNREFUSED direct, or at the edge) is answered with ICMP port
 *   unreachable, one that cannot be reached (ENETUNREACH / EHOSTUNREACH direct, a name or
 *   host the edge cannot resolve or reach) with net / host unreachable (rate-limited), as
 *   a direct network would.
 * - `acquire` (DNS): see `FqdnAcquirer`: a name is acquired (answered from 6.6.0.0/16)
 *   when the current classifier would send a name-only flow to it into a channel (tunnel,
 *   block or drop; not bypass) for at least one protocol/port of an FQDN or DNS-suffix rule
 *   whose pattern matches the name.
 * - Synthetic addresses never leave the client: a flow to a 6.6.x.y the DNS table handed
 *   out is forwarded by name only (`ip: null`), and the edge resolves the name, as GSA does;
 *   the flow table still shows the address the application used (`appIp`).
 *
 * Upstream DNS for names no rule acquires: `dnsUpstream`, else a local resolver started
 * for `hostsForDns` (`startHostsDns`, on 127.0.0.1: demos and tests never ask the
 * internet), else none (SERVFAIL). The host-side sockets (edge, bypass, DNS upstream) live in
 * the emulator's namespace, outside the TUN (docs/tun.md, loop avoidance).
 */
import type { ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { constants as osConstants } from 'node:os';
import dnsPacket from 'dns-packet';
import type { PacketDevice } from '../capture/tun/device.js';
import { plainQuery } from '../capture/tun/dns.js';
import { createNetns, type Netns, type NetnsOptions } from '../capture/tun/netns.js';
import {
  createTunStack,
  DROP_KEYS,
  type FlowVerdict,
  type TunCounters,
  type TunFlow,
  type TunStack,
  type TunStackOptions,
  type UdpFlow,
} from '../capture/tun/stack.js';
import {
  type Classifier,
  type Decision,
  newFlow,
  PROTO_TCP,
  PROTO_UDP,
} from '../classify/types.js';
import type { UdpAssociation } from '../forward/udp.js';
import type { TenantSpec } from '../policy/model.js';
import { qualifySingleLabel, withPrivateDns } from '../policy/private-dns.js';
import { globFold } from '../util/glob-fold.js';
import { formatIPv4 } from '../util/ip.js';
import { resetSocket } from '../util/reset.js';
import type { HostnameEntry, RunningClient } from './client.js';
import { DEMO_BYPASS, DEMO_M365, DEMO_PRIVATE, DEMO_UDP_PRIVATE, type Demo } from './demo.js';

export interface AttachTunOptions {
  /**
   * The TUN device. Default: a new network namespace whose only route is a TUN created
   * inside it (`createNetns`), owned by the capture and removed by `close()`.
   */
  device?: PacketDevice;
  /** Namespace (name or path) holding `device`: the stack's listener is created there. */
  netns?: string;
  /** Options of the namespace created when `device` is not given. */
  netnsOptions?: NetnsOptions;
  /** Upstream resolver for names no rule acquires (host namespace). */
  dnsUpstream?: { host: string; port: number; localAddress?: string } | null;
  /**
   * Without `dnsUpstream`: answer names from this map (name or `*.suffix` -> IPv4) with a
   * small resolver on 127.0.0.1 started (and stopped) by the capture.
   */
  hostsForDns?: Record<string, string>;
  /** Answer UDP 'drop' verdicts with ICMP admin-prohibited instead of silence. */
  icmpOnDrop?: boolean;
  /** Further stack options (limits, addresses, DNS TTL ...). */
  stack?: Omit<TunStackOptions, 'device' | 'netns' | 'hooks' | 'icmpOnDrop'>;
}

export interface TunCaptureCounters {
  /** New flows seen by classify, by verdict. */
  accepted: number;
  reset: number;
  dropped: number;
  /** TCP flows handed to the forwarder, and those it refused. */
  tcpForwarded: number;
  tcpRefused: number;
  /** TCP flows reset because of an unexpected error in gsa-emu itself. */
  tcpInternalErrors: number;
  /** UDP flows (per 4-tuple) handed to the forwarder, and their datagrams. */
  udpFlows: number;
  udpDatagrams: number;
}

export interface TunCapture {
  readonly stack: TunStack;
  /** The namespace the capture created (null when a device was given). */
  readonly ns: Netns | null;
  /** The upstream resolver in use (the local one for `hostsForDns`), or null. */
  readonly dnsUpstream: { host: string; port: number } | null;
  readonly counters: TunCaptureCounters;
  /** The hostname acquisition table in the admin API's shape (`/hostnames`). */
  hostnames(): HostnameEntry[];
  /** The stack's tables and counters as Prometheus text (appended to `/metrics`). */
  metrics(): string;
  /** Would the current classifier acquire `name` by DNS? */
  acquires(name: string): boolean;
  /** Spawn a command inside the capture's namespace (throws without one). */
  spawn(
    command: string,
    args: readonly string[],
    opts?: { stdio?: 'inherit' | 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv },
  ): ChildProcess;
  /**
   * Run a command inside the capture's namespace; resolves with its exit code (127 when it
   * could not start, 128 + n when it died of signal n).
   */
  run(
    command: string,
    args: readonly string[],
    opts?: { stdio?: 'inherit' | 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv },
  ): Promise<number>;
  /** Stop the stack, the local resolver and the UDP associations; remove the namespace. Idempotent. */
  close(): Promise<void>;
}

// ---- DNS acquisition ------------------------------------------------------------------

interface NameRule {
  /** The rule's pattern as a glob: `*` stands for one or more whole labels. */
  glob: string;
  probes: Array<[proto: number, port: number]>;
}

/** A DNS-suffix destination as a glob (`contoso.test` -> `*.contoso.test`), an FQDN as is. */
function patternGlob(type: 'fqdn' | 'dnsSuffix', value: string): string {
  return type === 'dnsSuffix' ? `*.${value.replace(/^\*?\.?/, '')}` : value;
}

/**
 * `name` matches the glob: globFold's `*` is any run of characters, which with `*` only as
 * whole labels and no empty label in the name is "one or more labels". No regular
 * expression: a pattern with many `*` cannot make a DNS query backtrack.
 */
function matchesGlob(glob: string, name: string): boolean {
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) return false;
  return globFold(glob, glob.length, name, name.length);
}

function nameRules(tenant: TenantSpec | null): NameRule[] {
  const out: NameRule[] = [];
  for (const p of tenant?.profiles ?? []) {
    for (const pol of p.policies) {
      for (const r of pol.rules) {
        const protos = r.protocols.length ? r.protocols : (['tcp'] as const);
        const ports = r.ports.length ? r.ports.map((x) => x.from) : [443];
        const probes: NameRule['probes'] = [];
        for (const pr of protos) {
          for (const port of ports) probes.push([pr === 'udp' ? PROTO_UDP : PROTO_TCP, port]);
        }
        for (const d of r.destinations) {
          if (d.type === 'fqdn' || d.type === 'dnsSuffix') {
            out.push({ glob: patternGlob(d.type, d.value), probes });
          }
        }
      }
    }
  }
  return out;
}

/**
 * Decides DNS acquisition with the client's current classifier. A name is acquired when
 * some FQDN / DNS-suffix rule's pattern matches it and, for one of that rule's protocols
 * and ports (first port of each range; none = 443, TCP), a name-only flow (family 0, no
 * address) is decided into a channel and not bypassed. Probing the classifier rather
 * than reading rules keeps its precedence (a Custom Bypass beats a Custom Acquire for the
 * same name; a channel switched off acquires nothing). Answers are cached per classifier
 * (a swap, i.e. a profile change or a toggle, clears the cache), at most 4,096 names.
 */
export class FqdnAcquirer {
  #classifier: Classifier | null = null;
  #rules: NameRule[] = [];
  #cache = new Map<string, boolean>();
  #flow = newFlow();

  constructor(private readonly client: Pick<RunningClient, 'classifier' | 'tenant'>) {}

  acquires(name: string): boolean {
    const c = this.client.classifier;
    if (c !== this.#classifier) {
      this.#classifier = c;
      const t = this.client.tenant;
      this.#rules = nameRules(t ? withPrivateDns(t) : null);
      this.#cache.clear();
    }
    const hit = this.#cache.get(name);
    if (hit !== undefined) return hit;
    let v = false;
    const f = this.#flow;
    for (const r of this.#rules) {
      if (!matchesGlob(r.glob, name)) continue;
      for (const [proto, port] of r.probes) {
        f.proto = proto;
        f.family = 0;
        f.ip4 = 0;
        f.ip6.fill(0);
        f.port = port;
        f.host = name;
        const d = c.decide(f);
        if (d.channel !== null && d.action !== 'bypass') {
          v = true;
          break;
        }
      }
      if (v) break;
    }
    if (this.#cache.size >= 4096) this.#cache.clear();
    this.#cache.set(name, v);
    return v;
  }
}

// ---- a local resolver for demos and tests -----------------------------------------------

export interface HostsDns {
  host: string;
  port: number;
  /** Queries answered so far. */
  readonly queries: number;
  close(): Promise<void>;
}

/**
 * A tiny DNS server on 127.0.0.1 answering A queries from `hosts` (exact names, then
 * `*.suffix` keys), AAAA with an empty NOERROR, unknown names with NXDOMAIN. For demos and
 * tests: the TUN's upstream, so nothing ever asks the real internet.
 */
export async function startHostsDns(
  hosts: Record<string, string>,
  opts: { host?: string; port?: number; ttl?: number } = {},
): Promise<HostsDns> {
  const map = new Map<string, string>();
  for (const [k, v] of Object.entries(hosts)) map.set(k.toLowerCase().replace(/\.$/, ''), v);
  const lookup = (name: string): string | undefined => {
    const n = name.toLowerCase().replace(/\.$/, '');
    const exact = map.get(n);
    if (exact !== undefined) return exact;
    for (let i = n.indexOf('.'); i !== -1; i = n.indexOf('.', i + 1)) {
      const w = map.get(`*${n.slice(i)}`);
      if (w !== undefined) return w;
    }
    return undefined;
  };
  const ttl = opts.ttl ?? 60;
  const sock: UdpSocket = createSocket('udp4');
  let queries = 0;
  sock.on('error', () => {});
  sock.on('message', (m, rinfo) => {
    if (!plainQuery(m)) return;
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(m);
    } catch {
      return;
    }
    const qq = q.questions?.[0];
    if (!qq) return;
    queries++;
    const ip = lookup(qq.name);
    const answers: dnsPacket.Answer[] =
      ip !== undefined && qq.type === 'A' ? [{ type: 'A', name: qq.name, ttl, data: ip }] : [];
    const rcode = ip === undefined ? 3 : 0; // NXDOMAIN : NOERROR
    sock.send(
      dnsPacket.encode({
        id: q.id ?? 0,
        type: 'response',
        flags:
          dnsPacket.AUTHORITATIVE_ANSWER |
          dnsPacket.RECURSION_AVAILABLE |
          ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
          rcode,
        questions: [qq],
        answers,
      }),
      rinfo.port,
      rinfo.address,
    );
  });
  sock.bind(opts.port ?? 0, opts.host ?? '127.0.0.1');
  try {
    await once(sock, 'listening');
  } catch (e) {
    sock.close();
    throw e;
  }
  const addr = sock.address();
  let closed = false;
  return {
    host: addr.address,
    port: addr.port,
    get queries() {
      return queries;
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((r) => sock.close(() => r()));
    },
  };
}

/**
 * What "real" DNS says for the demo names: the internet names' public-looking addresses
 * (6.6.254.0/24, acquired by address), and 198.51.100.0/24 (TEST-NET-2, never dialed: the
 * dial map sends bypassed demo names to the loopback servers) for the others, which a
 * rule normally acquires by name (answered from 6.6.0.0/16) but go upstream when their
 * channel is switched off or the name is bypassed.
 */
export function demoDnsHosts(demo: Pick<Demo, 'client'>): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 10;
  for (const name of [...DEMO_M365, ...DEMO_PRIVATE, DEMO_UDP_PRIVATE, ...DEMO_BYPASS]) {
    out[name] = `198.51.100.${n++}`;
  }
  return { ...out, ...demo.client.hosts };
}

/** The exit code of a child: 127 when it could not start, 128 + n for signal n. */
export function exitCode(c: ChildProcess): Promise<number> {
  return new Promise<number>((resolve) => {
    c.once('error', () => resolve(127));
    c.once('exit', (code, signal) => {
      if (code !== null) resolve(code);
      else resolve(128 + (signal ? (osConstants.signals[signal] ?? 15) : 15));
    });
  });
}

// ---- attach ---------------------------------------------------------------------------

const noop = (): void => {};

/**
 * Capture the flows of a TUN device (by default: of a new namespace behind it) into the
 * client. See the file comment for what each hook does. Throws TunUnavailableError when
 * the TUN cannot be created (no root, no /dev/net/tun, the addon not built).
 */
export async function attachTun(
  client: RunningClient,
  opts: AttachTunOptions = {},
): Promise<TunCapture> {
  const counters: TunCaptureCounters = {
    accepted: 0,
    reset: 0,
    dropped: 0,
    tcpForwarded: 0,
    tcpRefused: 0,
    tcpInternalErrors: 0,
    udpFlows: 0,
    udpDatagrams: 0,
  };
  const acquirer = new FqdnAcquirer(client);
  const fwd = client.forwarder;
  let stack: TunStack | null = null;
  const assocs = new Set<UdpAssociation>();
  const assocOf = new WeakMap<UdpFlow, UdpAssociation>();

  /** The address to give the forwarder: none for synthetic ones (the edge resolves the name). */
  const ipOf = (dst4: number, dstIp: string, host: string | null): string | null =>
    host !== null && stack?.dns.pool.nameOf(dst4) != null ? null : dstIp;

  const recordDenied = (f: TunFlow, d: Decision, verdict: FlowVerdict): void => {
    const host = f.host;
    const dstIp = formatIPv4(f.ip4);
    const ip = ipOf(f.ip4, dstIp, host);
    const req = {
      host,
      ip,
      appIp: dstIp,
      port: f.port,
      srcIp: formatIPv4(f.srcIp),
      srcPort: f.srcPort,
      capture: 'tun' as const,
    };
    const udp = f.proto === PROTO_UDP;
    const quic = client.platform.quic.ports.includes(f.port);
    fwd.recordRefused(
      req,
      udp ? 'udp' : 'tcp',
      d,
      verdict === 'reset' ? 'blocked' : quic ? 'quic' : 'policy',
    );
  };

  const classify = (f: TunFlow): FlowVerdict => {
    const d = client.classifier.decide(f);
    f.tag = d;
    const v: FlowVerdict = d.action === 'block' ? 'reset' : d.action === 'drop' ? 'drop' : 'accept';
    if (v === 'accept') {
      counters.accepted++;
      return v;
    }
    if (v === 'reset') counters.reset++;
    else counters.dropped++;
    try {
      recordDenied(f, d, v);
    } catch {}
    return v;
  };

  const onTcp: NonNullable<TunStackOptions['hooks']>['onTcp'] = (socket, info) => {
    socket.on('error', noop);
    counters.tcpForwarded++;
    void fwd
      .connectTcp({
        host: info.host,
        ip: ipOf(info.dst4, info.dstIp, info.host),
        appIp: info.dstIp,
        port: info.dstPort,
        srcIp: info.srcIp,
        srcPort: info.srcPort,
        capture: 'tun',
        relayed: true,
      })
      .then((res) => {
        if (res.refused !== undefined) {
          counters.tcpRefused++;
          info.reject(res.reason);
          return;
        }
        if (socket.destroyed) {
          res.upstream.destroy();
          return;
        }
        void fwd.relay(res.upstream, socket);
      })
      .catch(() => {
        // A bug of ours in one flow resets that flow, never the process.
        counters.tcpInternalErrors++;
        resetSocket(socket);
      });
  };

  const onUdp: NonNullable<TunStackOptions['hooks']>['onUdp'] = (flow, payload) => {
    let a = assocOf.get(flow);
    if (a === undefined) {
      const assoc = fwd.udpAssociation(
        { srcIp: flow.srcIp, srcPort: flow.srcPort, capture: 'tun' },
        (p) => {
          flow.reply(p);
        },
        // The destination refused or cannot be reached (directly, or at the edge): ICMP
        // port, host or net unreachable.
        (_host, _ip, _port, kind) => {
          flow.unreachable(kind);
        },
      );
      a = assoc;
      assocOf.set(flow, assoc);
      assocs.add(assoc);
      counters.udpFlows++;
      flow.onClose = () => {
        assocs.delete(assoc);
        assoc.close();
      };
    }
    counters.udpDatagrams++;
    a.send(flow.host, ipOf(flow.dst4, flow.dstIp, flow.host), flow.dstPort, payload, flow.dstIp);
  };

  let localDns: HostsDns | null = null;
  let ns: Netns | null = null;
  try {
    let upstream = opts.dnsUpstream ?? null;
    if (!upstream && opts.hostsForDns) {
      localDns = await startHostsDns(opts.hostsForDns);
      upstream = { host: localDns.host, port: localDns.port };
    }
    let device = opts.device;
    let netns = opts.netns ?? null;
    if (!device) {
      ns = createNetns(opts.netnsOptions);
      device = ns.device;
      netns = ns.name;
    }
    stack = await createTunStack({
      ...(opts.stack ?? {}),
      ...(opts.icmpOnDrop !== undefined ? { icmpOnDrop: opts.icmpOnDrop } : {}),
      device,
      netns,
      hooks: { classify, onTcp, onUdp, acquire: (name) => acquirer.acquires(name) },
      dns: {
        ...(opts.stack?.dns ?? {}),
        upstream,
        // Windows: with DNS over TCP, FQDN rules do not match (gsa-facts section 3).
        tcpAcquires: client.platform.dns?.tcp !== 'upstream',
        qualify: (name) => {
          const suffix = client.classifier.singleLabelSuffix;
          return suffix ? qualifySingleLabel(name, suffix) : null;
        },
      },
    });
  } catch (err) {
    ns?.destroy();
    await localDns?.close();
    throw err;
  }
  const st = stack;
  let closed = false;
  const capture: TunCapture = {
    stack: st,
    ns,
    dnsUpstream: localDns
      ? { host: localDns.host, port: localDns.port }
      : opts.dnsUpstream
        ? { host: opts.dnsUpstream.host, port: opts.dnsUpstream.port }
        : null,
    counters,
    metrics: () => tunMetrics(st.snapshot()),
    hostnames: () =>
      st.acquisitionTable().map((r) => ({
        time: r.time,
        fqdn: r.fqdn,
        generatedIp: r.generatedIp || null,
        acquired: r.acquired,
        originalIp: r.originalIp || null,
      })),
    acquires: (name) => acquirer.acquires(name.toLowerCase().replace(/\.$/, '')),
    spawn(command, args, o) {
      if (!ns) throw new Error('this TUN capture has no namespace of its own');
      return ns.spawn(command, args, o);
    },
    run(command, args, o) {
      return exitCode(capture.spawn(command, args, o));
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const a of [...assocs]) a.close();
      assocs.clear();
      await st.close();
      ns?.destroy();
      await localDns?.close();
    },
  };
  return capture;
}

/** A drop counter's name as a label value: dropTcpNatFull -> tcp_nat_full. */
const dropReason = (key: string): string =>
  key
    .slice('drop'.length)
    .replace(/[A-Z]/g, (ch, at: number) => `${at > 0 ? '_' : ''}${ch.toLowerCase()}`);

/** The TUN stack's tables and what it refused or reset, as Prometheus text. */
export function tunMetrics(c: TunCounters): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, rows: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) out.push(`${name}${labels} ${v}`);
  };
  metric('gsa_client_tun_entries', 'gauge', "Entries in the TUN capture's tables.", [
    ['{table="tcp_nat"}', c.natEntries],
    ['{table="udp"}', c.udpEntries],
    ['{table="synthetic"}', c.syntheticEntries],
  ]);
  metric(
    'gsa_client_tun_packets_total',
    'counter',
    'Packets read from and written to the TUN device.',
    [
      ['{direction="rx"}', c.rxPackets],
      ['{direction="tx"}', c.txPackets],
    ],
  );
  metric('gsa_client_tun_tcp_resets_total', 'counter', 'TCP connections the TUN capture reset.', [
    ['{reason="refused"}', c.tcpResetVerdicts],
    ['{reason="idle"}', c.tcpIdleResets],
  ]);
  metric(
    'gsa_client_tun_tcp_half_open_evicted_total',
    'counter',
    'Half-open TCP NAT entries dropped for a new SYN while the table was full (a SYN flood).',
    [['', c.tcpHalfOpenEvicted]],
  );
  metric(
    'gsa_client_tun_resolver_refused_total',
    'counter',
    'Flows to the synthetic resolver other than DNS, refused.',
    [['', c.resolverRefused]],
  );
  metric(
    'gsa_client_tun_dropped_packets_total',
    'counter',
    'Packets read from the TUN device and dropped, by reason (IPv6 and fragments too: GSA tunnels IPv4 only).',
    DROP_KEYS.map((k) => [`{reason="${dropReason(k)}"}`, c[k]]),
  );
  metric(
    'gsa_client_tun_icmp_sent_total',
    'counter',
    'ICMP errors the TUN capture sent to applications, by type: admin_prohibited (blocked or dropped UDP), port_unreachable (the destination refused), net_unreachable / host_unreachable (the UDP destination cannot be reached).',
    [
      ['{type="admin_prohibited"}', c.icmpAdminProhibited],
      ['{type="port_unreachable"}', c.icmpPortUnreachable],
      ['{type="net_unreachable"}', c.icmpNetUnreachable],
      ['{type="host_unreachable"}', c.icmpHostUnreachable],
    ],
  );
  metric(
    'gsa_client_tun_icmp_rate_limited_total',
    'counter',
    'ICMP port, host and net unreachables not sent: over the rate limit (per flow, and over all flows).',
    [['', c.icmpRateLimited]],
  );
  metric(
    'gsa_client_tun_udp_replies_too_big_total',
    'counter',
    "UDP replies (DNS answers too) larger than the TUN device's MTU, dropped.",
    [['', c.dropUdpTooBig]],
  );
  metric(
    'gsa_client_tun_dns_queries_total',
    'counter',
    'DNS queries the TUN capture answered or forwarded.',
    [['', c.dnsQueries]],
  );
  metric(
    'gsa_client_tun_dns_tcp_connections_total',
    'counter',
    'DNS-over-TCP connections to the synthetic resolver.',
    [['', c.dnsTcpConnections]],
  );
  return `${out.join('\n')}\n`;
}
