/**
 * Egress: what the edge does with each tunneled stream (one OPEN). In order:
 *   1. web content filtering on the name the client saw (filter.ts) -> RST BLOCKED; on a
 *      filtered channel, a TCP flow's first bytes are read before they go on, and the name
 *      they give (TLS SNI, HTTP Host: sniff.ts) is filtered too;
 *   2. private channel: the destination must be in an application segment of the tenant
 *      (connector.ts), else RST BLOCKED; the connector resolves it;
 *      internet / m365 channels: the hosts map first, then the system resolver;
 *   3. TCP: connect (timeout) and pipe both ways with backpressure; UDP: one UDP socket per
 *      stream relaying datagrams, closed after an idle timeout.
 * The destination sees the edge as its peer. Each flow produces one traffic log record:
 * when it ends, or at once when it is blocked or fails to connect.
 *
 * Contract: `handle()` never throws; every stream it is given ends in exactly one log
 * record; `close()` resets every active flow (SESSION_CLOSED) and waits for their records.
 */
import { randomUUID } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { Socket, type SocketConstructorOpts } from 'node:net';
import type { ChannelName } from '../policy/model.js';
import { stripSingleLabel } from '../policy/private-dns.js';
import type { InboundTunnelStream, MetaUpdate, OpenMeta, ResetCodeValue } from '../tunnel/types.js';
import { ResetCode } from '../tunnel/types.js';
import { BigReader } from '../util/big-read.js';
import { type HostsConfig, HostsMap, type Target } from '../util/hosts-map.js';
import { addressPort, ipFamily } from '../util/ip.js';
import { normalizeName } from '../util/names.js';
import { resetSocket } from '../util/reset.js';
import type { Connector, PrivateApps } from './connector.js';
import type { WebFilter } from './filter.js';
import { type Sniffed, Sniffer } from './sniff.js';
import type { NetworkAccessTraffic, TrafficLog } from './traffic-log.js';
import { trafficTypeOf } from './traffic-log.js';

export interface EgressOptions {
  /** Internet / M365 names and address remaps, consulted before the system resolver. */
  hostsMap?: HostsConfig;
  /** Use the system resolver for names the hosts map lacks. Default true. */
  systemResolver?: boolean;
  /** Connect to IP destinations the hosts map does not remap. Default true. */
  directIp?: boolean;
  /** TCP connect timeout (ms). Default 10,000. */
  connectTimeoutMs?: number;
  /** A TCP flow with no bytes either way for this long is reset (TIMEOUT). 0 = never. Default 0. */
  tcpIdleTimeoutMs?: number;
  /** A UDP flow with no datagram either way for this long is closed. Default 60,000. */
  udpIdleTimeoutMs?: number;
  /**
   * Largest UDP datagram from the client relayed to the destination (bytes); longer ones are
   * dropped, counted in `datagramsDropped.tooLarge` and reported to `onDatagramTooLarge`.
   * Default 65,507.
   */
  maxDatagramSize?: number;
  /** How long an ended flow's record waits for a late META (ms). Default PROCESS_WAIT_MS. */
  processWaitMs?: number;
}

/** Who opened the flow (from the session's token) and over which session. */
export interface FlowContext {
  /**
   * The tunnel's channel, which the token was checked for: it decides filtering, Private
   * Access and the log's trafficType. An OPEN naming another channel is refused.
   */
  channel: ChannelName;
  tenantId: string;
  userId: string;
  upn: string;
  deviceId: string;
  sessionId: string;
  agentVersion: string;
}

export interface EgressDeps {
  log: TrafficLog;
  filter: WebFilter;
  connector: Connector;
  /** The current tenant's private apps (PATCHes replace it). */
  privateApps: () => PrivateApps;
  /** Names of the current tenant's policies and rules by id (the log's policyName, ...). */
  nameOf?: (id: string | null) => string | null;
  /** Each datagram from the client longer than `maxDatagramSize` (it was dropped). */
  onDatagramTooLarge?: (d: TooLargeDatagram) => void;
}

/** A datagram the edge dropped for its size, and the flow it was for. */
export interface TooLargeDatagram {
  sessionId: string;
  streamId: number;
  connectionId: string;
  /** `host:port` (or `ip:port`) as the client's OPEN named it. */
  destination: string;
  /** Its length (bytes). */
  size: number;
  /** `maxDatagramSize`. */
  limit: number;
}

interface FlowState {
  rec: NetworkAccessTraffic;
  stream: InboundTunnelStream;
  /** The tunnel's channel (decides filtering). */
  channel: ChannelName;
  done: boolean;
  abort: (code: number, reason: string) => void;
  finished: Promise<void>;
  /** Bytes handed to the destination (the log's sentBytes); 0 unless it connected. */
  sent: number;
  /** UDP: datagrams that arrived before the UDP socket was connected (bounded). */
  early: Buffer[];
  onEarly: ((d: Buffer) => void) | null;
}

/** How long a UDP stream the edge ended waits for the client's FIN before it is reset. */
const UDP_LINGER_MS = 5000;

/**
 * How long the record of a flow whose opener was still looking up its process (OPEN said
 * `processPending`) waits for the late META naming it; then it is logged without one. The
 * client's lookups give up after 1 s.
 */
export const PROCESS_WAIT_MS = 1500;

/** Records held for a late META at once; past this they are logged at once. */
const MAX_AWAITING = 4096;

/**
 * How long a flow's first bytes wait for the rest of a ClientHello or request head before
 * they go on without a name.
 */
export const SNIFF_WAIT_MS = 1000;

/** Datagrams held per UDP flow while the edge resolves and connects. */
const MAX_EARLY_DATAGRAMS = 64;
/** UDP: bytes of those held per flow (a QUIC first flight is a few KiB). */
const MAX_EARLY_BYTES = 64 * 1024;

/**
 * The datagrams of a UDP flow that arrive before its socket is connected: at most
 * MAX_EARLY_DATAGRAMS and MAX_EARLY_BYTES (DGRAM frames are not flow-controlled), none
 * larger than the relay would send. Returns whether it was held.
 */
export class EarlyDatagrams {
  readonly held: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly maxDatagram: number) {}
  push(d: Buffer): boolean {
    if (d.length > this.maxDatagram) return false;
    if (this.held.length >= MAX_EARLY_DATAGRAMS || this.bytes + d.length > MAX_EARLY_BYTES) {
      return false;
    }
    this.bytes += d.length;
    this.held.push(d);
    return true;
  }
}

const noop = (): void => {};

/** Ends a flow with a reset and its log record: what it was, and why. */
type Refuse = (code: number, action: 'block' | 'allow', reason: string) => void;

export class Egress {
  private readonly hosts: HostsMap;
  private readonly systemResolver: boolean;
  private readonly directIp: boolean;
  private readonly connectTimeout: number;
  private readonly tcpIdle: number;
  private readonly udpIdle: number;
  private readonly maxDatagram: number;
  private readonly deps: EgressDeps;
  private readonly active = new Set<FlowState>();
  /** Ended flows waiting for their process (late META), by `sessionId/streamId`. */
  private readonly awaiting = new Map<
    string,
    { rec: NetworkAccessTraffic; timer: NodeJS.Timeout }
  >();
  /** Flows ended since start, by outcome (GET /health shows them). */
  readonly stats = { flows: 0, blocked: 0, failed: 0, sentBytes: 0, receivedBytes: 0 };
  /**
   * UDP datagrams dropped since start (GET /health shows them): from the client, longer than
   * `maxDatagramSize` (`tooLarge`) or past what a flow holds before its socket is ready, 64
   * datagrams and 64 KiB (`early`); from the destination, not taken by the tunnel session
   * (its send queue full, or the session gone: `toClient`).
   */
  readonly datagramsDropped = { tooLarge: 0, early: 0, toClient: 0 };
  private readonly processWait: number;

  constructor(opts: EgressOptions, deps: EgressDeps) {
    this.hosts = new HostsMap(opts.hostsMap ?? {}, 'hostsMap');
    this.systemResolver = opts.systemResolver ?? true;
    this.directIp = opts.directIp ?? true;
    this.connectTimeout = opts.connectTimeoutMs ?? 10_000;
    this.tcpIdle = opts.tcpIdleTimeoutMs ?? 0;
    this.udpIdle = opts.udpIdleTimeoutMs ?? 60_000;
    this.maxDatagram = opts.maxDatagramSize ?? 65_507;
    this.processWait = opts.processWaitMs ?? PROCESS_WAIT_MS;
    this.deps = deps;
  }

  /** Flows currently open. */
  get activeFlows(): number {
    return this.active.size;
  }

  handle(stream: InboundTunnelStream, ctx: FlowContext): void {
    const meta = stream.meta;
    const rec = baseRecord(meta, ctx);
    // Internet and Microsoft 365: the client's policy and rule, named from the tenant.
    // (Private Access: the edge's own segment match names them below.)
    const nameOf = this.deps.nameOf;
    if (nameOf) {
      rec.policyName = nameOf(rec.policyId);
      rec.policyRuleName = nameOf(rec.policyRuleId);
    }
    let resolveFinished = noop;
    const flow: FlowState = {
      rec,
      stream,
      channel: ctx.channel,
      done: false,
      abort: (code, reason) => stream.reset(code as ResetCodeValue, reason),
      finished: new Promise<void>((r) => {
        resolveFinished = r;
      }),
      sent: 0,
      early: [],
      onEarly: null,
    };
    const finish = (): void => {
      if (flow.done) return;
      flow.done = true;
      // A proxy flow's process may have come after OPEN, in a META frame (merged into meta).
      rec.initiatingProcessName = processName(stream.meta.process);
      // What the destination took, not what came over the tunnel (a refused or reset flow
      // leaves bytes in the edge that never went out).
      rec.sentBytes = flow.sent;
      rec.receivedBytes = stream.bytesSent;
      rec.endDateTime = new Date().toISOString();
      this.active.delete(flow);
      const st = this.stats;
      st.flows++;
      if (rec.action === 'block') st.blocked++;
      else if (rec.operationStatus === 'failure') st.failed++;
      st.sentBytes += rec.sentBytes;
      st.receivedBytes += rec.receivedBytes;
      if (
        stream.meta.processPending === true &&
        rec.initiatingProcessName == null &&
        this.awaiting.size < MAX_AWAITING
      ) {
        this.holdRecord(`${ctx.sessionId}/${stream.streamId}`, rec);
      } else {
        this.deps.log.append(rec);
      }
      resolveFinished();
    };
    const refuse: Refuse = (code, action, reason) => {
      rec.action = action;
      rec.operationStatus = 'failure';
      rec.failureReason = reason;
      if (rec.privateAccessDetails) rec.privateAccessDetails.accessDeniedReason = reason;
      stream.reset(code as ResetCodeValue, reason.slice(0, 100));
      finish();
    };
    stream.on('error', noop);
    this.active.add(flow);
    // Whatever goes wrong while the flow starts ends it with a record, never the session.
    try {
      this.start(flow, ctx.channel, refuse, finish);
    } catch (err) {
      if (!flow.done) {
        refuse(
          ResetCode.INTERNAL,
          'allow',
          `internal error: ${(err as Error)?.message ?? String(err)}`,
        );
      }
    }
  }

  /** Checks, filters and routes a registered flow to its destination (or refuses it). */
  private start(flow: FlowState, channel: ChannelName, refuse: Refuse, finish: () => void): void {
    const { stream, rec } = flow;
    const meta = stream.meta;
    if (meta.proto === 'udp') {
      // The client may send datagrams before OPEN_OK: hold a few until the relay is ready.
      const early = new EarlyDatagrams(this.maxDatagram);
      flow.early = early.held;
      flow.onEarly = (d: Buffer) => {
        if (d.length > this.maxDatagram) this.tooLarge(flow, d.length);
        else if (!early.push(d)) this.datagramsDropped.early++;
      };
      stream.on('datagram', flow.onEarly);
    }

    if (channel === 'private') {
      rec.privateAccessDetails = {
        connectorId: this.deps.connector.id,
        connectorName: this.deps.connector.name,
        appSegmentId: null,
        resolvedDestination: null,
        accessDeniedReason: null,
      };
    }
    const bad = checkMeta(meta, channel);
    if (bad) {
      refuse(ResetCode.PROTOCOL, 'block', bad);
      return;
    }
    // An IP literal given as the host is an address destination.
    let host = meta.host ? normalizeName(meta.host) : null;
    let ip = meta.ip;
    if (host && ipFamily(host) !== 0) {
      ip ??= host;
      host = null;
    }
    if (!host && ip) rec.destinationIp = ip;
    // 1. Web content filtering, on the name the client saw.
    const verdict = this.deps.filter.check(channel, host);
    if (verdict) {
      rec.policyId = verdict.policyId;
      rec.policyName = verdict.policyName;
      rec.policyRuleId = verdict.ruleId;
      rec.policyRuleName = verdict.ruleName;
      refuse(ResetCode.BLOCKED, 'block', verdict.reason);
      return;
    }
    // 2. Where to: private apps through the connector, or the hosts map / resolver.
    if (channel === 'private' && rec.privateAccessDetails) {
      const c = this.deps.connector;
      const seg = this.deps.privateApps().match(meta.proto, host, ip, meta.port);
      if (!seg) {
        // No segment names the flow: neither the ids nor the names of the client's rule.
        rec.policyId = null;
        rec.policyRuleId = null;
        rec.policyName = null;
        rec.policyRuleName = null;
        refuse(
          ResetCode.BLOCKED,
          'block',
          `private access: ${host ?? ip}:${meta.port}/${meta.proto} is in no application segment`,
        );
        return;
      }
      rec.policyId = seg.policyId;
      rec.policyName = seg.policyName;
      rec.policyRuleId = seg.ruleId;
      rec.policyRuleName = seg.ruleName;
      rec.privateAccessDetails.appSegmentId = seg.ruleId;
      // Private DNS: a single-label name comes with the client's suffix, which is stripped.
      const pd = this.deps.privateApps().privateDns;
      const label = host && pd ? stripSingleLabel(host, pd.suffix) : null;
      const t =
        label !== null && pd
          ? c.resolveSingleLabel(label, pd.searchList, meta.port)
          : c.resolve(host, ip, meta.port);
      if (typeof t === 'string') {
        refuse(ResetCode.CONNECT_FAILED, 'allow', t);
        return;
      }
      rec.privateAccessDetails.resolvedDestination = addressPort(t.ip, t.port);
      this.connectTarget(flow, t, refuse, finish);
      return;
    }
    this.resolvePublic(host, ip, meta.port).then(
      (t) => {
        if (flow.done) return;
        if (typeof t === 'string') refuse(ResetCode.CONNECT_FAILED, 'allow', t);
        else this.connectTarget(flow, t, refuse, finish);
      },
      (err: unknown) => refuse(ResetCode.INTERNAL, 'allow', String(err)),
    );
  }

  private async resolvePublic(
    host: string | null,
    ip: string | null,
    port: number,
  ): Promise<Target | string> {
    if (host) {
      const t = this.hosts.lookup(host, port);
      if (t) return t;
      if (ipFamily(host) !== 0) return this.directIp ? { ip: host, port } : `no route to ${host}`;
      if (!this.systemResolver) return `cannot resolve ${host} (not in the hosts map)`;
      try {
        const a = await lookup(host, { family: 0 });
        return { ip: a.address, port };
      } catch (err) {
        return `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
      }
    }
    if (ip) {
      const t = this.hosts.lookup(ip, port);
      if (t) return t;
      return this.directIp ? { ip, port } : `no route to ${ip} (not in the hosts map)`;
    }
    return 'no destination';
  }

  private connectTarget(flow: FlowState, t: Target, refuse: Refuse, finish: () => void): void {
    // A name's destinationIp is what it resolved to. An address the client gave stays (set
    // in start()): where the hosts map or connector sends it is not what the client asked
    // for (a private flow logs it as resolvedDestination).
    flow.rec.destinationIp ??= t.ip;
    if (flow.stream.destroyed) {
      flow.rec.operationStatus = 'failure';
      flow.rec.failureReason = 'client reset before connect';
      finish();
      return;
    }
    if (flow.stream.meta.proto === 'udp') this.relayUdp(flow, t, finish);
    else this.relayTcp(flow, t, refuse, finish);
  }

  private relayTcp(flow: FlowState, t: Target, refuse: Refuse, finish: () => void): void {
    const { stream, rec } = flow;
    let connected = false;
    let streamClosed = false;
    let sockClosed = false;
    // The tunnel stream's write callback comes once the WebSocket wrote the bytes.
    const reader = new BigReader(undefined, { reuse: true });
    const sock = new DestSocket(reader.onread);
    sock.connect({ host: t.ip, port: t.port, noDelay: true });
    const timer = setTimeout(() => {
      sock.destroy();
      if (!flow.done)
        refuse(ResetCode.TIMEOUT, 'allow', `connect to ${addressPort(t.ip, t.port)} timed out`);
    }, this.connectTimeout);
    const maybeDone = (): void => {
      if (streamClosed && sockClosed) finish();
    };
    flow.abort = (code, reason) => {
      if (!connected) clearTimeout(timer);
      // Both directions already ended (a flow that finished in the grace period, whose
      // close events are on their way): it succeeded, and is logged so.
      if (connected && stream.readableEnded && stream.writableFinished) {
        sock.destroy();
        return;
      }
      rec.operationStatus = 'failure';
      rec.failureReason ??= reason;
      stream.reset(code as ResetCodeValue, reason);
      sock.destroy();
    };
    sock.once('connect', () => {
      clearTimeout(timer);
      if (flow.done || stream.destroyed) {
        sock.destroy();
        return;
      }
      connected = true;
      if (this.tcpIdle > 0) {
        sock.setTimeout(this.tcpIdle, () => {
          rec.operationStatus = 'failure';
          rec.failureReason = 'idle timeout';
          stream.reset(ResetCode.TIMEOUT, 'idle timeout');
          sock.destroy();
        });
      }
      stream.accept();
      const relay = (): void => {
        if (stream.spliceTo) stream.spliceTo(sock);
        else stream.pipe(sock);
      };
      if (this.deps.filter.filters(flow.channel)) this.sniff(flow, sock, refuse, relay);
      else relay();
      reader.pipeTo(sock, stream);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = `${err.code ?? 'error'} from ${addressPort(t.ip, t.port)}`;
      if (!connected) {
        if (!flow.done) refuse(ResetCode.CONNECT_FAILED, 'allow', `connect failed: ${why}`);
        return;
      }
      rec.operationStatus = 'failure';
      rec.failureReason ??= `destination reset: ${why}`;
      stream.reset(ResetCode.CANCEL, why);
    });
    sock.once('close', () => {
      sockClosed = true;
      if (connected) {
        flow.sent = sock.sentBytes;
        maybeDone();
      }
    });
    stream.once('reset', (code: number, reason: string) => {
      if (code !== ResetCode.CANCEL) {
        rec.operationStatus = 'failure';
        rec.failureReason ??= `stream reset (${code}${reason ? `: ${reason}` : ''})`;
      }
      // A reset flow (the client's abort, a timeout, the session's end) aborts the
      // destination with an RST, not a FIN it could take for the end of complete data.
      resetSocket(sock);
    });
    stream.once('close', () => {
      streamClosed = true;
      if (!connected) {
        clearTimeout(timer);
        sock.destroy();
        if (!flow.done) {
          rec.operationStatus = 'failure';
          rec.failureReason ??= 'client went away before connect';
          finish();
        }
        return;
      }
      maybeDone();
    });
  }

  /**
   * Holds a filtered flow's first bytes from the client back from the destination until they
   * give a name (TLS SNI, HTTP Host: sniff.ts), as GSA's edge filters without TLS inspection,
   * or show they give none, or SNIFF_WAIT_MS passed, or SNIFF_LIMIT bytes came. A name the
   * OPEN did not give is logged as destinationFQDN and filtered: blocked, the flow is reset
   * (BLOCKED) and the destination got no byte. Otherwise the bytes go on and `relay()`
   * carries the rest. The destination's bytes flow meanwhile (a server that speaks first is
   * not held up).
   */
  private sniff(flow: FlowState, sock: Socket, refuse: Refuse, relay: () => void): void {
    const { stream, rec } = flow;
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let decided = false;
    const decide = (s: Sniffed | null): void => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.pause();
      if (flow.done || stream.destroyed || sock.destroyed) return;
      const name = s?.name ?? null;
      if (name !== null && name !== rec.destinationFQDN) {
        const verdict = this.deps.filter.check(flow.channel, name);
        rec.destinationFQDN ??= name;
        if (verdict) {
          rec.policyId = verdict.policyId;
          rec.policyName = verdict.policyName;
          rec.policyRuleId = verdict.ruleId;
          rec.policyRuleName = verdict.ruleName;
          sock.destroy();
          const what = s?.proto === 'tls' ? 'TLS SNI' : 'HTTP Host';
          refuse(ResetCode.BLOCKED, 'block', `${verdict.reason} (${what})`);
          return;
        }
      }
      for (const c of chunks) sock.write(c);
      relay();
    };
    const sniffer = new Sniffer();
    const onData = (c: Buffer): void => {
      chunks.push(c);
      const s = sniffer.push(c);
      if (s !== 'more') decide(s);
      else if (timer === undefined) {
        timer = setTimeout(() => decide(null), SNIFF_WAIT_MS);
        timer.unref();
      }
    };
    // The client's FIN before a decision: what came is all there is.
    const onEnd = (): void => decide(null);
    stream.on('data', onData);
    stream.on('end', onEnd);
  }

  private relayUdp(flow: FlowState, t: Target, finish: () => void): void {
    const { stream, rec } = flow;
    const fam = ipFamily(t.ip);
    const sock: UdpSocket = createSocket(fam === 6 ? 'udp6' : 'udp4');
    let idle: NodeJS.Timeout | undefined;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(idle);
      try {
        sock.close();
      } catch {
        // already closed
      }
      if (!stream.destroyed) {
        // FIN, so the client sees a clean end; a client that never answers with its own
        // FIN is reset after UDP_LINGER_MS so the stream cannot linger half-open.
        stream.end();
        setTimeout(() => stream.destroy(), UDP_LINGER_MS).unref();
      }
      finish();
    };
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        rec.failureReason = null;
        close();
      }, this.udpIdle);
    };
    flow.abort = (code, reason) => {
      rec.operationStatus = 'failure';
      rec.failureReason ??= reason;
      stream.reset(code as ResetCodeValue, reason);
      close();
    };
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (closed) return;
      rec.operationStatus = 'failure';
      rec.failureReason ??= `${err.code ?? 'error'} from ${addressPort(t.ip, t.port)}`;
      stream.reset(ResetCode.CONNECT_FAILED, err.code ?? 'udp error');
      close();
    });
    sock.on('message', (msg) => {
      touch();
      if (!stream.sendDatagram(msg) && !closed) this.datagramsDropped.toClient++;
    });
    sock.connect(t.port, t.ip, (err?: Error) => {
      if (closed) return;
      if (err) {
        // No route (ENETUNREACH, EHOSTUNREACH...): not connected, so nothing can be sent.
        // The OPEN fails as a TCP connect's would, the errno in the reason.
        const code = (err as NodeJS.ErrnoException).code ?? 'udp error';
        rec.operationStatus = 'failure';
        rec.failureReason ??= `${code} from ${addressPort(t.ip, t.port)}`;
        stream.reset(ResetCode.CONNECT_FAILED, `connect failed: ${code}`);
        close();
        return;
      }
      if (stream.destroyed) {
        close();
        return;
      }
      stream.accept();
      touch();
      const relay = (d: Buffer): void => {
        if (closed) return;
        if (d.length > this.maxDatagram) {
          this.tooLarge(flow, d.length);
          return;
        }
        touch();
        flow.sent += d.length;
        sock.send(d);
      };
      if (flow.onEarly) stream.off('datagram', flow.onEarly);
      flow.onEarly = null;
      for (const d of flow.early.splice(0)) relay(d);
      stream.on('datagram', relay);
    });
    stream.on('reset', (code: number, reason: string) => {
      if (code !== ResetCode.CANCEL) {
        rec.operationStatus = 'failure';
        rec.failureReason ??= `stream reset (${code}${reason ? `: ${reason}` : ''})`;
      }
      close();
    });
    // Datagram streams carry no bytes in the Readable; resume so FIN ('end') is seen.
    stream.on('end', close);
    stream.on('close', close);
    stream.resume();
  }

  /** A datagram from the client longer than maxDatagramSize was dropped: count, report. */
  private tooLarge(flow: FlowState, size: number): void {
    this.datagramsDropped.tooLarge++;
    const report = this.deps.onDatagramTooLarge;
    if (!report) return;
    const meta = flow.stream.meta;
    report({
      sessionId: flow.rec.sessionId,
      streamId: flow.stream.streamId,
      connectionId: flow.rec.connectionId,
      destination: `${String(meta.host ?? meta.ip).slice(0, 253)}:${meta.port}`,
      size,
      limit: this.maxDatagram,
    });
  }

  /** Holds an ended flow's record until its late META comes, or processWaitMs passed. */
  private holdRecord(key: string, rec: NetworkAccessTraffic): void {
    const timer = setTimeout(() => this.release(key), this.processWait);
    timer.unref();
    this.awaiting.set(key, { rec, timer });
  }

  private release(key: string): void {
    const a = this.awaiting.get(key);
    if (!a) return;
    this.awaiting.delete(key);
    clearTimeout(a.timer);
    this.deps.log.append(a.rec);
  }

  /**
   * A META for a stream that already ended (the session's 'lateMeta'): names the process of
   * a flow whose record waits for it, and logs that record. Ignored for any other stream.
   */
  lateMeta(sessionId: string, streamId: number, update: MetaUpdate): void {
    const key = `${sessionId}/${streamId}`;
    const a = this.awaiting.get(key);
    if (!a) return;
    if ('process' in update) a.rec.initiatingProcessName = processName(update.process);
    this.release(key);
  }

  /**
   * Resets every active flow (SESSION_CLOSED) and waits until each wrote its record; records
   * still waiting for a late META are logged as they are.
   */
  async close(): Promise<void> {
    const flows = [...this.active];
    for (const f of flows) if (!f.done) f.abort(ResetCode.SESSION_CLOSED, 'edge shutting down');
    await Promise.all(flows.map((f) => f.finished));
    for (const key of [...this.awaiting.keys()]) this.release(key);
  }
}

/** The net internals DestSocket reads (stable since Node 12; not in @types/node). */
interface SocketInternals {
  _handle: { writeQueueSize?: number } | null;
  _bytesDispatched: number;
}

/**
 * A relay's destination socket, which knows how many bytes the kernel took: those handed to
 * libuv less what libuv still queued when the socket was destroyed (read then, while the
 * handle exists). A slow destination that is reset leaves megabytes in the socket's buffers
 * that never went out. Costs nothing per write. Approximate in one case: a write that failed
 * (EPIPE) has left libuv's queue, so its unsent part counts.
 */
class DestSocket extends Socket {
  private unsent = 0;

  constructor(onread: BigReader['onread']) {
    // Node reads `onread` from the constructor's options (net.connect passes them through).
    super({ allowHalfOpen: true, onread } as SocketConstructorOpts);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.unsent = (this as unknown as SocketInternals)._handle?.writeQueueSize ?? 0;
    super._destroy(err, cb);
  }

  /** Bytes the kernel took; final once 'close' came. */
  get sentBytes(): number {
    return Math.max(0, (this as unknown as SocketInternals)._bytesDispatched - this.unsent);
  }
}

/** What is wrong with an OPEN's metadata on the `channel` tunnel, or null. Never throws. */
function checkMeta(meta: OpenMeta, channel: ChannelName): string | null {
  if (meta.host != null && (typeof meta.host !== 'string' || meta.host.length > 253))
    return 'bad host';
  if (meta.ip != null && (typeof meta.ip !== 'string' || ipFamily(meta.ip) === 0))
    return `bad ip ${JSON.stringify(meta.ip)}`;
  if (meta.proto !== 'tcp' && meta.proto !== 'udp')
    return `bad protocol ${JSON.stringify(meta.proto)}`;
  if (!Number.isInteger(meta.port) || meta.port < 1 || meta.port > 65535)
    return `bad port ${JSON.stringify(meta.port)}`;
  if (!meta.host && !meta.ip) return 'no destination host or ip';
  // The token opened this tunnel for one channel: a flow of another is not for it.
  if (meta.channel !== channel) {
    return `OPEN for channel ${JSON.stringify(meta.channel)} on the ${channel} tunnel`;
  }
  return null;
}

function baseRecord(meta: OpenMeta, ctx: FlowContext): NetworkAccessTraffic {
  const now = new Date().toISOString();
  const channel = ctx.channel;
  return {
    transactionId: randomUUID(),
    connectionId: typeof meta.connectionId === 'string' ? meta.connectionId.slice(0, 128) : '',
    sessionId: ctx.sessionId,
    createdDateTime: now,
    endDateTime: now,
    tenantId: ctx.tenantId,
    userId: ctx.userId,
    userPrincipalName: ctx.upn,
    deviceId: ctx.deviceId,
    trafficType: trafficTypeOf(channel),
    sourceIp: typeof meta.srcIp === 'string' ? meta.srcIp.slice(0, 64) : '',
    sourcePort: Number.isInteger(meta.srcPort) ? meta.srcPort : 0,
    destinationIp: null,
    destinationPort: Number.isInteger(meta.port) ? meta.port : 0,
    destinationFQDN:
      typeof meta.host === 'string' && meta.host !== '' && ipFamily(meta.host) === 0
        ? normalizeName(meta.host).slice(0, 253)
        : null,
    destinationUrl: null,
    transportProtocol: meta.proto === 'udp' ? 'udp' : 'tcp',
    sentBytes: 0,
    receivedBytes: 0,
    action: 'allow',
    policyId: typeof meta.policyId === 'string' ? meta.policyId.slice(0, 128) : null,
    policyName: null,
    policyRuleId: typeof meta.ruleId === 'string' ? meta.ruleId.slice(0, 128) : null,
    policyRuleName: null,
    agentVersion: ctx.agentVersion,
    initiatingProcessName: processName(meta.process),
    operationStatus: 'success',
    failureReason: null,
    privateAccessDetails: null,
  };
}

function processName(p: unknown): string | null {
  return typeof p === 'string' ? p.slice(0, 260) : null;
}
