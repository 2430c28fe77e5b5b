/**
 * One stream of a tunnel session: a node:stream Duplex with credit-based flow control in
 * both directions (see docs/protocol.md, "Flow control").
 *
 * Receive side: DATA payloads (views) wait in a private queue and are pushed into the
 * Readable only while it asks for more (`_read`), so memory per stream stays within the
 * receive window plus the Readable's high-water mark. Bytes handed to the Readable are
 * returned to the peer as credit (WINDOW) once half a window has accumulated. The window
 * doubles (up to maxWindow) when the reader consumes a window faster than ~4 round trips,
 * as yamux/HTTP/2 implementations auto-tune.
 *
 * Spliced (`spliceTo(socket)`): DATA skips the Readable and goes straight to the socket's
 * write(); credit is returned as those writes complete, and a lent read (util/big-read.ts)
 * is held until then instead of copied or pinned.
 *
 * Send side: `_write` sends as much as the peer's credit and the session's transport buffer
 * allow and withholds the callback until the rest went out, so `write()` returns false and
 * a piped producer pauses.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { StreamResetError } from '../errors.js';
import { activeLease, keepView } from '../util/big-read.js';
import type { MetaUpdate, OpenMeta, ResetCodeValue, TunnelStream } from './types.js';
import { ResetCode } from './types.js';

/** What a stream needs from its session (implemented by Session). */
export interface StreamHost {
  readonly maxDataFrame: number;
  readonly maxWindow: number;
  /** Smoothed round-trip time in ms (keepalive PINGs), for window auto-tuning. */
  readonly rtt: number;
  /** True while the transport has room for DATA. */
  canSend(): boolean;
  /**
   * Queue a DATA frame. Small payloads are copied and `sent` is called at once; large ones
   * are referenced until the transport is done with them, then `sent` is called.
   */
  sendData(id: number, payload: Uint8Array, sent?: () => void): void;
  sendDatagram(id: number, payload: Uint8Array): boolean;
  sendWindow(id: number, increment: number): void;
  sendOpenOk(id: number, window: number): void;
  sendFin(id: number): void;
  sendRst(id: number, code: number, reason: string): void;
  sendMeta(id: number, update: MetaUpdate): void;
  /** Call `stream.pump()` when the transport drains. */
  waitDrain(stream: Stream): void;
  /** The stream is finished (both FINs, or reset, or destroyed). */
  release(stream: Stream): void;
}

export const RESET_NAMES: Record<number, string> = {
  0: 'CANCEL',
  1: 'CONNECT_FAILED',
  2: 'BLOCKED',
  3: 'PROTOCOL',
  4: 'SESSION_CLOSED',
  5: 'TIMEOUT',
  6: 'INTERNAL',
  7: 'REFUSED',
};

const noop = (): void => {};

export interface StreamInit {
  id: number;
  meta: OpenMeta;
  inbound: boolean;
  /** Credit we may send before the peer says otherwise. */
  sendCredit: number;
  /** Credit the peer holds to send to us (what we advertised or it assumes). */
  recvCredit: number;
  readableHighWaterMark: number;
  /** Inbound streams: the receive window accept() grants (the session's initialWindow). */
  acceptWindow?: number;
}

export class Stream extends Duplex implements TunnelStream {
  readonly streamId: number;
  readonly meta: OpenMeta;
  readonly inbound: boolean;
  readonly opened: Promise<void>;
  bytesSent = 0;
  bytesReceived = 0;
  /** Reset code once reset (either side, or session death); null otherwise. */
  resetCode: number | null = null;
  /** Bytes we may still send (the peer's credit). */
  sendCredit: number;
  /** Bytes the peer may still send us. */
  recvCredit: number;
  /** Current receive window (grows by auto-tuning). */
  recvWindow: number;
  /** True once OPEN_OK was sent (inbound) or received (outbound). */
  accepted = false;
  localFin = false;
  remoteFin = false;

  private readonly host: StreamHost;
  private resolveOpened: () => void = noop;
  private rejectOpened: (e: Error) => void = noop;
  private rq: Buffer[] = [];
  private rqBytes = 0;
  private wantRead = false;
  private endPushed = false;
  private unacked = 0;
  private lastWindowAt = 0;
  private wChunk: Buffer | null = null;
  private wOff = 0;
  private wCb: ((err?: Error | null) => void) | null = null;
  private released = false;
  /** `opened` has resolved or rejected (later rejections need no Error built). */
  private openSettled = false;
  private openTimer: NodeJS.Timeout | null = null;
  private readonly acceptWindow: number;
  /** A META was sent after the stream ended (at most one, see updateMeta). */
  private lateMetaSent = false;
  /** spliceTo(): where DATA goes, bypassing the Readable. */
  private sink: Socket | null = null;
  private sinkEnded = false;

  constructor(host: StreamHost, init: StreamInit) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: init.readableHighWaterMark,
      decodeStrings: true,
    });
    this.host = host;
    this.streamId = init.id;
    this.meta = init.meta;
    this.inbound = init.inbound;
    this.sendCredit = init.sendCredit;
    this.recvCredit = init.recvCredit;
    this.recvWindow = init.recvCredit;
    this.acceptWindow = init.acceptWindow ?? init.recvCredit;
    this.opened = new Promise<void>((resolve, reject) => {
      this.resolveOpened = () => {
        this.openSettled = true;
        resolve();
      };
      this.rejectOpened = (e) => {
        this.openSettled = true;
        reject(e);
      };
    });
    this.opened.catch(noop);
  }

  /** Bytes received and not yet handed to the reader. */
  get recvQueued(): number {
    return this.rqBytes;
  }

  /** Bytes of the current write waiting for credit or transport room. */
  get sendPending(): number {
    return this.wChunk ? this.wChunk.length - this.wOff : 0;
  }

  // --- acceptor side -------------------------------------------------------------------

  /**
   * Inbound streams: tells the opener the destination is connected (OPEN_OK) and grants the
   * full initial window. Writing to an unaccepted stream accepts it.
   */
  accept(window?: number): void {
    if (this.accepted || !this.inbound || this.destroyed) return;
    this.accepted = true;
    const w = Math.max(window ?? this.acceptWindow, this.recvWindow);
    this.recvCredit += w - this.recvWindow;
    this.recvWindow = w;
    this.host.sendOpenOk(this.streamId, w);
    this.resolveOpened();
  }

  // --- application API -----------------------------------------------------------------

  /** Aborts the stream with RST(code); emits 'reset' and closes without an error. */
  reset(code: ResetCodeValue | number, reason = ''): void {
    if (this.destroyed || this.resetCode !== null) return;
    this.resetCode = code;
    if (!(this.localFin && this.remoteFin)) this.host.sendRst(this.streamId, code, reason);
    if (!this.openSettled) {
      this.rejectOpened(
        new StreamResetError(code, `stream reset locally: ${name(code)} ${reason}`),
      );
    }
    this.emit('reset', code, reason);
    this.destroy();
  }

  /**
   * Opener: sends what it learned after OPEN (META). Nothing for an inbound stream. Once
   * the stream ended (reset or destroyed) only one, and only when OPEN said a process
   * lookup was pending (`processPending`): the acceptor may be holding its log record for it.
   */
  updateMeta(update: MetaUpdate): void {
    if (this.inbound) return;
    if (this.destroyed || this.resetCode !== null) {
      if (this.meta.processPending !== true || this.lateMetaSent) return;
      this.lateMetaSent = true;
    }
    const u: MetaUpdate = {};
    if ('process' in update) {
      u.process = update.process == null ? null : update.process.slice(0, 260);
      this.meta.process = u.process;
      this.meta.processPending = false;
    }
    this.host.sendMeta(this.streamId, u);
  }

  sendDatagram(payload: Uint8Array): boolean {
    if (this.destroyed || this.resetCode !== null || this.localFin) return false;
    if (this.inbound && !this.accepted) this.accept();
    const ok = this.host.sendDatagram(this.streamId, payload);
    if (ok) this.bytesSent += payload.length;
    return ok;
  }

  /**
   * Delivers this stream's incoming bytes straight to `sink.write()` from now on, without
   * the Readable (which then only signals 'end'): no per-chunk stream machinery, and DATA
   * from a lent read is held until the socket has written it rather than copied. Credit is
   * returned for bytes the socket has written, so at most a window waits in its buffer. The
   * peer's FIN ends the socket (half-close) once the bytes before it are written. Bytes that
   * came before the call go first. Only for a net.Socket, whose write callback means the
   * kernel has the bytes; a relay uses it in place of `stream.pipe(socket)`.
   */
  spliceTo(sink: Socket): void {
    if (this.sink !== null || this.destroyed) return;
    this.sink = sink;
    // Bytes already in the Readable (credited when pushed), then those still queued.
    for (let c = this.read() as Buffer | null; c !== null; c = this.read() as Buffer | null) {
      this.sinkWrite(c, null, false);
    }
    const early = this.rq;
    this.rq = [];
    this.rqBytes = 0;
    for (const c of early) this.sinkWrite(c, null, true);
    if (this.remoteFin) this.endSink();
    // Flowing, so that the Readable's 'end' comes once the peer's FIN is pushed.
    this.resume();
  }

  private sinkWrite(payload: Buffer, release: (() => void) | null, credit: boolean): void {
    const n = payload.length;
    this.sink!.write(payload, (err?: Error | null) => {
      // A failed write may leave the bytes referenced: the lent buffer is not given back.
      if (err) return;
      release?.();
      if (!credit || this.destroyed) return;
      this.unacked += n;
      this.maybeWindow();
    });
  }

  private endSink(): void {
    if (this.sinkEnded) return;
    this.sinkEnded = true;
    this.sink!.end();
    if (!this.endPushed) {
      this.endPushed = true;
      this.push(null);
    }
    this.finishIfDone();
  }

  // --- Duplex ----------------------------------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.resetCode !== null) {
      cb(new StreamResetError(this.resetCode, 'stream was reset'));
      return;
    }
    if (this.inbound && !this.accepted) this.accept();
    if (this.meta.proto === 'udp') {
      this.sendDatagram(chunk);
      cb();
      return;
    }
    this.wChunk = chunk;
    this.wOff = 0;
    this.wCb = cb;
    this.pump();
  }

  /** Sends pending bytes as far as credit and transport room allow. */
  pump(): void {
    const chunk = this.wChunk;
    if (chunk === null || this.destroyed) return;
    const host = this.host;
    const max = host.maxDataFrame;
    while (this.wOff < chunk.length && this.sendCredit > 0) {
      if (!host.canSend()) {
        host.waitDrain(this);
        return;
      }
      const n = Math.min(this.sendCredit, chunk.length - this.wOff, max);
      const end = this.wOff + n;
      this.sendCredit -= n;
      this.bytesSent += n;
      if (end >= chunk.length) {
        // Last piece: the write completes when the transport no longer needs the bytes
        // (the caller may then reuse its buffer), as net.Socket does.
        const cb = this.wCb!;
        this.wChunk = null;
        this.wCb = null;
        this.wOff = end;
        host.sendData(this.streamId, chunk.subarray(end - n, end), () => {
          if (!this.destroyed) cb();
        });
        return;
      }
      host.sendData(this.streamId, chunk.subarray(this.wOff, end));
      this.wOff = end;
    }
    if (this.wOff >= chunk.length) {
      const cb = this.wCb!;
      this.wChunk = null;
      this.wCb = null;
      cb();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.resetCode === null && !this.localFin) {
      this.localFin = true;
      this.host.sendFin(this.streamId);
      if (this.remoteFin && this.endPushed) this.finishIfDone();
    }
    cb();
  }

  override _read(): void {
    this.wantRead = true;
    this.drain();
  }

  private drain(): void {
    if (this.sink !== null) return;
    while (this.wantRead && this.rq.length > 0) {
      const c = this.rq.shift()!;
      this.rqBytes -= c.length;
      this.unacked += c.length;
      this.wantRead = this.push(c);
    }
    if (this.rq.length === 0 && this.remoteFin && !this.endPushed) {
      this.endPushed = true;
      this.push(null);
      this.finishIfDone();
      return;
    }
    this.maybeWindow();
  }

  private maybeWindow(): void {
    if (this.unacked < this.recvWindow >>> 1 || this.remoteFin || this.destroyed) return;
    const now = performance.now();
    let grow = 0;
    const host = this.host;
    // Not on an inbound stream before accept(): OPEN_OK then grants the whole window, which
    // the opener counts as growth over BASE_WINDOW, so growth sent earlier would count twice.
    if (
      this.recvWindow < host.maxWindow &&
      (this.accepted || !this.inbound) &&
      now - this.lastWindowAt < 4 * host.rtt
    ) {
      grow = Math.min(this.recvWindow, host.maxWindow - this.recvWindow);
      this.recvWindow += grow;
    }
    this.lastWindowAt = now;
    const inc = this.unacked + grow;
    this.unacked = 0;
    this.recvCredit += inc;
    host.sendWindow(this.streamId, inc);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.resetCode === null && !(this.localFin && this.remoteFin)) {
      this.resetCode = ResetCode.CANCEL;
      this.host.sendRst(this.streamId, ResetCode.CANCEL, err ? err.message : '');
      this.emit('reset', ResetCode.CANCEL, err ? err.message : 'destroyed');
    }
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = null;
    if (!this.openSettled) {
      this.rejectOpened(err ?? new StreamResetError(ResetCode.CANCEL, 'stream destroyed'));
    }
    this.rq = [];
    this.rqBytes = 0;
    this.wChunk = null;
    this.wCb = null;
    this.release();
    cb(err);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.host.release(this);
  }

  private finishIfDone(): void {
    if (this.localFin && this.remoteFin && this.endPushed) this.release();
  }

  // --- frames from the session ---------------------------------------------------------

  /** DATA; the session checked the credit. */
  onData(payload: Buffer): void {
    const n = payload.length;
    // Empty DATA carries nothing (FIN is a frame of its own) and costs no credit: queued, a
    // flood of it would grow the queue without bound.
    if (n === 0) return;
    this.recvCredit -= n;
    this.bytesReceived += n;
    if (this.sink !== null) {
      const lease = activeLease();
      this.sinkWrite(payload, lease === null ? null : lease.hold(payload), true);
      return;
    }
    // The Readable and the queue keep what they are given past this call.
    payload = keepView(payload);
    if (this.wantRead && this.rq.length === 0) {
      this.unacked += n;
      this.wantRead = this.push(payload);
      this.maybeWindow();
    } else {
      this.rq.push(payload);
      this.rqBytes += n;
    }
  }

  onFin(): void {
    this.remoteFin = true;
    if (this.sink !== null) this.endSink();
    else this.drain();
  }

  onWindow(increment: number): void {
    this.sendCredit += increment;
    this.pump();
  }

  /** Outbound: reset with TIMEOUT unless OPEN_OK or RST arrives within `ms`. */
  armOpenTimeout(ms: number): void {
    this.openTimer = setTimeout(() => {
      this.openTimer = null;
      if (this.accepted || this.destroyed) return;
      this.host.sendRst(this.streamId, ResetCode.TIMEOUT, 'no OPEN_OK');
      this.onReset(ResetCode.TIMEOUT, `no OPEN_OK within ${ms} ms`, 'stream open timed out');
    }, ms);
    this.openTimer.unref();
  }

  onOpenOk(window: number, baseWindow: number): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = null;
    this.accepted = true;
    this.sendCredit += window - baseWindow;
    this.resolveOpened();
    this.emit('open');
    this.pump();
  }

  /** META from the opener: merged into `meta`, then 'meta' (update). */
  onMeta(update: MetaUpdate): void {
    if ('process' in update) {
      this.meta.process = update.process ?? null;
      // The opener's lookup is over, found or not.
      this.meta.processPending = false;
    }
    this.emit('meta', update);
  }

  onDatagram(payload: Buffer): void {
    this.bytesReceived += payload.length;
    this.emit('datagram', payload);
  }

  /** RST from the peer, or the session died (code SESSION_CLOSED). */
  onReset(code: number, reason: string, why: string): void {
    if (this.destroyed || this.resetCode !== null) return;
    this.resetCode = code;
    const err = new StreamResetError(code, `${why}: ${name(code)}${reason ? ` (${reason})` : ''}`);
    this.rejectOpened(err);
    this.emit('reset', code, reason);
    this.destroy(err);
  }
}

function name(code: number): string {
  return RESET_NAMES[code] ?? `code ${code}`;
}
