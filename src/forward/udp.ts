/**
 * UDP associations: the datagram side of the forwarder (SOCKS5 UDP ASSOCIATE; TUN UDP
 * later). One association per client; inside it, one flow per destination (host or
 * address, port), classified once when its first datagram arrives, then:
 * - tunnel: a 'udp' TunnelStream on the decision's channel (DGRAM frames, sendDatagram /
 *   'datagram'); datagrams wait (bounded queue) until the edge accepted the flow, within
 *   `openTimeoutMs`, as for TCP: an edge refusal is recorded like TCP's (RST BLOCKED: a
 *   Block), a session lost before OPEN_OK applies the rule's fallback (hardening), except
 *   one the edge ended in the normal course (token expiry, GOAWAY) whose replacement comes
 *   within the tunnel's wait (`whenBack`): the flow opens on that, its datagrams queued; the
 *   edge's FIN (its idle timeout) ends the flow, and the next datagram opens a new one;
 * - bypass: a UDP socket of its own, connected to the destination (so replies come back to
 *   this flow only, and only from the destination);
 * - drop / block / refused: datagrams are discarded and counted by reason (`quic` for UDP
 *   on the platform's QUIC ports, `policy`, `blocked`, `hardening`, `unreachable` (also a
 *   bypassed destination port 0), `network`, `refused`, `timeout`, `failed`, `limit`), the
 *   flow kept for `udpIdleMs` (its own datagrams do not extend that) so that it is neither
 *   classified nor asked of the edge again meanwhile, and is after it.
 * A destination that refuses (its port unreachable: ECONNREFUSED on a bypassed flow's
 * connected socket, or the edge's RST CONNECT_FAILED `ECONNREFUSED` on a tunneled one) is
 * counted as a dropped datagram (`refused`) and told to `unreachable`, if the capture
 * gave one (TUN: ICMP port unreachable to the application; SOCKS5 has no way to say it).
 * So is one that cannot be reached (`unreachable` told `net` or `host`: ENETUNREACH /
 * EHOSTUNREACH of the bypassed socket, a name or address the client cannot dial, the
 * edge's CONNECT_FAILED for a name it cannot resolve or a host it cannot reach), and again
 * for each datagram the flow discards after such an OPEN or dial failed.
 * Destination flows close after `udpIdleMs` without traffic; closing the association
 * closes them all, also those still being set up. Never throws on bad input.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Decision } from '../classify/types.js';
import { PROTO_UDP } from '../classify/types.js';
import type { ChannelName } from '../policy/model.js';
import type { TunnelStream } from '../tunnel/types.js';
import { ResetCode } from '../tunnel/types.js';
import { ipFamily } from '../util/ip.js';
import type { ByteSource, CaptureKind, FlowRecord } from './flow-table.js';
import type { ConnectRequest, Forwarder, ForwarderOptions } from './forwarder.js';
import {
  channelOffReason,
  type Unreachable,
  unreachableOfError,
  unreachableOfReset,
} from './refusal.js';
import { useLocal } from './resolver.js';

const noop = (): void => {};

type State = 'pending' | 'tunnel' | 'bypass' | 'discard';

class DestFlow implements ByteSource {
  state: State = 'pending';
  queue: Buffer[] = [];
  rec: FlowRecord | null = null;
  stream: TunnelStream | null = null;
  sock: UdpSocket | null = null;
  /** Drop reason while discarding. */
  dropReason = 'policy';
  /** While discarding because the destination cannot be reached: told for each datagram. */
  unreach: Unreachable | null = null;
  /** Datagrams dropped before the flow had its record (added to rec.drops once it has). */
  earlyDrops = 0;
  sent = 0;
  received = 0;
  /** The port bypassed datagrams go to (after the dial map; the socket is connected to it). */
  dialPort: number;
  last = Date.now();
  constructor(
    readonly host: string | null,
    readonly ip: string | null,
    readonly port: number,
    /** ConnectRequest.appIp: the address the application sent to, shown, not forwarded. */
    readonly appIp: string | null,
  ) {
    this.dialPort = port;
  }
}

export class UdpAssociation {
  onClose: () => void = () => {};
  closed = false;
  private readonly flows = new Map<string, DestFlow>();
  private readonly sweep: NodeJS.Timeout;
  private readonly idleMs: number;
  private readonly maxFlows: number;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly maxFlowsTotal: number;
  private readonly maxQueueBytesTotal: number;
  /** Bytes of the datagrams waiting in every pending flow's queue. */
  private queuedBytes = 0;

  constructor(
    private readonly fwd: Forwarder,
    private readonly opts: ForwarderOptions,
    private readonly req: {
      srcIp: string;
      srcPort: number;
      capture: CaptureKind;
      process?: string | null;
    },
    private readonly reply: (
      payload: Buffer,
      host: string | null,
      ip: string | null,
      port: number,
    ) => void,
    /**
     * The destination (as the client addressed it) refused a datagram (`port`) or cannot be
     * reached (`net`, `host`): the ICMP destination unreachable a direct network would send.
     */
    private readonly unreachable:
      | ((host: string | null, ip: string | null, port: number, kind: Unreachable) => void)
      | null = null,
  ) {
    this.idleMs = opts.udpIdleMs ?? 60_000;
    this.maxFlows = opts.udpMaxFlows ?? 256;
    this.maxQueue = opts.udpQueue ?? 64;
    this.maxQueueBytes = opts.udpQueueBytes ?? 1024 * 1024;
    this.maxFlowsTotal = opts.udpMaxFlowsTotal ?? 16_384;
    this.maxQueueBytesTotal = opts.udpQueueBytesTotal ?? 32 * 1024 * 1024;
    this.sweep = setInterval(() => this.expire(), Math.max(50, this.idleMs >>> 1));
    this.sweep.unref();
  }

  /** Number of destination flows currently held. */
  get size(): number {
    return this.flows.size;
  }

  /** Source port the client sends from, once known (SOCKS learns it from the first datagram). */
  setSource(srcIp: string, srcPort: number): void {
    this.req.srcIp = srcIp;
    this.req.srcPort = srcPort;
  }

  /** One datagram from the client to (host | ip, port). */
  send(
    host: string | null,
    ip: string | null,
    port: number,
    payload: Buffer,
    appIp: string | null = null,
  ): void {
    if (this.closed) return;
    const key = `${host ?? ip}|${port}`;
    let f = this.flows.get(key);
    if (f === undefined) {
      // Bounded per association and in all of them (one client may open thousands).
      if (this.flows.size >= this.maxFlows || this.fwd._udpHeld.flows >= this.maxFlowsTotal) {
        this.fwd.flows.counters.drop('limit');
        return;
      }
      f = new DestFlow(host, ip, port, appIp);
      this.flows.set(key, f);
      this.fwd._udpHeld.flows++;
      const flow = f;
      // A bug of ours while setting the flow up loses its datagrams (counted), never the process.
      this.setup(flow).catch(() => {
        this.fwd.flows.counters.drop('internal', this.takeQueue(flow).length);
        this.forget(key, flow);
      });
    }
    // A discarded flow (dropped, blocked, refused, hardening) is not kept alive by the
    // datagrams it drops: it expires udpIdleMs after it was decided, and the next datagram
    // is classified and set up again (the channel may be back, the tile turned on).
    if (f.state !== 'discard') f.last = Date.now();
    switch (f.state) {
      case 'pending':
        // Bounded per destination, and in bytes per association (256 destinations of 64
        // datagrams of 64 KiB would be 1 GiB) and in all associations.
        if (
          f.queue.length < this.maxQueue &&
          this.queuedBytes + payload.length <= this.maxQueueBytes &&
          this.fwd._udpHeld.queuedBytes + payload.length <= this.maxQueueBytesTotal
        ) {
          f.queue.push(payload);
          this.queuedBytes += payload.length;
          this.fwd._udpHeld.queuedBytes += payload.length;
        } else this.drop(f, 'queue');
        return;
      case 'tunnel':
        if (f.stream!.sendDatagram(payload)) f.sent += payload.length;
        else this.drop(f, 'tunnel-busy');
        return;
      case 'bypass':
        this.sendDirect(f, payload);
        return;
      default:
        this.drop(f, f.dropReason);
        if (f.unreach !== null) this.tell(f, f.unreach);
    }
  }

  /** A pending flow's queued datagrams, taken out of the queue (and its bytes' budget). */
  private takeQueue(f: DestFlow): Buffer[] {
    const q = f.queue;
    f.queue = [];
    for (const p of q) {
      this.queuedBytes -= p.length;
      this.fwd._udpHeld.queuedBytes -= p.length;
    }
    return q;
  }

  /** Removes a destination flow from the association (if it is still the one for `k`). */
  private forget(k: string, f: DestFlow): void {
    if (this.flows.get(k) !== f) return;
    this.flows.delete(k);
    this.fwd._udpHeld.flows--;
  }

  private drop(f: DestFlow, reason: string): void {
    this.fwd.flows.counters.drop(reason);
    if (f.rec) f.rec.drops++;
    else f.earlyDrops++;
  }

  private sendDirect(f: DestFlow, payload: Buffer): void {
    f.sent += payload.length;
    f.sock!.send(payload);
  }

  private async setup(f: DestFlow): Promise<void> {
    const { decision: d, ip, host } = await this.fwd.decide(PROTO_UDP, f.host, f.ip, f.port);
    const req: ConnectRequest = { ...this.req, host, ip, port: f.port, appIp: f.appIp };
    const rec = this.fwd._newRecord(req, host, ip, d);
    rec.drops += f.earlyDrops;
    f.rec = rec;
    if (this.gone(f)) return this.abandon(f);
    switch (d.action) {
      case 'drop':
        return this.discard(f, this.isQuic(f.port) ? 'quic' : 'policy');
      case 'block':
        return this.discard(f, 'blocked');
      case 'bypass':
        return this.bypass(f, 'decided');
      default:
        break;
    }
    const channel = d.channel as ChannelName;
    if (!this.opts.clientState().channels[channel]) {
      // The tile was switched off after the classifier was compiled (as Forwarder.connectTcp).
      rec.action = 'Bypass';
      rec.reason = channelOffReason(channel);
      return this.bypass(f, 'decided');
    }
    // As for TCP (bounded by openTimeoutMs; an edge refusal or a dead session decides; a
    // session being replaced is waited for, its datagrams queued meanwhile).
    let resetWhy: string | null = null;
    const { stream, failure } = await this.fwd._openTunneled(
      channel,
      (retry) => this.fwd._meta(rec, channel, d, retry),
      (s) => {
        f.stream = s;
        s.on('reset', (code: number, reason: string) => {
          if (code !== ResetCode.CANCEL && f.stream === s) {
            resetWhy = `reset ${code}${reason ? ` ${reason}` : ''}`;
            // The edge's connected socket got the destination's port, host or net
            // unreachable, or (OPEN failed) the edge cannot resolve or reach it. Before
            // OPEN_OK this is the OPEN's failure (failure.refused below): the flow then
            // discards, and answers each later datagram the same way.
            const kind = unreachableOfReset(code, reason);
            if (kind !== null) {
              if (f.state === 'pending') f.unreach = kind;
              this.destinationUnreachable(f, kind);
            }
          }
        });
      },
      () => this.gone(f),
    );
    if (stream === null) {
      if (failure === null) return this.abandon(f);
      if (failure.down) return this.harden(f, d);
      rec.reason = failure.reason;
      // Refused by the edge (RST BLOCKED): a Block, as for TCP. The flow stays, discarding,
      // until udpIdleMs, so later datagrams do not ask the edge again.
      if (failure.refused === 'blocked') rec.action = 'Block';
      return this.discard(f, failure.refused);
    }
    stream.on('datagram', (payload: Buffer) => this.replyFrom(f, payload));
    const ended = (): void => {
      this.forget(this.keyOf(f), f);
      f.state = 'discard';
      f.dropReason = 'closed';
    };
    // The edge ends a flow it found idle with FIN (RST some seconds later). A udp stream
    // carries no DATA, so its Readable only ever says 'end', and only once read: end our
    // side too and forget the flow, so that the next datagram opens a fresh one instead of
    // going into a stream the edge no longer relays.
    stream.once('end', () => {
      ended();
      stream.end();
    });
    stream.once('close', () => {
      ended();
      this.fwd.flows.close(rec.flowId, resetWhy ? 'Terminated' : undefined, resetWhy ?? undefined);
    });
    stream.resume();
    this.fwd.flows.open(rec, f);
    f.state = 'tunnel';
    const q = this.takeQueue(f);
    for (const p of q) {
      if (stream.sendDatagram(p)) f.sent += p.length;
      else this.drop(f, 'tunnel-busy');
    }
  }

  private keyOf(f: DestFlow): string {
    return `${f.host ?? f.ip}|${f.port}`;
  }

  /**
   * The flow was closed while its setup awaited (idle expiry, the association closing): it
   * is no longer the association's to set up.
   */
  private gone(f: DestFlow): boolean {
    return this.closed || f.state !== 'pending' || this.flows.get(this.keyOf(f)) !== f;
  }

  /**
   * Gives up a flow closed while being set up: closes what it opened, records it
   * (Terminated) and counts its queued datagrams as dropped.
   */
  private abandon(f: DestFlow): void {
    if (f.stream && !f.stream.destroyed) f.stream.destroy();
    this.discard(f, 'closed');
  }

  /**
   * A datagram back from the destination. Replies come "from" the destination the client
   * addressed: the name it sent (SOCKS5 ATYP 3), else the address (every flow has one of
   * the two; remaps and the address a name resolved to stay invisible).
   */
  private replyFrom(f: DestFlow, payload: Buffer): void {
    f.received += payload.length;
    f.last = Date.now();
    this.reply(payload, f.host, f.ip, f.port);
  }

  /**
   * The destination refused a datagram (port unreachable: counted as dropped, `refused`;
   * before OPEN_OK the queued ones are, by discard()) or cannot be reached (net, host:
   * counted as before, by the flow's end or discard): passed on to the capture, as the
   * destination the client addressed.
   */
  private destinationUnreachable(f: DestFlow, kind: Unreachable): void {
    if (kind === 'port' && f.state !== 'pending') this.drop(f, 'refused');
    this.tell(f, kind);
  }

  /** Tells the capture (if it asked) that `f`'s destination answered `kind`. */
  private tell(f: DestFlow, kind: Unreachable): void {
    const u = this.unreachable;
    if (u === null || this.closed) return;
    try {
      u(f.host, f.ip, f.port, kind);
    } catch {}
  }

  private isQuic(port: number): boolean {
    return this.opts.clientState().platform.quic.ports.includes(port);
  }

  /** Hardening: the channel's edge is unreachable; apply the rule's clientFallbackAction. */
  private harden(f: DestFlow, d: Decision): Promise<void> | undefined {
    const rec = f.rec!;
    rec.hardening = 'Y';
    if (d.fallback === 'bypass') {
      rec.action = 'Bypass';
      rec.reason = `${d.channel} channel down: fallback bypass`;
      return this.bypass(f, 'hardened');
    }
    rec.action = 'Block';
    rec.reason = `${d.channel} channel down: fallback block`;
    this.discard(f, 'hardening');
    return undefined;
  }

  /** Records the flow as refused/dropped and discards its datagrams from now on. */
  private discard(f: DestFlow, reason: string): void {
    const rec = f.rec!;
    f.state = 'discard';
    f.dropReason = reason;
    f.last = Date.now(); // udpIdleMs from now, whatever it is sent (see send())
    rec.status = 'Terminated';
    if (reason !== 'quic' && reason !== 'policy') rec.reason = `${reason}: ${rec.reason}`;
    this.fwd.flows.record(rec);
    const q = this.takeQueue(f);
    for (let i = 0; i < q.length; i++) this.drop(f, reason);
  }

  /**
   * A bypassed destination that cannot be dialed (`kind`: no route to its network, no
   * address or route for the host): discarded (`unreachable`, as before) and its datagrams
   * answered, the queued ones now (one answer: the rate limit would hold the rest back),
   * later ones each.
   */
  private unreachableFlow(f: DestFlow, kind: Unreachable): void {
    f.unreach = kind;
    this.discard(f, 'unreachable');
    this.tell(f, kind);
  }

  /**
   * Sends `f` direct. Its reason says why (the decision's, the channel switched off since,
   * or hardening's), and a failure keeps it, as a TCP flow's does (Forwarder.refuse):
   * `cannot resolve fs1; <why>`; hardening's first: `<channel> channel down: fallback
   * bypass; <failure>`.
   */
  private async bypass(f: DestFlow, why: 'decided' | 'hardened'): Promise<void> {
    const rec = f.rec!;
    const failed = (reason: string) => {
      rec.reason = why === 'hardened' ? `${rec.reason}; ${reason}` : `${reason}; ${rec.reason}`;
    };
    const resolver = this.fwd.resolver;
    let ip = this.fwd._forwardIp(rec);
    const mapped = resolver.dialTarget(rec.destinationFqdn, ip, f.port);
    if (mapped !== null) {
      rec.destinationIp ??= mapped.ip;
      ip = mapped.ip;
      f.dialPort = mapped.port;
    } else {
      if (ip === null && rec.destinationFqdn !== null) {
        ip = await resolver.resolve(rec.destinationFqdn);
        if (this.gone(f)) return this.abandon(f);
      }
      if (ip === null) {
        failed(`cannot resolve ${rec.destinationFqdn}`);
        return this.unreachableFlow(f, 'host');
      }
      rec.destinationIp = ip;
      if (!resolver.mayDial(ip)) {
        failed(`no route to ${ip}`);
        return this.unreachableFlow(f, 'host');
      }
    }
    // Port 0 cannot be sent to (dgram connect() throws ERR_SOCKET_BAD_PORT).
    if (f.dialPort === 0) {
      failed(`no destination port (${ip}:0)`);
      return this.discard(f, 'unreachable');
    }
    const sock = await this.connectedSocket(ip, f.dialPort);
    if (this.gone(f)) {
      if (!(sock instanceof Error)) sock.close();
      return this.abandon(f);
    }
    if (sock instanceof Error) {
      const code = (sock as NodeJS.ErrnoException).code;
      failed(`${code ?? sock.message} ${ip}:${f.dialPort}`);
      // connect() found no route (ENETUNREACH; EHOSTUNREACH): as the ICMP a router sends.
      const kind = unreachableOfError(sock as NodeJS.ErrnoException);
      if (kind === null) return this.discard(f, 'unreachable');
      return this.unreachableFlow(f, kind);
    }
    f.sock = sock;
    // Connected: only the destination's datagrams reach this socket, and its ICMP errors.
    sock.on('message', (msg) => this.replyFrom(f, msg));
    // ICMP errors (port, host, net unreachable) and a send that found no route.
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (f.sock !== sock) return;
      const kind = unreachableOfError(err);
      if (kind !== null) this.destinationUnreachable(f, kind);
    });
    this.fwd.flows.open(rec, f);
    f.state = 'bypass';
    const q = this.takeQueue(f);
    for (const p of q) this.sendDirect(f, p);
  }

  /**
   * A UDP socket of its own for a bypassed destination, bound (to bypassLocalAddress when it
   * suits the family) and connected to ip:port, so that the kernel passes it datagrams from
   * that address and port only; or the error that prevented it.
   */
  private connectedSocket(ip: string, port: number): Promise<UdpSocket | Error> {
    const sock = createSocket(ipFamily(ip) === 6 ? 'udp6' : 'udp4');
    const local = this.opts.bypassLocalAddress;
    return new Promise((resolve) => {
      const fail = (err: Error): void => {
        try {
          sock.close();
        } catch {}
        resolve(err);
      };
      sock.once('error', fail);
      sock.bind({ port: 0, ...(local && useLocal(local, ip) ? { address: local } : {}) }, () => {
        // connect() throws on bad arguments (in this callback: an uncaught exception).
        try {
          sock.connect(port, ip, (err?: Error) => {
            if (err) return fail(err);
            sock.removeListener('error', fail);
            // ICMP errors (port unreachable) surface here on a connected socket: not fatal.
            sock.on('error', noop);
            resolve(sock);
          });
        } catch (err) {
          fail(err as Error);
        }
      });
    });
  }

  private expire(): void {
    const now = Date.now();
    for (const [k, f] of this.flows) {
      if (now - f.last >= this.idleMs) {
        this.forget(k, f);
        this.closeFlow(f);
      }
    }
  }

  private closeFlow(f: DestFlow): void {
    const state = f.state;
    f.state = 'discard';
    f.dropReason = 'closed';
    // Its setup may take seconds more to see it gone (a name to resolve, the edge's OPEN_OK):
    // its queue's bytes are given back now, not held from other associations until then
    // (abandon() then finds the queue empty).
    if (state === 'pending') {
      const q = this.takeQueue(f);
      for (let i = 0; i < q.length; i++) this.drop(f, 'closed');
    }
    if (f.sock) {
      try {
        f.sock.close();
      } catch {}
    }
    if (f.stream && !f.stream.destroyed) f.stream.destroy();
    if (f.rec && (state === 'bypass' || state === 'tunnel' || state === 'pending')) {
      this.fwd.flows.close(f.rec.flowId);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweep);
    for (const f of this.flows.values()) this.closeFlow(f);
    this.fwd._udpHeld.flows -= this.flows.size;
    this.flows.clear();
    this.onClose();
  }
}
