/**
 * The client's flow table: the "Traffic" tab of the real client's advanced diagnostics
 * (begin/end time, status, protocol, destination FQDN/IP/port, source port, connection id,
 * process, bytes sent/received, channel, flow id, rule id, action, hardening), plus the
 * counters the admin API exports to Prometheus.
 *
 * Contract: active flows are kept until they close; closed flows are kept in a ring of the
 * last `keepClosed` (default 1,000), so memory is bounded by the number of live flows plus
 * that option. Byte counts of an active flow are read live from its `bytes` source (the
 * upstream socket or tunnel stream), so nothing is counted per chunk on the data path.
 */
import type { ChannelName } from '../policy/model.js';

export type FlowStatus = 'Active' | 'Closed' | 'Terminated' | 'Bypassed';
export type FlowAction = 'Tunnel' | 'Bypass' | 'Block' | 'Drop';
export type CaptureKind = 'socks' | 'http' | 'tun';

/** Live byte counters of a flow (an upstream socket, a tunnel stream, a UDP association). */
export interface ByteSource {
  readonly sent: number;
  readonly received: number;
}

export interface FlowRecord {
  /** Client-side flow id (decimal string, increasing). */
  flowId: string;
  /** Shared with the edge's traffic log (OpenMeta.connectionId). */
  connectionId: string;
  beginTime: number;
  endTime: number | null;
  status: FlowStatus;
  protocol: 'tcp' | 'udp';
  destinationFqdn: string | null;
  destinationIp: string | null;
  destinationPort: number;
  sourceIp: string;
  sourcePort: number;
  /**
   * The local process behind the flow (name), or null while unknown. Proxy flows get it
   * shortly after they start (client/process-owner.ts, Linux), with `processId`.
   */
  process: string | null;
  /** Its pid, once known. */
  processId?: number;
  bytesSent: number;
  bytesReceived: number;
  channel: ChannelName | null;
  ruleId: string | null;
  action: FlowAction;
  /** 'Y' when the channel was down and the rule's fallback (clientFallbackAction) applied. */
  hardening: 'Y' | 'N';
  capture: CaptureKind;
  /** Why it ended the way it did (reset code, refusal, error), or the decision's reason. */
  reason: string;
  /** UDP: datagrams dropped (QUIC policy, FRAG, ...). */
  drops: number;
}

export interface FlowTableOptions {
  /** Closed flows kept for display. Default 1,000. */
  keepClosed?: number;
}

const ACTIONS: readonly FlowAction[] = ['Tunnel', 'Bypass', 'Block', 'Drop'];
const CHANNEL_KEYS = ['m365', 'private', 'internet', 'none'] as const;
type ChannelKey = (typeof CHANNEL_KEYS)[number];

/** Counters for /metrics. Monotonic except `active`. */
export class FlowCounters {
  /** flows[action][channel|none] */
  readonly flows: Record<FlowAction, Record<ChannelKey, number>>;
  bytesSent: Record<ChannelKey, number>;
  bytesReceived: Record<ChannelKey, number>;
  /** Drops by reason (`quic`, `frag`, `udp-block`, `bad-header`, `policy`...). */
  readonly drops = new Map<string, number>();
  /** Refusals by kind (Refusal: blocked, network, unreachable, refused, timeout, failed). */
  readonly refusals = new Map<string, number>();
  hardened = 0;
  active = 0;

  constructor() {
    const zero = (): Record<ChannelKey, number> => ({ m365: 0, private: 0, internet: 0, none: 0 });
    this.flows = { Tunnel: zero(), Bypass: zero(), Block: zero(), Drop: zero() };
    this.bytesSent = zero();
    this.bytesReceived = zero();
  }

  drop(reason: string, n = 1): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + n);
  }

  refusal(kind: string): void {
    this.refusals.set(kind, (this.refusals.get(kind) ?? 0) + 1);
  }
}

export class FlowTable {
  readonly counters = new FlowCounters();
  private readonly active = new Map<string, { rec: FlowRecord; bytes: ByteSource | null }>();
  private readonly closed: FlowRecord[] = [];
  private closedHead = 0;
  private readonly keepClosed: number;
  private nextId = 1;
  private readonly listeners = new Set<(rec: FlowRecord, event: 'open' | 'close') => void>();

  constructor(opts: FlowTableOptions = {}) {
    this.keepClosed = Math.max(0, opts.keepClosed ?? 1000);
  }

  /** Allocates the next flow id. */
  newFlowId(): string {
    return String(this.nextId++);
  }

  /** Registers a flow (counted once, by action and channel). */
  open(rec: FlowRecord, bytes: ByteSource | null = null): void {
    this.active.set(rec.flowId, { rec, bytes });
    const c = this.counters;
    c.flows[rec.action][rec.channel ?? 'none']++;
    if (rec.hardening === 'Y') c.hardened++;
    c.active++;
    for (const l of this.listeners) l(rec, 'open');
  }

  /** Attaches (or replaces) the live byte source of an active flow. */
  attach(flowId: string, bytes: ByteSource): void {
    const e = this.active.get(flowId);
    if (e) e.bytes = bytes;
  }

  /**
   * Ends a flow. `status` defaults to Closed (Bypassed for bypassed flows); pass
   * 'Terminated' for resets and errors. Idempotent.
   */
  close(flowId: string, status?: FlowStatus, reason?: string): void {
    const e = this.active.get(flowId);
    if (!e) return;
    this.active.delete(flowId);
    const rec = e.rec;
    if (e.bytes) {
      rec.bytesSent = e.bytes.sent;
      rec.bytesReceived = e.bytes.received;
    }
    rec.endTime = Date.now();
    rec.status = status ?? (rec.action === 'Bypass' ? 'Bypassed' : 'Closed');
    if (reason) rec.reason = reason;
    const c = this.counters;
    const ch = rec.channel ?? 'none';
    c.bytesSent[ch] += rec.bytesSent;
    c.bytesReceived[ch] += rec.bytesReceived;
    c.active--;
    this.remember(rec);
    for (const l of this.listeners) l(rec, 'close');
  }

  /** Records a flow that never became active (blocked, dropped, refused). */
  record(rec: FlowRecord): void {
    this.open(rec);
    this.close(rec.flowId, rec.status === 'Active' ? 'Terminated' : rec.status);
  }

  private remember(rec: FlowRecord): void {
    if (this.keepClosed === 0) return;
    if (this.closed.length < this.keepClosed) {
      this.closed.push(rec);
    } else {
      this.closed[this.closedHead] = rec;
      this.closedHead = (this.closedHead + 1) % this.keepClosed;
    }
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** Snapshot: active flows (live byte counts) then closed ones, oldest first. */
  list(): FlowRecord[] {
    const out: FlowRecord[] = [];
    const n = this.closed.length;
    for (let i = 0; i < n; i++) out.push({ ...this.closed[(this.closedHead + i) % n]! });
    for (const { rec, bytes } of this.active.values()) {
      const r = { ...rec };
      if (bytes) {
        r.bytesSent = bytes.sent;
        r.bytesReceived = bytes.received;
      }
      out.push(r);
    }
    out.sort((a, b) => a.beginTime - b.beginTime || Number(a.flowId) - Number(b.flowId));
    return out;
  }

  get(flowId: string): FlowRecord | undefined {
    const e = this.active.get(flowId);
    if (e) return e.rec;
    return this.closed.find((r) => r.flowId === flowId);
  }

  /** Called for every flow opened and closed (for the live table of `gsa-emu up`). */
  onChange(fn: (rec: FlowRecord, event: 'open' | 'close') => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Prometheus text exposition of the counters (metric names prefixed `gsa_client_`). */
  metrics(): string {
    const c = this.counters;
    const lines: string[] = [];
    lines.push('# HELP gsa_client_flows_total Flows by action and channel.');
    lines.push('# TYPE gsa_client_flows_total counter');
    for (const a of ACTIONS) {
      for (const ch of CHANNEL_KEYS) {
        lines.push(
          `gsa_client_flows_total{action="${a.toLowerCase()}",channel="${ch}"} ${c.flows[a][ch]}`,
        );
      }
    }
    lines.push('# HELP gsa_client_flows_active Flows currently open.');
    lines.push('# TYPE gsa_client_flows_active gauge');
    lines.push(`gsa_client_flows_active ${this.active.size}`);
    lines.push(
      '# HELP gsa_client_flows_hardened_total Flows whose channel was down (fallback applied).',
    );
    lines.push('# TYPE gsa_client_flows_hardened_total counter');
    lines.push(`gsa_client_flows_hardened_total ${c.hardened}`);
    // Bytes include live counts of active flows so the counter moves during long transfers.
    const sent = { ...c.bytesSent };
    const recv = { ...c.bytesReceived };
    for (const { rec, bytes } of this.active.values()) {
      if (!bytes) continue;
      const ch = rec.channel ?? 'none';
      sent[ch] += bytes.sent;
      recv[ch] += bytes.received;
    }
    lines.push('# HELP gsa_client_bytes_total Payload bytes by direction and channel.');
    lines.push('# TYPE gsa_client_bytes_total counter');
    for (const ch of CHANNEL_KEYS) {
      lines.push(`gsa_client_bytes_total{direction="sent",channel="${ch}"} ${sent[ch]}`);
      lines.push(`gsa_client_bytes_total{direction="received",channel="${ch}"} ${recv[ch]}`);
    }
    lines.push('# HELP gsa_client_drops_total Datagrams dropped, by reason.');
    lines.push('# TYPE gsa_client_drops_total counter');
    for (const [reason, n] of c.drops)
      lines.push(`gsa_client_drops_total{reason="${reason}"} ${n}`);
    lines.push('# HELP gsa_client_refusals_total Flows refused, by kind.');
    lines.push('# TYPE gsa_client_refusals_total counter');
    for (const [kind, n] of c.refusals)
      lines.push(`gsa_client_refusals_total{kind="${kind}"} ${n}`);
    return `${lines.join('\n')}\n`;
  }
}
