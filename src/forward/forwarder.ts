/**
 * The forwarder: the one stage between capture (SOCKS5, HTTP proxy, TUN) and the tunnel.
 * For each new flow it classifies once, then tunnels, bypasses, blocks or drops it, applies
 * hardening when the channel's edge is down, and keeps the flow table.
 *
 * Contract:
 * - `connectTcp(req)` never throws; it resolves to an upstream Duplex (a TunnelStream or a
 *   direct socket) or to a refusal (`blocked | network | unreachable | refused | timeout |
 *   failed`) that the capture turns into its own reply code (SOCKS 0x02/0x03/0x04/0x05/0x06/
 *   0x01, HTTP 403/502/504).
 * - Classification: one reused Flow record is filled and `decide()` is called once. Only
 *   when a name matched no rule at all (the decision acquired nothing) and the address is
 *   unknown, the name is resolved (hosts map, then system DNS with a timeout) and the flow
 *   is classified a second time by address, so IP-based rules (private app segments,
 *   Microsoft IP ranges) still apply to names. A name acquired by a rule is tunneled by
 *   name and the edge resolves it (docs/decisions/forward-classify-by-name.md). An
 *   IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address, for every capture.
 * - `relay(res, client)` pipes both ways with backpressure (stream.pipeline), propagates
 *   half-close (FIN <-> end()), and closes the flow record once both directions ended or
 *   either side failed.
 * - `udpAssociation(...)` handles datagram flows (SOCKS UDP ASSOCIATE, later TUN UDP).
 */
import { randomUUID } from 'node:crypto';
import { connect as netConnect, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Classifier, Decision, Flow } from '../classify/types.js';
import { decideSingleLabel, newFlow, PROTO_TCP, singleLabelChannelOff } from '../classify/types.js';
import { ChannelDownError, StreamResetError } from '../errors.js';
import type { ChannelName, ClientState } from '../policy/model.js';
import { RESET_NAMES } from '../tunnel/stream.js';
import type { ChannelTunnels, OpenMeta, TunnelStream } from '../tunnel/types.js';
import { ResetCode } from '../tunnel/types.js';
import { BIG_READ_SIZE, BigReader } from '../util/big-read.js';
import { HALF_CLOSE_TIMEOUT_MS, whenIdle } from '../util/idle-timer.js';
import { addressPort, ipFamily, parseIPv4, parseIPv6, unmapIPv4 } from '../util/ip.js';
import { resetSocket, whenEndIsFin } from '../util/reset.js';
import type { ByteSource, CaptureKind, FlowAction, FlowRecord, FlowTable } from './flow-table.js';
import {
  channelOffReason,
  type Refusal,
  refusalOfError,
  refusalOfReset,
  type Unreachable,
} from './refusal.js';
import { type Resolver, useLocal } from './resolver.js';
import { UdpAssociation } from './udp.js';

export { type Refusal, refusalOfError, refusalOfReset };

export interface ConnectRequest {
  /** Destination name as the application gave it (SOCKS domain, HTTP Host), or null. */
  host: string | null;
  /** Destination address (IPv4/IPv6 text) when known, or null. */
  ip: string | null;
  port: number;
  srcIp: string;
  srcPort: number;
  capture: CaptureKind;
  process?: string | null;
  /**
   * The address the application connected to, when the flow is forwarded by name instead
   * (TUN: a synthetic 6.6.x.y from the DNS table; it never leaves the client). The flow
   * table shows it as the destination IP.
   */
  appIp?: string | null;
  /**
   * The caller hands the upstream to relay() and reads nothing from it itself (SOCKS, HTTP
   * CONNECT, TUN). A bypassed flow's socket then reads in large buffers that relay() lends
   * to the client socket's writes; without it, the upstream is an ordinary socket (plain
   * HTTP reads it with node:http).
   */
  relayed?: boolean;
}

export type ConnectResult =
  | { upstream: Duplex; decision: Decision; flow: FlowRecord; refused?: undefined }
  | {
      refused: Refusal;
      decision: Decision;
      flow: FlowRecord;
      reason: string;
      /**
       * A bypassed flow that failed: why it went direct (the decision's reason, or its
       * channel switched off since), as its record keeps it. Not for hardening, whose
       * `reason` says the channel is down.
       */
      direct?: string;
      upstream?: undefined;
    };

/** A minimal logger (pino-compatible subset). */
export interface ForwardLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface ForwarderOptions {
  /** The current classifier (read per flow, so a swap affects new flows only). */
  classifier: () => Classifier;
  tunnels: ChannelTunnels;
  /** Current tiles/toggles and platform. */
  clientState: () => ClientState;
  resolver: Resolver;
  flows: FlowTable;
  /** Direct (bypass) connect timeout in ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** Time allowed for the edge to accept a tunneled stream (OPEN_OK) in ms. Default 15,000. */
  openTimeoutMs?: number;
  /** Local address for direct (bypassed) TCP connects and UDP sockets. Default: any. */
  bypassLocalAddress?: string;
  /**
   * TCP: once one direction of a relayed flow has ended (a FIN), how long the other may stay
   * silent before the flow is closed (ms). Default 60,000 (Linux's tcp_fin_timeout). An
   * application that closed its socket cannot say so apart from a half-close, so without
   * this a silent server would hold the flow for good.
   */
  halfCloseTimeoutMs?: number;
  /** UDP: idle time after which a destination flow of an association is closed (ms). Default 60,000. */
  udpIdleMs?: number;
  /** UDP: destinations per association. Default 256. */
  udpMaxFlows?: number;
  /** UDP: datagrams queued per destination while it is being set up. Default 64. */
  udpQueue?: number;
  /** UDP: bytes queued in all of an association's destinations being set up. Default 1 MiB. */
  udpQueueBytes?: number;
  /**
   * UDP: destinations of all associations together (each bypassed one holds a socket: a
   * file descriptor). Default 16,384, as the TUN stack's `maxUdpFlows`.
   */
  udpMaxFlowsTotal?: number;
  /** UDP: bytes queued in all associations' destinations being set up. Default 32 MiB. */
  udpQueueBytesTotal?: number;
  /**
   * The process behind a new TCP flow, if the capture can tell: known (sync), 'pending'
   * (being looked up: setProcess() follows, and the edge is told to wait for it), or null.
   */
  processOf?: (rec: FlowRecord) => { name: string; pid: number } | 'pending' | null;
  log?: ForwardLogger;
}

const noop = (): void => {};
const noopLog: ForwardLogger = { info() {}, warn() {}, debug() {} };

/**
 * How long a tunneled flow that ended keeps its stream for a process lookup still running
 * (its answer goes to the edge in a late META). Lookups give up after 1 s.
 */
const LATE_PROCESS_MS = 2000;

/** Maps a decision to the flow-table action. */
function actionOf(d: Decision): FlowAction {
  switch (d.action) {
    case 'tunnel':
      return 'Tunnel';
    case 'bypass':
      return 'Bypass';
    case 'block':
      return 'Block';
    default:
      return 'Drop';
  }
}

/**
 * A reset that says the session is gone, so the flow gets its channel's fallback: the
 * session died (SESSION_CLOSED), or the edge refused the stream because it is going away
 * (GOAWAY: RST REFUSED "session going away").
 */
function sessionGone(code: number, reason: string): boolean {
  return (
    code === ResetCode.SESSION_CLOSED ||
    (code === ResetCode.REFUSED && reason.includes('session going away'))
  );
}

/**
 * A flow opened again after its session ended under the first OPEN gets a new connection
 * id: the edge may have logged the first attempt (a failure, its session closed) under the
 * old one, and the client's flow record must join the edge's record of the connection that
 * carried it, not two records of which the first failed.
 */
function renewConnectionId(rec: FlowRecord): void {
  rec.connectionId = randomUUID();
}

/** How the tunnel names a reset that came from the edge (tunnel/session.ts). */
const PEER_RESET = 'stream reset by peer: ';

/**
 * What the flow table and the proxies say of an OPEN the edge refused (its RST before
 * OPEN_OK): a block gives the edge's own reason (`web content filtering: casino.test is in
 * blocked category gambling`), anything else `refused by the edge: CONNECT_FAILED (...)`.
 */
function edgeRefusalText(r: { code: number; reason: string }): string {
  if (r.code === ResetCode.BLOCKED) return r.reason || 'blocked by the edge';
  return `refused by the edge: ${RESET_NAMES[r.code] ?? `code ${r.code}`}${r.reason ? ` (${r.reason})` : ''}`;
}

/** Why a stream did not open. `down`: its session is gone, the flow gets its fallback. */
export type OpenFailure = { refused: Refusal; reason: string; down?: boolean };

/**
 * How a tunneled flow's OPEN ended (Forwarder._openTunneled): the accepted stream, why it
 * was not (`failure.down`: the channel's fallback applies), or neither when the caller's
 * `gone()` said the flow went away meanwhile.
 */
export type TunnelOpen =
  | { stream: TunnelStream; failure: null }
  | { stream: null; failure: OpenFailure | null };

/** The flow went away while its OPEN waited (openTunneled's `gone`). */
const GIVEN_UP: TunnelOpen = { stream: null, failure: null };

/** The channel is down: its fallback applies. */
function channelDown(channel: ChannelName): TunnelOpen {
  return {
    stream: null,
    failure: { refused: 'unreachable', reason: `${channel} channel down`, down: true },
  };
}

/** The refusal for a stream reset `code` (`text`: what the flow record says). */
function streamRefusal(code: number, reason: string, text: string): OpenFailure {
  return sessionGone(code, reason)
    ? { refused: 'unreachable', reason: text, down: true }
    : { refused: refusalOfReset(code, reason), reason: text };
}

/**
 * How far a bypassed flow's reads run ahead of the client socket's writes: two reads, so
 * that the client's socket never runs dry while the next read is made.
 */
const BIG_READ_AHEAD = 2 * BIG_READ_SIZE;

/** The readers of bypassed flows' sockets (Forwarder.direct), for relay(). */
const bigReaders = new WeakMap<Socket, BigReader>();

class SocketBytes implements ByteSource {
  constructor(private readonly s: Socket) {}
  get sent(): number {
    return this.s.bytesWritten;
  }
  get received(): number {
    return this.s.bytesRead;
  }
}

class StreamBytes implements ByteSource {
  constructor(private readonly s: TunnelStream) {}
  get sent(): number {
    return this.s.bytesSent;
  }
  get received(): number {
    return this.s.bytesReceived;
  }
}

export class Forwarder {
  readonly flows: FlowTable;
  readonly resolver: Resolver;
  private readonly opts: ForwarderOptions;
  private readonly log: ForwardLogger;
  /** The one Flow record classification reuses (decide() is synchronous). */
  private readonly flow: Flow = newFlow();
  private readonly associations = new Set<UdpAssociation>();
  /**
   * @internal What all UDP associations hold together (their bounds are per association;
   * a client may open thousands): destination flows, and bytes queued during setup.
   */
  readonly _udpHeld = { flows: 0, queuedBytes: 0 };
  /** Records whose destinationIp is the application's (ConnectRequest.appIp), not forwarded. */
  private readonly shownOnly = new WeakSet<FlowRecord>();
  /** Open tunneled TCP flows by flow id (setProcess tells the edge). */
  private readonly tunneled = new Map<string, TunnelStream>();

  constructor(opts: ForwarderOptions) {
    this.opts = opts;
    this.flows = opts.flows;
    this.resolver = opts.resolver;
    this.log = opts.log ?? noopLog;
  }

  /** Fills the reused Flow record and classifies it. Never throws. */
  classify(proto: number, host: string | null, ip: string | null, port: number): Decision {
    const f = this.flow;
    f.proto = proto;
    f.port = port;
    f.host = host;
    f.ip4 = 0;
    f.ip6.fill(0);
    // family 0: address unknown (a name only); the classifier skips its address tables.
    f.family = 0;
    if (ip !== null) {
      const v4 = parseIPv4(ip);
      if (v4 >= 0) {
        f.family = 4;
        f.ip4 = v4;
      } else if (parseIPv6(ip, f.ip6)) {
        f.family = 6;
      }
    }
    return this.opts.classifier().decide(f);
  }

  /**
   * Classifies a request (name first, then by resolved address when the name matched no
   * rule, whatever that made of it: bypass, or the platform's QUIC drop on UDP 443/80).
   * Returns the decision and the address, if one was learned. A name a rule matched (to
   * tunnel, bypass or block it) is never resolved here, but for a single label that a rule
   * acquires once qualified for Private DNS: resolved first, it comes back qualified
   * (`host`, `qualified`) only when the client's resolver has no address for it. One such
   * rule would acquire were the Private Access channel on is named in the no-match bypass
   * (`qualifiedWhenOn`: the name it would go by), as for a full private name.
   */
  async decide(
    proto: number,
    host: string | null,
    ip: string | null,
    port: number,
  ): Promise<{
    decision: Decision;
    ip: string | null;
    host: string | null;
    qualified?: true;
    qualifiedWhenOn?: string;
  }> {
    if (host !== null) {
      host = host.toLowerCase();
      if (host.endsWith('.')) host = host.slice(0, -1);
      if (ipFamily(host) !== 0) {
        ip ??= host;
        host = null;
      }
    }
    if (ip !== null) ip = unmapIPv4(ip);
    let d = this.classify(proto, host, ip, port);
    // Private DNS: a single-label name travels as `name.<appId>.globalsecureaccess.local`
    // when a rule acquires it so, unless the machine resolves it itself (a hosts entry, a
    // compose service: its own names before GSA's suffix, as in a DNS search list); else
    // (another port, say) it stays as the application gave it.
    const classifier = this.opts.classifier();
    const q = decideSingleLabel(classifier, this.flow);
    if (q !== null && host !== null) {
      const qualified = this.flow.host;
      const local = ip ?? (await this.resolver.resolve(host));
      if (local === null) return { decision: q, ip, host: qualified, qualified: true };
      return { decision: this.classify(proto, host, local, port), ip: local, host };
    }
    // The channel off: the name stays as given, and the reason says the channel is off.
    const off = q === null ? singleLabelChannelOff(classifier, this.flow, d) : null;
    if (off !== null) d = off.decision;
    if (host !== null && ip === null && d.ruleId === null) {
      const resolved = await this.resolver.resolve(host);
      if (resolved !== null) {
        ip = resolved;
        d = this.classify(proto, host, ip, port);
      }
    }
    if (off !== null && d === off.decision) {
      return { decision: d, ip, host, qualifiedWhenOn: off.name };
    }
    return { decision: d, ip, host };
  }

  private newRecord(
    req: ConnectRequest,
    proto: 'tcp' | 'udp',
    host: string | null,
    ip: string | null,
    d: Decision,
  ): FlowRecord {
    const rec = this.record(req, proto, host, ip ?? req.appIp ?? null, d);
    if (ip === null && req.appIp) this.shownOnly.add(rec);
    return rec;
  }

  /** The address a flow is forwarded to (null: by name), which its record may not show. */
  private forwardIp(rec: FlowRecord): string | null {
    return this.shownOnly.has(rec) ? null : rec.destinationIp;
  }

  private record(
    req: ConnectRequest,
    proto: 'tcp' | 'udp',
    host: string | null,
    ip: string | null,
    d: Decision,
  ): FlowRecord {
    return {
      flowId: this.flows.newFlowId(),
      connectionId: randomUUID(),
      beginTime: Date.now(),
      endTime: null,
      status: 'Active',
      protocol: proto,
      destinationFqdn: host,
      destinationIp: ip,
      destinationPort: req.port,
      sourceIp: req.srcIp,
      sourcePort: req.srcPort,
      process: req.process ?? null,
      bytesSent: 0,
      bytesReceived: 0,
      channel: d.channel,
      ruleId: d.ruleId,
      action: actionOf(d),
      hardening: 'N',
      capture: req.capture,
      reason: d.reason,
      drops: 0,
    };
  }

  private refuse(
    rec: FlowRecord,
    d: Decision,
    refused: Refusal,
    reason: string,
  ): ConnectResult & { refused: Refusal } {
    // A hardening bypass that fails (the channel down, the direct connection not made) says
    // both: the error alone reads as the rule's doing, though the rule tunnels the flow.
    let direct: string | undefined;
    if (rec.hardening === 'Y' && rec.action === 'Bypass' && d.channel !== null) {
      reason = `${d.channel} channel down: fallback bypass; ${reason}`;
    } else if (rec.action === 'Bypass' && refused !== 'blocked') {
      // A bypass that fails: the flow table keeps why the flow went direct, too ("cannot
      // resolve fs1" alone does not say that the VPN is off or the channel of its rule): the
      // decision's reason, or that the channel was switched off after it.
      direct = rec.reason;
    }
    rec.status = 'Terminated';
    rec.reason = direct === undefined ? reason : `${reason}; ${direct}`;
    // Blocked by the client's policy, by hardening or by the edge (RST BLOCKED): a Block.
    if (refused === 'blocked' && rec.action !== 'Drop') rec.action = 'Block';
    this.flows.counters.refusal(refused);
    this.flows.record(rec);
    this.log.info(
      {
        flowId: rec.flowId,
        connectionId: rec.connectionId,
        host: rec.destinationFqdn,
        ip: rec.destinationIp,
        port: rec.destinationPort,
        action: rec.action,
        refused,
        reason,
      },
      'flow refused',
    );
    return { refused, decision: d, flow: rec, reason, ...(direct !== undefined ? { direct } : {}) };
  }

  /** Opens a TCP flow. Never throws. */
  async connectTcp(req: ConnectRequest): Promise<ConnectResult> {
    const { decision: d, ip, host } = await this.decide(PROTO_TCP, req.host, req.ip, req.port);
    const rec = this.newRecord(req, 'tcp', host, ip, d);
    let processPending = false;
    if (rec.process === null && this.opts.processOf) {
      const owner = this.opts.processOf(rec);
      if (owner === 'pending') processPending = true;
      else if (owner !== null) {
        rec.process = owner.name;
        rec.processId = owner.pid;
      }
    }
    switch (d.action) {
      case 'block':
        return this.refuse(rec, d, 'blocked', `blocked by ${d.ruleName ?? d.ruleId ?? 'policy'}`);
      case 'drop':
        return this.refuse(rec, d, 'blocked', `dropped: ${d.reason}`);
      case 'bypass':
        return this.direct(rec, d, host, ip, req.port, req.relayed);
      default:
        break;
    }
    const channel = d.channel as ChannelName;
    if (!this.opts.clientState().channels[channel]) {
      // The tile was switched off after this classifier was compiled: the traffic goes direct
      // (and its record says so, not the decision's "tunnels it").
      rec.action = 'Bypass';
      rec.reason = channelOffReason(channel);
      return this.direct(rec, d, host, ip, req.port, req.relayed);
    }
    const { stream, failure } = await this.openTunneled(
      channel,
      (retry) => {
        if (retry) renewConnectionId(rec);
        const meta = this.meta(rec, channel, d, 'tcp');
        if (processPending) meta.processPending = true;
        return meta;
      },
      // The process lookup's answer goes to the edge even for a flow it refuses.
      processPending ? (s) => this.tunneled.set(rec.flowId, s) : undefined,
    );
    if (stream !== null) {
      this.track(rec, stream, new StreamBytes(stream));
      this.tunneled.set(rec.flowId, stream);
      return { upstream: stream, decision: d, flow: rec };
    }
    if (processPending) this.forgetLater(rec.flowId);
    if (failure!.down) return this.harden(rec, d, host, ip, req.port, req.relayed);
    return this.refuse(rec, d, failure!.refused, failure!.reason);
  }

  /**
   * Opens a tunneled flow's stream on `channel` (`meta()` for each OPEN; `onOpen` hears of
   * each stream) and waits for the edge's answer. While a session the edge ended in the
   * normal course (token expiry, GOAWAY) is being replaced, the flow waits for it (bounded)
   * rather than take the channel's fallback, before its OPEN, and once more when the
   * session ended under its OPEN (the edge never accepted it and nothing was relayed:
   * opening it again is safe). `gone()`, asked after each wait: the caller gave the flow up.
   * `meta(retry)`: true for that second OPEN, which goes under a connection id of its own
   * (renewConnectionId).
   */
  private async openTunneled(
    channel: ChannelName,
    meta: (retry: boolean) => OpenMeta,
    onOpen?: (s: TunnelStream) => void,
    gone?: () => boolean,
  ): Promise<TunnelOpen> {
    const tunnels = this.opts.tunnels;
    for (let attempt = 0; ; attempt++) {
      let up = tunnels.isUp(channel);
      if (!up && (await tunnels.whenBack?.(channel))) {
        if (gone?.()) return GIVEN_UP;
        up = tunnels.isUp(channel);
      }
      if (!up) return channelDown(channel);
      let stream: TunnelStream;
      try {
        stream = tunnels.open(channel, meta(attempt > 0));
      } catch (err) {
        if (err instanceof ChannelDownError) return channelDown(channel);
        const reason = `tunnel open failed: ${(err as Error).message}`;
        return { stream: null, failure: { refused: 'unreachable', reason } };
      }
      // A stream reset before OPEN_OK is destroyed with an error: keep it from going uncaught.
      stream.on('error', noop);
      onOpen?.(stream);
      const res = await this.awaitOpened(stream);
      if (gone?.()) return GIVEN_UP;
      if (res === null) return { stream, failure: null };
      if (
        res.down &&
        attempt === 0 &&
        (tunnels.isUp(channel) || (await tunnels.whenBack?.(channel)))
      ) {
        if (gone?.()) return GIVEN_UP;
        continue;
      }
      return { stream: null, failure: res };
    }
  }

  /**
   * The process behind an open flow became known after it started (proxy flows: looked up
   * off the data path): recorded in the flow table and, for a tunneled flow, sent to the
   * edge (META), whose traffic log then names it (`initiatingProcessName`).
   */
  setProcess(rec: FlowRecord, name: string | null, pid?: number): void {
    if (name !== null) {
      rec.process = name;
      if (pid !== undefined) rec.processId = pid;
    }
    // Also after the flow ended, when the edge waits for it (OPEN said processPending);
    // null tells it to stop waiting.
    const stream = this.tunneled.get(rec.flowId);
    if (stream !== undefined && (name !== null || stream.meta.processPending === true)) {
      stream.updateMeta?.({ process: name });
    }
  }

  private forgetLater(flowId: string): void {
    setTimeout(() => this.tunneled.delete(flowId), LATE_PROCESS_MS).unref();
  }

  /** Hardening: the channel's edge is unreachable; apply the rule's clientFallbackAction. */
  private harden(
    rec: FlowRecord,
    d: Decision,
    host: string | null,
    ip: string | null,
    port: number,
    relayed?: boolean,
  ): Promise<ConnectResult> | ConnectResult {
    rec.hardening = 'Y';
    if (d.fallback === 'bypass') {
      rec.action = 'Bypass';
      rec.reason = `${d.channel} channel down: fallback bypass`;
      return this.direct(rec, d, host, ip, port, relayed);
    }
    rec.action = 'Block';
    return this.refuse(rec, d, 'blocked', `${d.channel} channel down: fallback block`);
  }

  private meta(rec: FlowRecord, channel: ChannelName, d: Decision, proto: 'tcp' | 'udp'): OpenMeta {
    return {
      proto,
      host: rec.destinationFqdn,
      ip: this.forwardIp(rec),
      port: rec.destinationPort,
      flowId: rec.flowId,
      connectionId: rec.connectionId,
      channel,
      ruleId: d.ruleId,
      policyId: d.policyId,
      srcIp: rec.sourceIp,
      srcPort: rec.sourcePort,
      process: rec.process,
    };
  }

  /**
   * null when opened; otherwise why not (`down`: the session died, apply hardening). A
   * stream accepted and reset in one batch (OPEN_OK then RST, handled before this resolves)
   * cannot be relayed: refused with its reset, as one reset before OPEN_OK.
   */
  private awaitOpened(stream: TunnelStream): Promise<OpenFailure | null> {
    const timeoutMs = this.opts.openTimeoutMs ?? 15_000;
    return new Promise((resolve) => {
      let reset: { code: number; reason: string } | null = null;
      const onReset = (code: number, reason: string): void => {
        reset = { code, reason };
      };
      stream.once('reset', onReset);
      const timer = setTimeout(() => {
        stream.reset(ResetCode.TIMEOUT, 'open timeout');
        resolve({ refused: 'timeout', reason: `edge did not accept within ${timeoutMs} ms` });
      }, timeoutMs);
      stream.opened.then(
        () => {
          clearTimeout(timer);
          stream.off('reset', onReset);
          if (!stream.destroyed) resolve(null);
          else if (reset === null) {
            resolve({ refused: 'unreachable', reason: 'stream closed as it opened' });
          } else {
            const { code, reason } = reset as { code: number; reason: string };
            resolve(
              streamRefusal(
                code,
                reason,
                `reset as it opened: ${code}${reason ? ` ${reason}` : ''}`,
              ),
            );
          }
        },
        (err: unknown) => {
          clearTimeout(timer);
          stream.off('reset', onReset);
          if (err instanceof StreamResetError) {
            const text =
              reset !== null && err.message.startsWith(PEER_RESET)
                ? edgeRefusalText(reset as { code: number; reason: string })
                : err.message;
            resolve(streamRefusal(err.resetCode, err.message, text));
            return;
          }
          resolve({ refused: 'unreachable', reason: (err as Error)?.message ?? String(err) });
        },
      );
    });
  }

  /** Bypass: connect directly (resolving the name if needed), with a timeout. */
  private async direct(
    rec: FlowRecord,
    d: Decision,
    host: string | null,
    ip: string | null,
    port: number,
    relayed = false,
  ): Promise<ConnectResult> {
    const mapped = this.resolver.dialTarget(host, ip, port);
    if (mapped !== null) {
      // The dial map stands in for DNS here: a name's record shows what it "resolved" to.
      rec.destinationIp ??= mapped.ip;
      ip = mapped.ip;
      port = mapped.port;
    } else {
      // net.connect throws on port 0 (a TUN packet can name it): refused, never thrown.
      if (!(port >= 1 && port <= 65535)) {
        return this.refuse(rec, d, 'unreachable', `no destination port (${port})`);
      }
      if (ip === null && host !== null) {
        ip = await this.resolver.resolve(host);
        if (ip === null) return this.refuse(rec, d, 'unreachable', `cannot resolve ${host}`);
        rec.destinationIp = ip;
      }
      if (ip === null) return this.refuse(rec, d, 'unreachable', 'no destination address');
      if (!this.resolver.mayDial(ip)) {
        return this.refuse(
          rec,
          d,
          'unreachable',
          `no route to ${ip} (direct connections are limited to loopback and the dial map)`,
        );
      }
    }
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const local = this.opts.bypassLocalAddress;
    // For relay(): reads of up to 256 KiB, lent to the client socket's writes.
    const reader = relayed
      ? new BigReader(undefined, { reuse: true, ahead: BIG_READ_AHEAD })
      : null;
    const sock = await new Promise<Socket | { refused: Refusal; reason: string }>((resolve) => {
      const s = netConnect({
        host: ip!,
        port,
        allowHalfOpen: true,
        noDelay: true,
        ...(reader !== null ? { onread: reader.onread } : {}),
        ...(local && useLocal(local, ip!) ? { localAddress: local } : {}),
      });
      if (reader !== null) bigReaders.set(s, reader);
      const timer = setTimeout(() => {
        s.destroy();
        resolve({ refused: 'timeout', reason: `connect to ${addressPort(ip, port)} timed out` });
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve({
          refused: refusalOfError(err),
          reason: `${err.code ?? 'error'} ${addressPort(ip, port)}`,
        });
      });
    });
    if ('refused' in sock) return this.refuse(rec, d, sock.refused, sock.reason);
    this.track(rec, sock, new SocketBytes(sock));
    return { upstream: sock, decision: d, flow: rec };
  }

  /** Registers an open flow and closes its record when the upstream closes. */
  private track(rec: FlowRecord, upstream: Duplex, bytes: ByteSource): void {
    this.flows.open(rec, bytes);
    let why: string | null = null;
    upstream.on('reset', (code: number, reason: string) => {
      // The edge's RST of an open flow (web content filtering on the TLS SNI, a destination
      // reset, the session's end), said as the refusals of an OPEN are.
      if (code !== ResetCode.CANCEL) {
        why = `stream reset by the edge: ${RESET_NAMES[code] ?? `code ${code}`}${reason ? ` (${reason})` : ''}`;
      }
    });
    upstream.on('error', (err: Error) => {
      why ??= err.message;
    });
    upstream.once('close', () => {
      // While the lookup still runs, keep the stream so that its answer reaches the edge.
      if (this.tunneled.get(rec.flowId)?.meta.processPending === true) this.forgetLater(rec.flowId);
      else this.tunneled.delete(rec.flowId);
      this.flows.close(rec.flowId, why ? 'Terminated' : undefined, why ?? undefined);
    });
  }

  /**
   * Pipes `client` <-> `res.upstream` with backpressure until both directions ended
   * (half-close propagates: the client's FIN ends the upstream's writable side and vice
   * versa), or until either side fails, which aborts the other with an RST (a tunnel stream
   * with RST CANCEL, which the edge passes on to the destination) and destroys both; an
   * upstream already destroyed aborts the client at once. `head` is written upstream first
   * (bytes the capture already read past its handshake). Resolves when done.
   */
  relay(upstream: Duplex, client: Duplex, head?: Buffer): Promise<void> {
    // Readable.pipe() rather than stream.pipeline(): pipeline allocates an AbortController
    // and, on completion, an AbortError DOMException (a stack capture) per direction, which
    // showed as ~8% of CPU in the sequential-connection benchmark. pipe() gives the same
    // backpressure and half-close (end() when the source ends); errors and premature
    // closes are handled here.
    return new Promise((resolve) => {
      let finished = false;
      // Per direction: source readable ended and sink writable finished.
      let upDone = false; // client -> upstream
      let downDone = false; // upstream -> client
      // A side may have ended before relay() ran (the app's FIN while the tunnel was opening):
      // its 'end' came already and will not again.
      let clientEnded = client.readableEnded;
      let upstreamEnded = upstream.readableEnded;
      let upstreamFinished = false;
      let clientFinished = false;
      let cancelHalf: (() => void) | null = null;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        cancelHalf?.();
        client.unpipe(upstream);
        upstream.unpipe(client);
        if (!client.destroyed) client.destroy();
        if (!upstream.destroyed) upstream.destroy();
        resolve();
      };
      const check = (): void => {
        upDone = clientEnded && upstreamFinished;
        downDone = upstreamEnded && clientFinished;
        if (upDone && downDone) finish();
        else if ((upDone || downDone) && cancelHalf === null) halfClosed();
      };
      // One direction done: the other gets halfCloseTimeoutMs of silence, counted on the
      // client socket's byte counters when the timer fires (nothing on the data path).
      const halfCloseMs = this.opts.halfCloseTimeoutMs ?? HALF_CLOSE_TIMEOUT_MS;
      const moved = (): number => {
        const c = client as Partial<Socket>;
        return (c.bytesRead ?? 0) + (c.bytesWritten ?? 0);
      };
      const halfClosed = (): void => {
        cancelHalf = whenIdle(moved, halfCloseMs, finish);
      };
      // An aborted upstream (tunnel RST, socket error) aborts the client with a TCP RST, so
      // the application sees a reset rather than a clean end it could take for complete data.
      const abortClient = (): void => {
        resetSocket(client);
        finish();
      };
      upstream.once('reset', (code: number) => {
        if (code !== ResetCode.CANCEL) abortClient();
      });
      upstream.on('error', abortClient);
      // And the other way: an aborted client (its RST) aborts a direct upstream with an RST;
      // a tunnel stream destroyed by finish() sends RST CANCEL, which the edge passes on.
      client.on('error', () => {
        if (upstream instanceof Socket) resetSocket(upstream);
        finish();
      });
      // Half-close: the end of a side's input ends the other's output once it is known to be
      // a FIN; an RST that libuv reported as an end makes the side emit 'error' instead
      // (whenEndIsFin), which aborts the other side above.
      const endUpstream = (): void => {
        if (!upstream.destroyed && !upstream.writableEnded) upstream.end();
      };
      let endClient: (() => void) | null = null;
      client.once('end', () => {
        clientEnded = true;
        whenEndIsFin(client, endUpstream);
        check();
      });
      upstream.once('end', () => {
        upstreamEnded = true;
        if (endClient !== null) whenEndIsFin(upstream, endClient);
        check();
      });
      upstream.once('finish', () => {
        upstreamFinished = true;
        check();
      });
      client.once('finish', () => {
        clientFinished = true;
        check();
      });
      // A side that closes before both directions completed ends the relay (the other side
      // is destroyed); a side that closes after completing its part waits for the other.
      client.once('close', () => {
        if (!(clientEnded && clientFinished)) finish();
      });
      upstream.once('close', () => {
        if (!(upstreamEnded && upstreamFinished)) abortClient();
      });
      // Already gone (reset before relay() ran): its 'close' will not come again.
      if (upstream.destroyed) {
        abortClient();
        return;
      }
      if (client.destroyed) {
        if (upstream instanceof Socket) resetSocket(upstream);
        finish();
        return;
      }
      if (head && head.length > 0) upstream.write(head);
      client.pipe(upstream, { end: false });
      if (clientEnded) whenEndIsFin(client, endUpstream);
      // A tunnel stream writes straight into a socket (no Readable in between, and the
      // tunnel's read buffers are reused once the socket has written them).
      const spliced = upstream as Duplex & Pick<TunnelStream, 'spliceTo'>;
      const reader = upstream instanceof Socket ? bigReaders.get(upstream) : undefined;
      if (typeof spliced.spliceTo === 'function' && client instanceof Socket) {
        spliced.spliceTo(client);
      } else if (reader !== undefined) {
        // A bypassed flow's socket reads into large buffers and lends them to the client's
        // write (a Writable that writes to a socket is done with the bytes at its callback).
        reader.pipeTo(upstream as Socket, client);
      } else {
        upstream.pipe(client, { end: false });
        endClient = () => {
          if (!client.destroyed && !client.writableEnded) client.end();
        };
        if (upstreamEnded) whenEndIsFin(upstream, endClient);
      }
    });
  }

  /**
   * Opens a UDP association for one client (SOCKS UDP ASSOCIATE, TUN UDP). `reply` is called
   * for every datagram coming back, with the address it came from (for SOCKS: the
   * destination the client sent to); `unreachable` (optional: TUN) when that destination
   * refused a datagram (`port`: ECONNREFUSED direct, or reported by the edge) or cannot be
   * reached (`net`, `host`: ENETUNREACH / EHOSTUNREACH, a name or host the client or the
   * edge cannot resolve or reach).
   */
  udpAssociation(
    req: { srcIp: string; srcPort: number; capture: CaptureKind; process?: string | null },
    reply: (payload: Buffer, host: string | null, ip: string | null, port: number) => void,
    unreachable:
      | ((host: string | null, ip: string | null, port: number, kind: Unreachable) => void)
      | null = null,
  ): UdpAssociation {
    const a = new UdpAssociation(this, this.opts, req, reply, unreachable);
    this.associations.add(a);
    a.onClose = () => this.associations.delete(a);
    return a;
  }

  /**
   * Records a flow its capture refused on the first packet, before any forwarding (TUN: a
   * block answered with a RST or ICMP, a drop): one Terminated flow-table record, counted
   * once as a refusal `blocked` (TCP) or as a dropped datagram with `dropReason` (UDP).
   */
  recordRefused(
    req: ConnectRequest,
    proto: 'tcp' | 'udp',
    d: Decision,
    dropReason = 'policy',
  ): FlowRecord {
    const rec = this.newRecord(req, proto, req.host, req.ip, d);
    rec.status = 'Terminated';
    if (proto === 'udp') {
      rec.drops = 1;
      this.flows.counters.drop(dropReason);
    } else {
      this.flows.counters.refusal('blocked');
    }
    this.flows.record(rec);
    return rec;
  }

  /** @internal used by UdpAssociation */
  _newRecord(req: ConnectRequest, host: string | null, ip: string | null, d: Decision): FlowRecord {
    return this.newRecord(req, 'udp', host, ip, d);
  }

  /** @internal used by UdpAssociation */
  _forwardIp(rec: FlowRecord): string | null {
    return this.forwardIp(rec);
  }

  /** @internal `retry`: a second OPEN (openTunneled), under a connection id of its own. */
  _meta(rec: FlowRecord, channel: ChannelName, d: Decision, retry = false): OpenMeta {
    if (retry) renewConnectionId(rec);
    return this.meta(rec, channel, d, 'udp');
  }

  /** @internal used by UdpAssociation: the wait for OPEN_OK, bounded as for TCP. */
  _openTunneled(
    channel: ChannelName,
    meta: (retry: boolean) => OpenMeta,
    onOpen?: (s: TunnelStream) => void,
    gone?: () => boolean,
  ): Promise<TunnelOpen> {
    return this.openTunneled(channel, meta, onOpen, gone);
  }

  /** Closes every UDP association (flows already relayed by TCP end with their sockets). */
  close(): void {
    for (const a of [...this.associations]) a.close();
  }
}
