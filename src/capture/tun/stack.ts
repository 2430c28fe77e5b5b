/**
 * The TUN "system stack" (after sing-tun's `system` stack): TCP goes through the
 * kernel's own TCP implementation by NAT, UDP and DNS are handled in userspace.
 *
 * TCP. An application's SYN `S:sp -> D:dp` leaving through the TUN gets a NAT port n
 * (table keyed by the 4-tuple, bounded, expired after the kernel closes the connection or
 * after idling) and is rewritten to `natAddress:n -> tunAddress:listenPort` and written
 * back into the TUN, so the kernel delivers it to a listener on `tunAddress:listenPort`.
 * Replies `tunAddress:listenPort -> natAddress:n` are rewritten back to `D:dp -> S:sp`.
 * The accepted socket's remote port n finds the original destination: `onTcp(socket,
 * info)`. IPv4 and TCP checksums are updated incrementally (RFC 1624).
 *
 * Each new flow meets the `classify` hook once, on its first packet (TCP SYN, first UDP
 * datagram): 'accept', 'reset' (TCP RST / ICMP admin-prohibited) or 'drop'. Packets of
 * known flows never re-enter it.
 *
 * UDP. Per-flow NAT keyed by the 4-tuple (source and destination), idle timeout;
 * `onUdp(flow, payload, reply)`; replies are built from a per-flow header template, and so
 * is the ICMP port unreachable the consumer asks for when the destination refused
 * (`flow.portUnreachable()`), and the net / host unreachable when it cannot be reached
 * (`flow.unreachable(kind)`), rate-limited as Linux limits ICMP errors.
 * DNS (UDP port 53 to any address) is answered by the DnsInterceptor (6.6.0.0/16
 * synthetic addresses for acquired names).
 *
 * IPv6 is decoded and counted, then handed to `onIpv6` (default: dropped; GSA does not
 * acquire IPv6 and inside the harness namespace it has nowhere else to go).
 * Malformed, truncated and fragmented packets are counted and dropped.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  applyDelta,
  deltaWord,
  deltaWord32,
  rd16,
  rd32,
  wr16,
  wr32,
} from '../../parse/checksum.js';
import {
  UNREACH_ADMIN_PROHIBITED,
  UNREACH_HOST,
  UNREACH_NET,
  UNREACH_PORT,
} from '../../parse/icmp.js';
import { V4_CSUM, V4_DST, V4_SRC } from '../../parse/ipv4.js';
import {
  type DecodedPacket,
  decodePacket,
  newPacket,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
} from '../../parse/packet.js';
import { ACK, FIN, RST, SYN, TCP_CSUM, TCP_DPORT, TCP_SPORT } from '../../parse/tcp.js';
import { formatIPv4, parseIPv4 } from '../../util/ip.js';
import { resetSocket } from '../../util/reset.js';
import {
  icmpUnreachable,
  icmpUnreachableForUdp,
  tcpRstFor,
  udpReply,
  udpTemplate,
} from './build.js';
import { listenTcp4InNetns, type PacketDevice } from './device.js';
import {
  type AcquisitionRow,
  type DnsCounters,
  DnsInterceptor,
  type DnsOptions,
  newDnsCounters,
  SYNTHETIC_RESOLVER,
} from './dns.js';
import {
  ICMP_BURST,
  ICMP_GLOBAL_BURST,
  ICMP_GLOBAL_PER_SEC,
  ICMP_RATE_MS,
  TokenBucket,
} from './icmp-limit.js';

/**
 * The record handed to `classify` (reused: copy what you keep). Structurally a
 * `Flow` of src/classify/types.ts (proto, family, ip4, ip6, port, host), plus the source.
 */

/** The tag of a flow to the synthetic resolver's TCP port 53, served by the DnsInterceptor. */
const DNS_OVER_TCP = Symbol('dns-over-tcp');

/** RFC 5382 REQ-5: an established TCP mapping idles at least 2 h 4 min before it expires. */
export const TCP_IDLE_DEFAULT_MS = (2 * 60 + 4) * 60_000;
export interface TunFlow {
  proto: number;
  family: number;
  /** Destination IPv4 (unsigned). */
  ip4: number;
  ip6: Uint32Array;
  /** Destination port. */
  port: number;
  /** FQDN from the DNS table (synthetic 6.6.x.y or a recorded answer), else null. */
  host: string | null;
  srcIp: number;
  srcPort: number;
  /** Set by `classify` to carry its decision to onTcp/onUdp (e.g. the Decision). */
  tag: unknown;
}

export type FlowVerdict = 'accept' | 'reset' | 'drop';

export interface TcpFlowInfo {
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dst4: number;
  dstPort: number;
  host: string | null;
  /** What `classify` put into `flow.tag` for this flow. */
  tag: unknown;
  natPort: number;
  /** Reset the connection (the application sees RST from D:dp). */
  reject(reason?: string): void;
}

export interface UdpFlow {
  readonly srcIp: string;
  readonly srcPort: number;
  readonly dstIp: string;
  readonly dst4: number;
  readonly dstPort: number;
  readonly host: string | null;
  readonly tag: unknown;
  /** Send a datagram back to the application (from dstIp:dstPort). */
  reply(payload: Uint8Array): boolean;
  /**
   * The destination refused the flow's datagrams (its port unreachable: ECONNREFUSED on a
   * connected socket, or the edge said so): ICMP destination unreachable, code 3, to the
   * application, quoting the flow's last datagram (rebuilt from the flow's addresses and
   * ports), as a direct network would deliver it. Rate-limited per flow and per stack
   * (`icmpRateMs`, `icmpBurst`); false when limited or the flow is closed.
   */
  portUnreachable(): boolean;
  /**
   * The destination refused (`port`, as `portUnreachable`) or cannot be reached: `net`
   * (code 0, net unreachable: no route to its network, ENETUNREACH) or `host` (code 1, host
   * unreachable: no route to the host, a name that cannot be resolved, EHOSTUNREACH), as a
   * router on a direct network would answer. Same quote and rate limits as
   * `portUnreachable`; false when limited or the flow is closed.
   */
  unreachable(kind: UdpUnreachable): boolean;
  /** Forget the flow now. */
  close(): void;
  /** Called once when the flow expires or the stack closes. */
  onClose: (() => void) | null;
}

export interface TunStackHooks {
  /** Once per new flow (TCP SYN, first UDP datagram). Default 'accept'. Must not throw. */
  classify?: (flow: TunFlow) => FlowVerdict;
  /**
   * An accepted TCP connection; default: destroyed. The socket is half-open capable
   * (allowHalfOpen): after the application's FIN ('end') the consumer still writes and
   * must call end() itself.
   */
  onTcp?: (socket: net.Socket, info: TcpFlowInfo) => void;
  /** A datagram of an accepted UDP flow; `payload` may be kept (fresh per batch). */
  onUdp?: (flow: UdpFlow, payload: Buffer, reply: (payload: Uint8Array) => boolean) => void;
  /** DNS: does an FQDN rule acquire this name? (lowercase, no trailing dot) */
  acquire?: (name: string) => boolean;
  /** IPv6 packets (decoded); default: counted and dropped. */
  onIpv6?: (pkt: DecodedPacket, buf: Buffer) => void;
}

export interface TunStackOptions {
  device: PacketDevice;
  hooks?: TunStackHooks;
  /** The TUN's own address (default 10.255.0.1) where the listener binds. */
  tunAddress?: string;
  /** The NAT peer address (default 10.255.0.2, the other end of the /30). */
  natAddress?: string;
  /** Listener port (default 0: the kernel picks). */
  listenPort?: number;
  /**
   * Create the listener: true (default) in this process's namespace, or inside the named
   * network namespace when `netns` is set; false: no listener (unit tests: give
   * listenPort).
   */
  listen?: boolean;
  /** Network namespace (name or path) holding the TUN; the listener is created there. */
  netns?: string | null;
  /** NAT port range (default 10000-65535). */
  natPortMin?: number;
  natPortMax?: number;
  /** Most TCP NAT entries (default: the port range size). */
  maxTcpFlows?: number;
  /** Idle timeout of an open TCP entry (default 2 h 4 min, RFC 5382 REQ-5's minimum). */
  tcpIdleMs?: number;
  /** How long a closed TCP entry (FIN both ways / RST) is kept: the kernel's TIME_WAIT, 60 s. */
  tcpClosedMs?: number;
  /** A SYN that never got an answer: entry kept this long (default 30 s). */
  tcpSynMs?: number;
  /** Most UDP flows (default 16384) and their idle timeout (default 60 s). */
  maxUdpFlows?: number;
  udpIdleMs?: number;
  /** UDP 'drop' verdicts answer ICMP admin-prohibited (type 3 code 13) instead of silence. */
  icmpOnDrop?: boolean;
  /**
   * ICMP port unreachable (`UdpFlow.portUnreachable`) per UDP flow: one per `icmpRateMs`
   * (default 1000; 0: no limit) in bursts of `icmpBurst` (default 6), as Linux limits ICMP
   * errors to a destination (`icmp_ratelimit`); and at most 1000/s in bursts of 50 over
   * all flows (`icmp_msgs_per_sec`, `icmp_msgs_burst`).
   */
  icmpRateMs?: number;
  icmpBurst?: number;
  /** DNS interception options (acquire comes from hooks.acquire). */
  dns?: Omit<DnsOptions, 'acquire'>;
  /** Expired-entry sweep interval (default 5 s, unref'd timer). */
  sweepMs?: number;
}

/** Packet outcomes: rxPackets = tcpOut + tcpIn + udpIn + dnsIn + rejected + sum(drops). */
export interface TunCounters extends DnsCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  batches: number;
  ipv4: number;
  ipv6: number;
  /** App -> listener packets rewritten. */
  tcpOut: number;
  /** Listener -> app packets rewritten. */
  tcpIn: number;
  /** UDP datagrams delivered to onUdp. */
  udpIn: number;
  udpOut: number;
  /** DNS queries taken by the interceptor. */
  dnsIn: number;
  /** Packets answered by a RST or an ICMP unreachable. */
  rejected: number;
  dropTruncated: number;
  dropMalformed: number;
  dropFragment: number;
  dropUnsupported: number;
  dropIpv6: number;
  dropIcmp: number;
  /** TCP packet of no known flow (answered with RST when it was not itself a RST). */
  dropTcpNoFlow: number;
  dropTcpNatFull: number;
  dropTcpDeny: number;
  dropUdpDeny: number;
  dropUdpFull: number;
  dropUdpNoConsumer: number;
  dropNotIpv4Nat: number;
  /**
   * UDP replies (DNS answers too) larger than the device MTU, not written: outgoing, so not
   * part of the rxPackets sum.
   */
  dropUdpTooBig: number;
  /** Flow-level counters. */
  tcpFlows: number;
  tcpAccepted: number;
  tcpOrphanAccepts: number;
  tcpRejectedByConsumer: number;
  tcpResetVerdicts: number;
  /** Open connections reset because their NAT entry idled out (`tcpIdleMs`, `tcpSynMs`). */
  tcpIdleResets: number;
  /** Half-open entries (handshake not completed) dropped, oldest first, for a new SYN when the table was full. */
  tcpHalfOpenEvicted: number;
  udpFlows: number;
  udpResetVerdicts: number;
  /** ICMP errors written (admin-prohibited for 'reset'/'drop' verdicts; port, host, net unreachable). */
  icmpSent: number;
  /** Of icmpSent: admin prohibited (code 13), for 'reset' verdicts and, with icmpOnDrop, 'drop'. */
  icmpAdminProhibited: number;
  /** Of icmpSent: port unreachable for a destination that refused (`UdpFlow.portUnreachable`). */
  icmpPortUnreachable: number;
  /** Of icmpSent: net unreachable (code 0) for a UDP destination with no route to its network. */
  icmpNetUnreachable: number;
  /** Of icmpSent: host unreachable (code 1) for a UDP destination that cannot be reached. */
  icmpHostUnreachable: number;
  /** Port, host and net unreachables not sent: the flow's or the stack's ICMP rate limit. */
  icmpRateLimited: number;
  rstSent: number;
  natEntries: number;
  udpEntries: number;
  syntheticEntries: number;
  /** Flows to the synthetic resolver other than DNS (UDP or TCP port 53): reset. */
  resolverRefused: number;
}

/** The received-packet drop counters (each received packet ends in one outcome). */
export const DROP_KEYS = [
  'dropTruncated',
  'dropMalformed',
  'dropFragment',
  'dropUnsupported',
  'dropIpv6',
  'dropIcmp',
  'dropTcpNoFlow',
  'dropTcpNatFull',
  'dropTcpDeny',
  'dropUdpDeny',
  'dropUdpFull',
  'dropUdpNoConsumer',
  'dropNotIpv4Nat',
] as const;

/** rxPackets minus every accounted outcome: 0 when the counters add up. */
export function unaccounted(c: TunCounters): number {
  let s = c.tcpOut + c.tcpIn + c.udpIn + c.dnsIn + c.rejected;
  for (const k of DROP_KEYS) s += c[k];
  return c.rxPackets - s;
}

function newCounters(): TunCounters {
  const d = newDnsCounters();
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    batches: 0,
    ipv4: 0,
    ipv6: 0,
    tcpOut: 0,
    tcpIn: 0,
    udpIn: 0,
    udpOut: 0,
    dnsIn: 0,
    rejected: 0,
    dropTruncated: 0,
    dropMalformed: 0,
    dropFragment: 0,
    dropUnsupported: 0,
    dropIpv6: 0,
    dropIcmp: 0,
    dropTcpNoFlow: 0,
    dropTcpNatFull: 0,
    dropTcpDeny: 0,
    dropUdpDeny: 0,
    dropUdpFull: 0,
    dropUdpNoConsumer: 0,
    dropNotIpv4Nat: 0,
    dropUdpTooBig: 0,
    tcpFlows: 0,
    tcpAccepted: 0,
    tcpOrphanAccepts: 0,
    tcpIdleResets: 0,
    tcpHalfOpenEvicted: 0,
    resolverRefused: 0,
    tcpRejectedByConsumer: 0,
    tcpResetVerdicts: 0,
    udpFlows: 0,
    udpResetVerdicts: 0,
    icmpSent: 0,
    icmpAdminProhibited: 0,
    icmpPortUnreachable: 0,
    icmpNetUnreachable: 0,
    icmpHostUnreachable: 0,
    icmpRateLimited: 0,
    rstSent: 0,
    natEntries: 0,
    udpEntries: 0,
    syntheticEntries: 0,
    ...d,
  };
}

/** TCP NAT entry; one per flow (allocated per flow, never per packet). */
/** A chain of entries sharing a source key (IP, port), linked by `next`. */
interface Chained<T> {
  next: T | null;
}

/** Unlinks `e` from the chain at `map[k]` (deleting the key when it was the last one). */
function unlinkChained<T extends Chained<T>>(map: Map<number, T>, k: number, e: T): void {
  let head = map.get(k) ?? null;
  if (head === e) {
    if (e.next) map.set(k, e.next);
    else map.delete(k);
  } else {
    while (head && head.next !== e) head = head.next;
    if (head) head.next = e.next;
  }
  e.next = null;
}

class NatEntry {
  next: NatEntry | null = null;
  finOut = false;
  finIn = false;
  rst = false;
  /** The listener answered the SYN (SYN-ACK seen); `established` once the app ACKs it. */
  synAcked = false;
  established = false;
  accepted = false;
  /** The listener's socket for this flow, while it is open. */
  socket: net.Socket | null = null;
  lastSeen: number;
  constructor(
    readonly natPort: number,
    readonly srcIp: number,
    readonly srcPort: number,
    readonly dstIp: number,
    readonly dstPort: number,
    readonly host: string | null,
    readonly tag: unknown,
    now: number,
  ) {
    this.lastSeen = now;
  }
  get closed(): boolean {
    return this.rst || (this.finOut && this.finIn);
  }
  /**
   * Closed, and the listener's socket with it: a RST or FIN its endpoints ignored (out of
   * the window: a spoofed one) leaves the connection up, and it must not be reused or
   * expired as closed (which reset it).
   */
  get ended(): boolean {
    return this.closed && (this.socket === null || this.socket.destroyed);
  }
}

/** What `UdpFlow.unreachable` answers: ICMP destination unreachable code 0, 1 or 3. */
export type UdpUnreachable = 'net' | 'host' | 'port';

class UdpFlowImpl implements UdpFlow {
  next: UdpFlowImpl | null = null;
  lastSeen: number;
  closed = false;
  onClose: (() => void) | null = null;
  /** Payload length of the flow's last datagram (quoted by a port unreachable). */
  lastLen = 0;
  /** Its ICMP rate limit, made on its first port unreachable. */
  icmpLimit: TokenBucket | null = null;
  readonly srcIp: string;
  readonly dstIp: string;
  readonly template: Buffer;
  constructor(
    readonly stack: TunStack,
    readonly src4: number,
    readonly srcPort: number,
    readonly dst4: number,
    readonly dstPort: number,
    readonly host: string | null,
    readonly tag: unknown,
    readonly verdict: FlowVerdict,
    now: number,
  ) {
    this.lastSeen = now;
    this.srcIp = formatIPv4(src4);
    this.dstIp = formatIPv4(dst4);
    this.template = udpTemplate(dst4, dstPort, src4, srcPort);
  }
  reply = (payload: Uint8Array): boolean => {
    if (this.closed) return false;
    return this.stack.sendUdp(this.template, payload);
  };
  portUnreachable(): boolean {
    return this.stack.udpUnreachable(this, 'port');
  }
  unreachable(kind: UdpUnreachable): boolean {
    return this.stack.udpUnreachable(this, kind);
  }
  close(): void {
    this.stack.closeUdp(this);
  }
}

const keyOf = (ip: number, port: number): number => ip * 65536 + port;

export class TunStack {
  readonly counters: TunCounters = newCounters();
  readonly device: PacketDevice;
  readonly dns: DnsInterceptor;
  readonly tunAddress: string;
  readonly natAddress: string;
  listenPort: number;
  server: net.Server | null = null;

  #hooks: TunStackHooks;
  #tun4: number;
  #nat4: number;
  #portMin: number;
  #portMax: number;
  #cursor: number;
  #maxTcp: number;
  #tcpIdleMs: number;
  #tcpClosedMs: number;
  #tcpSynMs: number;
  #maxUdp: number;
  #udpIdleMs: number;
  #icmpOnDrop: boolean;
  #icmpRateMs: number;
  #icmpBurst: number;
  #icmpGlobal: TokenBucket;
  #byPort: (NatEntry | undefined)[] = new Array(65536);
  #bySrc = new Map<number, NatEntry>();
  #udp = new Map<number, UdpFlowImpl>();
  #rec = newPacket();
  #flow: TunFlow = {
    proto: PROTO_TCP,
    family: 4,
    ip4: 0,
    ip6: new Uint32Array(4),
    port: 0,
    host: null,
    srcIp: 0,
    srcPort: 0,
    tag: undefined,
  };
  #out: Uint8Array[] = [];
  #flushScheduled = false;
  #inBatch = false;
  #now = 0;
  #sweepTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #opts: TunStackOptions;
  #sockets = new Set<net.Socket>();

  constructor(opts: TunStackOptions) {
    this.#opts = opts;
    this.device = opts.device;
    this.#hooks = opts.hooks ?? {};
    this.tunAddress = opts.tunAddress ?? '10.255.0.1';
    this.natAddress = opts.natAddress ?? '10.255.0.2';
    this.#tun4 = parseIPv4(this.tunAddress);
    this.#nat4 = parseIPv4(this.natAddress);
    if (this.#tun4 < 0 || this.#nat4 < 0) throw new TypeError('tunAddress/natAddress: IPv4 only');
    this.listenPort = opts.listenPort ?? 0;
    this.#portMin = opts.natPortMin ?? 10000;
    this.#portMax = opts.natPortMax ?? 65535;
    if (!(this.#portMin >= 1 && this.#portMax <= 65535 && this.#portMin <= this.#portMax)) {
      throw new RangeError('natPortMin/natPortMax must be a range within 1-65535');
    }
    this.#cursor = this.#portMin;
    this.#maxTcp = Math.min(opts.maxTcpFlows ?? 1e9, this.#portMax - this.#portMin + 1);
    this.#tcpIdleMs = opts.tcpIdleMs ?? TCP_IDLE_DEFAULT_MS;
    this.#tcpClosedMs = opts.tcpClosedMs ?? 60_000;
    this.#tcpSynMs = opts.tcpSynMs ?? 30_000;
    this.#maxUdp = opts.maxUdpFlows ?? 16384;
    this.#udpIdleMs = opts.udpIdleMs ?? 60_000;
    this.#icmpOnDrop = opts.icmpOnDrop ?? false;
    this.#icmpRateMs = opts.icmpRateMs ?? ICMP_RATE_MS;
    this.#icmpBurst = opts.icmpBurst ?? ICMP_BURST;
    this.#icmpGlobal = new TokenBucket(
      1000 / ICMP_GLOBAL_PER_SEC,
      ICMP_GLOBAL_BURST,
      performance.now(),
    );
    const c = this.counters;
    this.dns = new DnsInterceptor({ ...opts.dns, acquire: this.#hooks.acquire }, c);
    this.device.onPackets((buf, offs, n) => this.#onBatch(buf, offs, n));
    this.#sweepTimer = setInterval(() => this.sweep(), opts.sweepMs ?? 5000);
    this.#sweepTimer.unref();
  }

  /** Start the listener (unless `listen: false`); resolves with the listen port. */
  async start(): Promise<number> {
    if (this.#opts.listen === false) return this.listenPort;
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.#onConnection(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (this.#opts.netns) {
        const fd = listenTcp4InNetns(this.#opts.netns, this.tunAddress, this.listenPort, 4096);
        server.listen({ fd, backlog: 4096 }, () => resolve());
      } else {
        server.listen({ port: this.listenPort, host: this.tunAddress, backlog: 4096 }, () =>
          resolve(),
        );
      }
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.listenPort = addr.port;
    return this.listenPort;
  }

  /** Replace the hooks (e.g. after a classifier reload: pass a new classify). */
  setHooks(hooks: TunStackHooks): void {
    this.#hooks = hooks;
  }

  /** FQDN for an IPv4 destination (synthetic or recorded from DNS answers). */
  hostFor(ip4: number): string | null {
    return this.dns.hostFor(ip4);
  }

  acquisitionTable(): AcquisitionRow[] {
    return this.dns.acquisitionTable();
  }

  /** The original flow behind a NAT port (the accepted socket's remote port). */
  lookupNat(natPort: number): {
    srcIp: number;
    srcPort: number;
    dstIp: number;
    dstPort: number;
  } | null {
    const e = this.#byPort[natPort];
    return e ? { srcIp: e.srcIp, srcPort: e.srcPort, dstIp: e.dstIp, dstPort: e.dstPort } : null;
  }

  snapshot(): TunCounters {
    this.counters.syntheticEntries = this.dns.pool.size;
    return { ...this.counters };
  }

  // ---- packet path -------------------------------------------------------------------

  #onBatch(buf: Buffer, offs: Uint32Array, n: number): void {
    const c = this.counters;
    this.#now = performance.now();
    this.#inBatch = true;
    c.batches++;
    for (let i = 0; i < n; i++) {
      const off = offs[2 * i]!;
      const len = offs[2 * i + 1]!;
      c.rxPackets++;
      c.rxBytes += len;
      this.#onPacket(buf, off, len);
    }
    this.#inBatch = false;
    this.#flush();
  }

  #onPacket(buf: Buffer, off: number, len: number): void {
    const c = this.counters;
    const rec = this.#rec;
    const v = decodePacket(buf, rec, off, len);
    if (rec.family === 6) c.ipv6++;
    else if (rec.family === 4) c.ipv4++;
    if (v !== 'ok') {
      if (v === 'truncated') c.dropTruncated++;
      else if (v === 'malformed') c.dropMalformed++;
      else if (v === 'fragment') c.dropFragment++;
      else if (rec.family === 6) c.dropIpv6++;
      else c.dropUnsupported++;
      return;
    }
    if (rec.family === 6) {
      c.dropIpv6++;
      const h = this.#hooks.onIpv6;
      if (h) {
        try {
          h(rec, buf);
        } catch {}
      }
      return;
    }
    if (rec.proto === PROTO_TCP) this.#tcp(buf, rec);
    else if (rec.proto === PROTO_UDP) this.#udpPacket(buf, rec);
    else if (rec.proto === PROTO_ICMP || rec.proto === PROTO_ICMPV6) c.dropIcmp++;
    else c.dropUnsupported++;
  }

  #tcp(buf: Buffer, rec: DecodedPacket): void {
    const c = this.counters;
    const ipOff = rec.ipOff;
    const l4 = rec.l4Off;
    const flags = rec.tcpFlags;
    // Listener -> app: tunAddress:listenPort -> natAddress:n
    if (rec.src4 === this.#tun4 && rec.srcPort === this.listenPort && rec.dst4 === this.#nat4) {
      const e = this.#byPort[rec.dstPort];
      if (!e) {
        c.dropTcpNoFlow++;
        return;
      }
      this.#rewrite(
        buf,
        ipOff,
        l4,
        rec.src4,
        e.dstIp,
        rec.dst4,
        e.srcIp,
        rec.srcPort,
        e.dstPort,
        rec.dstPort,
        e.srcPort,
      );
      e.lastSeen = this.#now;
      if (flags & RST) e.rst = true;
      if (flags & FIN) e.finIn = true;
      if (flags & SYN) e.synAcked = true;
      c.tcpIn++;
      this.#out.push(buf.subarray(ipOff, ipOff + rec.ipLen));
      return;
    }
    // App -> destination: S:sp -> D:dp
    let e = this.#find(rec.src4, rec.srcPort, rec.dst4, rec.dstPort);
    if ((flags & (SYN | ACK)) === SYN && e?.ended) {
      this.#release(e); // a new connection reusing the 4-tuple
      e = undefined;
    }
    if (!e) {
      if ((flags & (SYN | ACK | RST)) !== SYN) {
        c.dropTcpNoFlow++;
        if (!(flags & RST)) this.#sendRst(buf, rec);
        return;
      }
      const f = this.#fillFlow(rec, PROTO_TCP);
      const verdict = this.#classify(f);
      if (verdict !== 'accept') {
        if (verdict === 'reset') {
          c.tcpResetVerdicts++;
          c.rejected++;
          this.#sendRst(buf, rec);
        } else {
          c.dropTcpDeny++;
        }
        return;
      }
      e = this.#allocate(rec, f.host, f.tag);
      if (!e) {
        c.dropTcpNatFull++;
        this.#sendRst(buf, rec);
        return;
      }
    }
    this.#rewrite(
      buf,
      ipOff,
      l4,
      rec.src4,
      this.#nat4,
      rec.dst4,
      this.#tun4,
      rec.srcPort,
      e.natPort,
      rec.dstPort,
      this.listenPort,
    );
    e.lastSeen = this.#now;
    if (flags & RST) e.rst = true;
    if (flags & FIN) e.finOut = true;
    // The handshake completes with the app's ACK of the SYN-ACK: until then the entry is a
    // half-open one (tcpSynMs), so SYNs that never complete do not hold the table for hours.
    if (!e.established && e.synAcked && (flags & (SYN | ACK | RST)) === ACK) e.established = true;
    c.tcpOut++;
    this.#out.push(buf.subarray(ipOff, ipOff + rec.ipLen));
  }

  /** Rewrite addresses and ports in place with incremental checksum updates. */
  #rewrite(
    b: Buffer,
    ip: number,
    l4: number,
    oldSrc: number,
    newSrc: number,
    oldDst: number,
    newDst: number,
    oldSp: number,
    newSp: number,
    oldDp: number,
    newDp: number,
  ): void {
    const dIp = deltaWord32(deltaWord32(0, oldSrc, newSrc), oldDst, newDst);
    wr32(b, ip + V4_SRC, newSrc);
    wr32(b, ip + V4_DST, newDst);
    wr16(b, ip + V4_CSUM, applyDelta(rd16(b, ip + V4_CSUM), dIp));
    const dTcp = deltaWord(deltaWord(dIp, oldSp, newSp), oldDp, newDp);
    wr16(b, l4 + TCP_SPORT, newSp);
    wr16(b, l4 + TCP_DPORT, newDp);
    wr16(b, l4 + TCP_CSUM, applyDelta(rd16(b, l4 + TCP_CSUM), dTcp));
  }

  #find(src: number, sp: number, dst: number, dp: number): NatEntry | undefined {
    let e = this.#bySrc.get(keyOf(src, sp)) ?? null;
    while (e) {
      if (e.dstIp === dst && e.dstPort === dp) return e;
      e = e.next;
    }
    return undefined;
  }

  #expired(e: NatEntry): boolean {
    const age = this.#now - e.lastSeen;
    if (e.ended) return age > this.#tcpClosedMs;
    if (!e.established) return age > this.#tcpSynMs;
    return age > this.#tcpIdleMs;
  }

  #allocate(rec: DecodedPacket, host: string | null, tag: unknown): NatEntry | undefined {
    if (this.#full('natEntries', this.#maxTcp) && !this.#evictHalfOpen()) return undefined;
    const e = this.#allocatePort(rec, host, tag);
    if (e !== undefined || !this.#evictHalfOpen()) return e;
    return this.#allocatePort(rec, host, tag);
  }

  /**
   * A full table drops its oldest half-open entry (a SYN whose handshake never completed),
   * as a kernel's SYN queue does: a flood of SYNs from spoofed sources cannot keep out the
   * connections that complete. Established entries are never evicted. Scans the table:
   * only when it is full.
   */
  #evictHalfOpen(): boolean {
    let oldest: NatEntry | undefined;
    for (let p = this.#portMin; p <= this.#portMax; p++) {
      const e = this.#byPort[p];
      if (e && !e.established && !e.accepted && (!oldest || e.lastSeen < oldest.lastSeen)) {
        oldest = e;
      }
    }
    if (oldest === undefined) return false;
    this.counters.tcpHalfOpenEvicted++;
    this.#release(oldest);
    return true;
  }

  #allocatePort(rec: DecodedPacket, host: string | null, tag: unknown): NatEntry | undefined {
    const span = this.#portMax - this.#portMin + 1;
    for (let i = 0; i < span; i++) {
      const p = this.#cursor;
      this.#cursor = p >= this.#portMax ? this.#portMin : p + 1;
      const old = this.#byPort[p];
      if (old) {
        if (!this.#expired(old)) continue;
        this.#release(old);
      }
      const e = new NatEntry(p, rec.src4, rec.srcPort, rec.dst4, rec.dstPort, host, tag, this.#now);
      const k = keyOf(rec.src4, rec.srcPort);
      e.next = this.#bySrc.get(k) ?? null;
      this.#bySrc.set(k, e);
      this.#byPort[p] = e;
      this.counters.natEntries++;
      this.counters.tcpFlows++;
      this.dns.pool.ref(rec.dst4);
      return e;
    }
    return undefined;
  }

  #release(e: NatEntry): void {
    if (this.#byPort[e.natPort] !== e) return;
    this.#byPort[e.natPort] = undefined;
    unlinkChained(this.#bySrc, keyOf(e.srcIp, e.srcPort), e);
    this.counters.natEntries--;
    this.dns.pool.unref(e.dstIp);
    // An idled-out mapping: the application's side is gone from the NAT, so its next
    // segment gets a RST; end the listener's side too, and with it the flow's upstream
    // (tunnel stream or bypass socket), which would otherwise stay open for good.
    const sock = e.socket;
    e.socket = null;
    if (sock && !sock.destroyed) {
      if (!e.closed) this.counters.tcpIdleResets++;
      resetSocket(sock);
    }
  }

  #fillFlow(rec: DecodedPacket, proto: number): TunFlow {
    const f = this.#flow;
    f.proto = proto;
    f.family = 4;
    f.ip4 = rec.dst4;
    f.port = rec.dstPort;
    f.srcIp = rec.src4;
    f.srcPort = rec.srcPort;
    f.host = this.dns.hostFor(rec.dst4);
    f.tag = undefined;
    return f;
  }

  #classify(f: TunFlow): FlowVerdict {
    // The synthetic resolver never leaves the client (it is a real address on the
    // internet): TCP to its port 53 is DNS over TCP, anything else is refused.
    if (f.ip4 === SYNTHETIC_RESOLVER) {
      if (f.proto === PROTO_TCP && f.port === 53) {
        f.tag = DNS_OVER_TCP;
        return 'accept';
      }
      this.counters.resolverRefused++;
      return 'reset';
    }
    const h = this.#hooks.classify;
    if (!h) return 'accept';
    try {
      const v = h(f);
      return v === 'reset' || v === 'drop' ? v : 'accept';
    } catch {
      return 'drop';
    }
  }

  #sendRst(buf: Buffer, rec: DecodedPacket): void {
    const l4 = rec.l4Off;
    this.counters.rstSent++;
    this.#emit(
      tcpRstFor(
        rec.src4,
        rec.srcPort,
        rec.dst4,
        rec.dstPort,
        rd32(buf, l4 + 4),
        rd32(buf, l4 + 8),
        rec.tcpFlags,
        rec.payloadLen,
      ),
    );
  }

  #onConnection(socket: net.Socket): void {
    const c = this.counters;
    const n = socket.remotePort ?? -1;
    const e = n >= 0 ? this.#byPort[n] : undefined;
    if (!e || e.accepted || socket.remoteAddress !== this.natAddress) {
      c.tcpOrphanAccepts++;
      resetSocket(socket);
      return;
    }
    e.accepted = true;
    c.tcpAccepted++;
    e.socket = socket;
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      if (e.socket === socket) e.socket = null;
    });
    if (e.tag === DNS_OVER_TCP) {
      this.dns.serveTcp(socket);
      return;
    }
    const info: TcpFlowInfo = {
      srcIp: formatIPv4(e.srcIp),
      srcPort: e.srcPort,
      dstIp: formatIPv4(e.dstIp),
      dst4: e.dstIp,
      dstPort: e.dstPort,
      host: e.host,
      tag: e.tag,
      natPort: e.natPort,
      reject: () => {
        c.tcpRejectedByConsumer++;
        resetSocket(socket);
      },
    };
    const h = this.#hooks.onTcp;
    if (!h) {
      resetSocket(socket);
      return;
    }
    try {
      h(socket, info);
    } catch {
      resetSocket(socket);
    }
  }

  // ---- UDP ---------------------------------------------------------------------------

  #udpPacket(buf: Buffer, rec: DecodedPacket): void {
    const c = this.counters;
    if (rec.dstPort === 53) {
      c.dnsIn++;
      const tpl = udpTemplate(rec.dst4, 53, rec.src4, rec.srcPort);
      const payload = buf.subarray(rec.payloadOff, rec.payloadOff + rec.payloadLen);
      this.dns.handle(payload, (answer) => this.sendUdp(tpl, answer), this.#now);
      return;
    }
    const k = keyOf(rec.src4, rec.srcPort);
    let f = this.#udp.get(k) ?? null;
    while (f && (f.dst4 !== rec.dst4 || f.dstPort !== rec.dstPort)) f = f.next;
    if (!f) {
      const fl = this.#fillFlow(rec, PROTO_UDP);
      const verdict = this.#classify(fl);
      if (this.#full('udpEntries', this.#maxUdp)) {
        c.dropUdpFull++;
        return;
      }
      f = new UdpFlowImpl(
        this,
        rec.src4,
        rec.srcPort,
        rec.dst4,
        rec.dstPort,
        fl.host,
        fl.tag,
        verdict,
        this.#now,
      );
      f.next = this.#udp.get(k) ?? null;
      this.#udp.set(k, f);
      c.udpEntries++;
      c.udpFlows++;
      this.dns.pool.ref(rec.dst4);
    }
    f.lastSeen = this.#now;
    if (f.verdict !== 'accept') {
      if (f.verdict === 'reset' || this.#icmpOnDrop) {
        if (f.verdict === 'reset') c.udpResetVerdicts++;
        c.rejected++;
        c.icmpSent++;
        c.icmpAdminProhibited++;
        this.#emit(
          icmpUnreachable(
            buf,
            rec.ipOff,
            rec.ipHeaderLen,
            rec.ipLen,
            UNREACH_ADMIN_PROHIBITED,
            rec.dst4,
          ),
        );
      } else {
        c.dropUdpDeny++;
      }
      return;
    }
    const h = this.#hooks.onUdp;
    if (!h) {
      c.dropUdpNoConsumer++;
      return;
    }
    c.udpIn++;
    f.lastLen = rec.payloadLen;
    try {
      h(f, buf.subarray(rec.payloadOff, rec.payloadOff + rec.payloadLen), f.reply);
    } catch {}
  }

  /** Send a datagram built from a reply template (used by UdpFlow.reply and DNS). */
  sendUdp(template: Buffer, payload: Uint8Array): boolean {
    if (this.#closed) return false;
    if (28 + payload.length > Math.min(65535, this.device.mtu)) {
      this.counters.dropUdpTooBig++;
      return false;
    }
    this.counters.udpOut++;
    this.#emit(udpReply(template, payload));
    return true;
  }

  /** See `UdpFlow.unreachable`. Only when a destination refused or is unreachable: allocates. */
  udpUnreachable(f: UdpFlowImpl, kind: UdpUnreachable): boolean {
    if (this.#closed || f.closed || f.verdict !== 'accept') return false;
    const c = this.counters;
    const now = performance.now();
    f.icmpLimit ??= new TokenBucket(this.#icmpRateMs, this.#icmpBurst, now);
    if (!f.icmpLimit.take(now) || !this.#icmpGlobal.take(now)) {
      c.icmpRateLimited++;
      return false;
    }
    c.icmpSent++;
    let code: number;
    if (kind === 'net') {
      c.icmpNetUnreachable++;
      code = UNREACH_NET;
    } else if (kind === 'host') {
      c.icmpHostUnreachable++;
      code = UNREACH_HOST;
    } else {
      c.icmpPortUnreachable++;
      code = UNREACH_PORT;
    }
    this.#emit(icmpUnreachableForUdp(f.template, f.lastLen, code));
    return true;
  }

  closeUdp(f: UdpFlowImpl): void {
    if (f.closed) return;
    f.closed = true;
    unlinkChained(this.#udp, keyOf(f.src4, f.srcPort), f);
    this.counters.udpEntries--;
    this.dns.pool.unref(f.dst4);
    const cb = f.onClose;
    f.onClose = null;
    if (cb) {
      try {
        cb();
      } catch {}
    }
  }

  // ---- output ------------------------------------------------------------------------

  #emit(pkt: Uint8Array): void {
    this.#out.push(pkt);
    if (!this.#inBatch && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  #flush(): void {
    const out = this.#out;
    if (out.length === 0 || this.#closed) {
      out.length = 0;
      return;
    }
    const c = this.counters;
    for (let i = 0; i < out.length; i++) c.txBytes += out[i]!.length;
    c.txPackets += out.length;
    this.device.write(out);
    out.length = 0;
  }

  /** Free expired TCP entries and idle UDP flows (also run by an unref'd timer). */
  sweep(): void {
    this.#now = performance.now();
    for (let p = this.#portMin; p <= this.#portMax; p++) {
      const e = this.#byPort[p];
      if (e && this.#expired(e)) this.#release(e);
    }
    const now = this.#now;
    for (const f of this.#udpFlows((g) => now - g.lastSeen > this.#udpIdleMs)) this.closeUdp(f);
  }

  /** At `max` entries: sweep once; true when still full. */
  #full(gauge: 'natEntries' | 'udpEntries', max: number): boolean {
    if (this.counters[gauge] < max) return false;
    this.sweep();
    return this.counters[gauge] >= max;
  }

  /** The UDP flows (every chain), optionally filtered; a copy, safe to close while iterating. */
  #udpFlows(pred?: (f: UdpFlowImpl) => boolean): UdpFlowImpl[] {
    const out: UdpFlowImpl[] = [];
    for (const f of this.#udp.values()) {
      for (let g: UdpFlowImpl | null = f; g; g = g.next) if (!pred || pred(g)) out.push(g);
    }
    return out;
  }

  /** Stop: close the listener, UDP flows, DNS and the device. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    for (const f of this.#udpFlows()) this.closeUdp(f);
    this.#flush();
    this.#closed = true;
    this.dns.close();
    this.device.close();
    for (const sock of this.#sockets) sock.destroy();
    this.#sockets.clear();
    const s = this.server;
    if (s) {
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}

/** Create and start a stack (listener included unless `listen: false`). */
export async function createTunStack(opts: TunStackOptions): Promise<TunStack> {
  const s = new TunStack(opts);
  try {
    await s.start();
  } catch (err) {
    await s.close();
    throw err;
  }
  return s;
}

export { SYNTHETIC_NET, SYNTHETIC_RESOLVER } from './dns.js';
