/**
 * The edge's traffic log: one record per flow in the Graph `networkAccessTraffic` shape,
 * appended as a JSON line to a file (through one write stream, never a sync write per
 * line) and kept in a bounded in-memory ring for the control API.
 *
 * Contract: every record has every field of `NetworkAccessTraffic` (absent values are
 * `null`, never missing); `append()` never throws and never blocks; when the file stream
 * falls more than `maxPendingBytes` behind, lines are dropped from the file (counted in
 * `droppedLines`) but still kept in the ring. With `maxFileBytes`, the file is rotated at
 * that size (`<file>.1`, util/log-rotation.ts); the ring is not affected.
 */
import { EventEmitter } from 'node:events';
import { createWriteStream, openSync, statSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { ChannelName } from '../policy/model.js';
import { SizeRotation } from '../util/log-rotation.js';
import { makeDirs } from '../util/state-dir.js';

export type TrafficType = 'internet' | 'private' | 'microsoft365';
export type TrafficAction = 'allow' | 'block' | 'bypass';

export interface PrivateAccessDetails {
  /** The connector that carried the flow. */
  connectorId: string;
  connectorName: string;
  /** The application segment (rule) that allowed the flow, or null when refused. */
  appSegmentId: string | null;
  /** What the connector resolved the destination to (`ip:port`), or null. */
  resolvedDestination: string | null;
  /** Why the flow was refused or failed, or null. */
  accessDeniedReason: string | null;
}

/** Microsoft Graph beta `networkAccessTraffic` (the subset gsa-emu fills in). */
export interface NetworkAccessTraffic {
  transactionId: string;
  connectionId: string;
  sessionId: string;
  /** When the flow started (ISO 8601, UTC). */
  createdDateTime: string;
  tenantId: string;
  userId: string;
  userPrincipalName: string;
  deviceId: string;
  trafficType: TrafficType;
  sourceIp: string;
  sourcePort: number;
  /**
   * The address the client asked for; for a flow to a name, what the edge resolved it to
   * (hosts map, connector or system resolver), null when it never resolved. Where the edge
   * actually connected for a private flow is privateAccessDetails.resolvedDestination.
   */
  destinationIp: string | null;
  destinationPort: number;
  destinationFQDN: string | null;
  destinationUrl: string | null;
  transportProtocol: 'tcp' | 'udp';
  /**
   * Bytes from the client to the destination: TCP, those the destination socket took (not
   * what still waited in the edge's buffers when the flow ended); 0 when it never connected.
   */
  sentBytes: number;
  /** Bytes from the destination to the client. */
  receivedBytes: number;
  action: TrafficAction;
  policyId: string | null;
  policyName: string | null;
  policyRuleId: string | null;
  policyRuleName: string | null;
  agentVersion: string;
  initiatingProcessName: string | null;
  operationStatus: 'success' | 'failure';
  privateAccessDetails: PrivateAccessDetails | null;
  /** gsa-emu extension: why the flow was blocked or failed (null on success). */
  failureReason: string | null;
  /** gsa-emu extension: when the flow ended (ISO 8601). */
  endDateTime: string;
}

/** The field names, in output order (tests check every record has exactly these). */
export const TRAFFIC_FIELDS: readonly (keyof NetworkAccessTraffic)[] = [
  'transactionId',
  'connectionId',
  'sessionId',
  'createdDateTime',
  'endDateTime',
  'tenantId',
  'userId',
  'userPrincipalName',
  'deviceId',
  'trafficType',
  'sourceIp',
  'sourcePort',
  'destinationIp',
  'destinationPort',
  'destinationFQDN',
  'destinationUrl',
  'transportProtocol',
  'sentBytes',
  'receivedBytes',
  'action',
  'policyId',
  'policyName',
  'policyRuleId',
  'policyRuleName',
  'agentVersion',
  'initiatingProcessName',
  'operationStatus',
  'failureReason',
  'privateAccessDetails',
];

/**
 * The record with its fields in TRAFFIC_FIELDS order. (Not JSON.stringify's array replacer:
 * it filters the keys of nested objects too, and privateAccessDetails came out `{}`.)
 */
function ordered(r: NetworkAccessTraffic): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of TRAFFIC_FIELDS) o[k] = r[k];
  return o;
}

export function trafficTypeOf(channel: ChannelName): TrafficType {
  return channel === 'm365' ? 'microsoft365' : channel;
}

export interface TrafficLogOptions {
  /** JSON-lines file, appended to; null/undefined = memory only. */
  file?: string | null;
  /** Records kept in memory for the API. Default 10,000. */
  capacity?: number;
  /** File lines buffered in memory before lines are dropped. Default 8 MiB. */
  maxPendingBytes?: number;
  /**
   * Bytes past which the file is renamed `<file>.1` (replacing an older one) and a new file
   * begun; 0/undefined = never (util/log-rotation.ts).
   */
  maxFileBytes?: number;
}

export interface TrafficQuery {
  /** Keep a record when it returns true. */
  where?: (r: NetworkAccessTraffic) => boolean;
  /** At most this many records (newest first). */
  top?: number;
}

/**
 * Events: 'record' (r: NetworkAccessTraffic) after each append; 'error' is never emitted
 * (file errors are counted in `fileErrors` and end file output).
 */
export class TrafficLog extends EventEmitter {
  readonly capacity: number;
  private readonly ring: (NetworkAccessTraffic | undefined)[];
  private head = 0;
  private count = 0;
  private out: WriteStream | null;
  private readonly maxPending: number;
  private fileOk: boolean;
  private readonly rotation: SizeRotation | null = null;
  /** Files rotated away whose streams still flush (close() waits for them). */
  private readonly ending = new Set<Promise<void>>();
  /** Lines not written to the file because it fell behind or failed. */
  droppedLines = 0;
  fileErrors = 0;
  /** Records appended since start. */
  total = 0;

  constructor(opts: TrafficLogOptions = {}) {
    super();
    this.capacity = Math.max(1, opts.capacity ?? 10_000);
    this.ring = new Array(this.capacity);
    this.maxPending = opts.maxPendingBytes ?? 8 * 1024 * 1024;
    if (opts.file) {
      makeDirs(dirname(opts.file), 0o700, 'log folder', 'none');
      // 0600: the log names every destination. A regular file (or none yet) is opened
      // here, so that its size is known before the first record; anything else (a FIFO,
      // /dev/null) as before, by the stream, and never rotated.
      let fd: number | undefined;
      try {
        const st = statSync(opts.file, { throwIfNoEntry: false });
        if (!st || st.isFile()) fd = openSync(opts.file, 'a', 0o600);
      } catch {} // the stream's open fails too, and says so (fileErrors)
      this.out = this.watch(
        fd !== undefined
          ? createWriteStream(opts.file, { fd })
          : createWriteStream(opts.file, { flags: 'a', mode: 0o600 }),
      );
      this.fileOk = true;
      if (opts.maxFileBytes && fd !== undefined) {
        this.rotation = new SizeRotation(opts.file, opts.maxFileBytes, fd);
      }
    } else {
      this.out = null;
      this.fileOk = false;
    }
  }

  get size(): number {
    return this.count;
  }

  /** Rotations of the file that failed (its records stayed in the current file). */
  get rotateErrors(): number {
    return this.rotation?.errors ?? 0;
  }

  private watch(out: WriteStream): WriteStream {
    out.on('error', () => {
      this.fileErrors++;
      this.fileOk = false;
    });
    return out;
  }

  /** Writes one line, to a new file first when it would take this one past the cap. */
  private writeLine(line: string): void {
    const fd = this.rotation?.before(Buffer.byteLength(line)) ?? null;
    if (fd !== null && this.out) {
      const old = this.out;
      this.out = this.watch(createWriteStream(this.rotation!.file, { fd }));
      // What the old stream still holds goes to the old file (now `.1`).
      const done = endStream(old);
      this.ending.add(done);
      void done.then(() => this.ending.delete(done));
    }
    this.out!.write(line);
  }

  append(r: NetworkAccessTraffic): void {
    this.ring[(this.head + this.count) % this.capacity] = r;
    if (this.count < this.capacity) this.count++;
    else this.head = (this.head + 1) % this.capacity;
    this.total++;
    if (this.out && this.fileOk) {
      if (this.out.writableLength > this.maxPending) this.droppedLines++;
      else this.writeLine(`${JSON.stringify(ordered(r))}\n`);
    } else if (this.out) {
      this.droppedLines++;
    }
    this.emit('record', r);
  }

  /** Records oldest first. */
  all(): NetworkAccessTraffic[] {
    const out: NetworkAccessTraffic[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.ring[(this.head + i) % this.capacity]!);
    return out;
  }

  /** Newest first, filtered, at most `top`. */
  query(q: TrafficQuery = {}): NetworkAccessTraffic[] {
    const top = q.top ?? Number.POSITIVE_INFINITY;
    const out: NetworkAccessTraffic[] = [];
    for (let i = this.count - 1; i >= 0 && out.length < top; i--) {
      const r = this.ring[(this.head + i) % this.capacity]!;
      if (!q.where || q.where(r)) out.push(r);
    }
    return out;
  }

  /** Resolves with the first record (already logged or future) that `pred` accepts. */
  waitFor(
    pred: (r: NetworkAccessTraffic) => boolean,
    timeoutMs = 5000,
  ): Promise<NetworkAccessTraffic> {
    const found = this.query({ where: pred, top: 1 })[0];
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const on = (r: NetworkAccessTraffic): void => {
        if (!pred(r)) return;
        clearTimeout(timer);
        this.off('record', on);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.off('record', on);
        reject(new Error(`no matching traffic log record within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('record', on);
    });
  }

  /** Flushes and closes the file (and one rotated away still flushing). */
  async close(): Promise<void> {
    await Promise.all([...this.ending, ...(this.out ? [endStream(this.out)] : [])]);
  }
}

/** Ends a file stream: resolves when it is flushed and closed, or failed. */
function endStream(out: WriteStream): Promise<void> {
  if (out.closed || out.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    out.end(() => resolve());
    out.once('error', () => resolve());
  });
}
