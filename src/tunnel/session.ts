/**
 * The multiplexed tunnel session: many streams over one message transport (a WebSocket in
 * production, an in-memory pair in unit tests). Both sides run this class; the client opens
 * odd stream ids, the server even ones.
 *
 * Contract:
 * - `open(meta)` returns a TunnelStream at once (OPEN is queued); the first 64 KiB may be
 *   written before the peer accepts; `opened` resolves on OPEN_OK or rejects on RST.
 * - Incoming OPENs are emitted as 'stream' (an inbound Stream): call `accept()` once the
 *   destination is connected (or just write), or `reset(code)` to refuse.
 * - Any protocol violation by the peer closes the session with a CloseCode (frame.ts) after
 *   a GOAWAY carrying it; every stream still open ends with 'reset' SESSION_CLOSED and a
 *   StreamResetError. Nothing hangs: the transport's close does the same.
 * - `goAway()` refuses new streams and closes the session once the last stream finished.
 * - Events: 'stream' (stream), 'goaway' ({lastStreamId, code, reason}), 'rtt' (ms),
 *   'close' (SessionCloseInfo). No 'error' event: errors arrive in 'close'.
 *
 * Every limit is an option (SessionOptions) with a documented default (docs/protocol.md).
 */
import { EventEmitter } from 'node:events';
import { ChannelDownError, ProtocolError } from '../errors.js';
import { keepView } from '../util/big-read.js';
import {
  BASE_WINDOW,
  CloseCode,
  DEFAULT_MAX_FRAME_SIZE,
  decodeGoAway,
  decodeMeta,
  decodeOpen,
  decodeRst,
  encodeDgram,
  encodeFin,
  encodeGoAway,
  encodeMeta,
  encodeOpen,
  encodeOpenOk,
  encodePing,
  encodeRst,
  encodeWindow,
  FrameParser,
  FrameType,
  HEADER_SIZE,
  MAX_CREDIT,
  MAX_OPEN,
  readU32,
  writeHeader,
} from './frame.js';
import { Stream, type StreamHost } from './stream.js';
import { DEFAULT_SEND_HIGH_WATER, type FrameTransport } from './transport.js';
import type { MetaUpdate, OpenMeta } from './types.js';
import { ResetCode } from './types.js';

/** Replies (PONG, RST REFUSED) that may back up beyond sendHighWater before the session ends. */
export const MAX_REPLY_BACKLOG = 1024 * 1024;
export interface SessionOptions {
  /** Receive window each stream starts with (bytes). Default 256 KiB; min 64 KiB. */
  initialWindow?: number;
  /** Largest receive window auto-tuning may grow a stream to. Default 16 MiB. */
  maxWindow?: number;
  /** Largest frame payload accepted (bytes); longer frames close the session. Default 1 MiB. */
  maxFrameSize?: number;
  /** Largest DATA payload this side sends (bytes). Default 256 KiB (one edge read, util/big-read.ts). */
  maxDataFrame?: number;
  /** Streams the peer may have open at once; more are refused (RST REFUSED). Default 4096. */
  maxConcurrentStreams?: number;
  /** PING interval (ms). Default 15,000. 0 disables keepalive. */
  keepaliveInterval?: number;
  /**
   * Close (KEEPALIVE_TIMEOUT) when a PING is unanswered and nothing at all came in for this
   * long (ms). Default 30,000.
   */
  keepaliveTimeout?: number;
  /** Stop producing DATA while the transport buffers this much (bytes). Default 1 MiB. */
  sendHighWater?: number;
  /** DGRAM bytes that may queue beyond sendHighWater; more are dropped. Default 256 KiB. */
  maxDatagramQueue?: number;
  /** Readable high-water mark of each stream (bytes). Default 64 KiB. */
  streamHighWaterMark?: number;
  /**
   * An opened stream that gets neither OPEN_OK nor RST within this (ms) is reset with
   * TIMEOUT, so a silent peer never leaves a flow hanging. Default 30,000; 0 disables.
   */
  openTimeout?: number;
  /**
   * The peer understands META frames (an edge names `meta` in its upgrade response's
   * `x-gsa-tunnel-features`). When false, updateMeta() only updates the local meta.
   * Default true.
   */
  peerAcceptsMeta?: boolean;
}

export const SESSION_DEFAULTS: Required<SessionOptions> = {
  initialWindow: 256 * 1024,
  maxWindow: 16 * 1024 * 1024,
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  maxDataFrame: 256 * 1024,
  maxConcurrentStreams: 4096,
  keepaliveInterval: 15_000,
  keepaliveTimeout: 30_000,
  sendHighWater: DEFAULT_SEND_HIGH_WATER,
  maxDatagramQueue: 256 * 1024,
  streamHighWaterMark: 64 * 1024,
  openTimeout: 30_000,
  peerAcceptsMeta: true,
};

export interface SessionCloseInfo {
  /** CloseCode (frame.ts) or the WebSocket close code received. */
  code: number;
  reason: string;
  /** True when the peer (or the transport) closed, false when this side did. */
  remote: boolean;
  /** Set when the session died of a protocol violation (by either side) or keepalive timeout. */
  error?: ProtocolError;
}

export interface SessionStats {
  streams: number;
  /** Bytes received on all streams and not yet read by the application. */
  recvQueued: number;
  /** Bytes of pending writes waiting for credit or transport room. */
  sendPending: number;
  /** Bytes queued in the transport (WebSocket bufferedAmount). */
  transportBuffered: number;
  framesIn: number;
  framesOut: number;
  datagramsDropped: number;
  rtt: number;
}

const KNOWN_CODES = new Set<number>(Object.values(CloseCode));

/** Largest stream id (31 bits, as HTTP/2): a session that used them all is replaced. */
const MAX_STREAM_ID = 0x7fffffff;

/** Frames smaller than this are coalesced into one message per flush. */
const COALESCE_BELOW = 16 * 1024;

export class Session extends EventEmitter implements StreamHost {
  readonly side: 'client' | 'server';
  readonly options: Required<SessionOptions>;
  readonly maxDataFrame: number;
  readonly maxWindow: number;
  rtt = 1;
  /** Application data (server: the Principal; client: anything). */
  context: unknown;
  readonly streams = new Map<number, Stream>();
  closed = false;
  closeInfo: SessionCloseInfo | null = null;
  /** Set once this side sent GOAWAY. */
  goingAway = false;
  /** Set once the peer sent GOAWAY. */
  remoteGoAway: { lastStreamId: number; code: number; reason: string } | null = null;

  private readonly transport: FrameTransport;
  private readonly parser: FrameParser;
  private nextId: number;
  private lastPeerId = 0;
  private inboundCount = 0;
  private out: Buffer[] = [];
  /** Completion callbacks of zero-copy DATA payloads, by index into `out`. */
  private outSent: Array<(() => void) | undefined> = [];
  private outBytes = 0;
  private flushScheduled = false;
  private blocked = false;
  private waiting = new Set<Stream>();
  private framesOut = 0;
  private datagramsDropped = 0;
  private pingTimer: NodeJS.Timeout | null = null;
  private pongTimer: NodeJS.Timeout | null = null;
  private pingSentAt = 0;
  private pingSeq = 0;
  /** performance.now() when the last message came in: any input proves the peer alive. */
  private lastInputAt = performance.now();
  private readonly flushBound = (): void => this.flush();
  private resumeScheduled = false;
  private readonly resumeBound = (): void => {
    this.resumeScheduled = false;
    if (!this.blocked && !this.closed) this.onDrain();
  };

  constructor(transport: FrameTransport, side: 'client' | 'server', options: SessionOptions = {}) {
    super();
    this.side = side;
    const o = { ...SESSION_DEFAULTS };
    for (const [k, v] of Object.entries(options)) {
      if (v !== undefined) (o as Record<string, unknown>)[k] = v;
    }
    o.initialWindow = Math.min(Math.max(o.initialWindow, BASE_WINDOW), MAX_CREDIT);
    o.maxWindow = Math.min(Math.max(o.maxWindow, o.initialWindow), MAX_CREDIT);
    o.maxDataFrame = Math.max(1, Math.min(o.maxDataFrame, DEFAULT_MAX_FRAME_SIZE));
    this.options = o;
    this.maxDataFrame = o.maxDataFrame;
    this.maxWindow = o.maxWindow;
    this.nextId = side === 'client' ? 1 : 2;
    this.transport = transport;
    this.parser = new FrameParser(
      (type, id, payload) => this.onFrame(type, id, payload),
      (code, message) => this.fail(code, message),
      { maxFrameSize: o.maxFrameSize, partialData: true },
    );
    transport.onMessage = (data) => {
      this.lastInputAt = performance.now();
      this.parser.push(data);
    };
    transport.onDrain = () => this.onDrain();
    transport.onClose = (code, reason) => this.terminate(code, reason, true);
    if (o.keepaliveInterval > 0) {
      this.pingTimer = setInterval(() => this.ping(), o.keepaliveInterval);
      this.pingTimer.unref();
      // One probe at start gives auto-tuning a round-trip time.
      this.ping();
    }
  }

  // --- public API ------------------------------------------------------------------------

  /** Opens a stream. Throws ChannelDownError when the session is closed or going away. */
  open(meta: OpenMeta): Stream {
    if (this.closed || this.goingAway || this.remoteGoAway) {
      throw new ChannelDownError(meta.channel, {
        cause: this.closeInfo?.error ?? new Error('session closed or going away'),
      });
    }
    const id = this.nextId;
    if (id > MAX_STREAM_ID) {
      // Ids exhausted: this session drains and closes; the caller reconnects on a new one.
      this.goAway(CloseCode.NORMAL, 'stream ids exhausted');
      throw new ChannelDownError(meta.channel, { cause: new Error('stream ids exhausted') });
    }
    this.nextId += 2;
    const s = new Stream(this, {
      id,
      meta,
      inbound: false,
      sendCredit: BASE_WINDOW,
      recvCredit: this.options.initialWindow,
      readableHighWaterMark: this.options.streamHighWaterMark,
    });
    this.streams.set(id, s);
    this.queue(encodeOpen(id, this.options.initialWindow, meta));
    if (this.options.openTimeout > 0) s.armOpenTimeout(this.options.openTimeout);
    return s;
  }

  /** Stops accepting streams; closes once the last stream finished (or now if none). */
  goAway(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this.closed || this.goingAway) return;
    this.goingAway = true;
    this.queue(encodeGoAway(this.lastPeerId, code, reason));
    this.maybeFinish();
  }

  /** Closes now: every stream is reset (SESSION_CLOSED). */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    this.terminate(code, reason, false);
  }

  /** performance.now() when the last message came in (any input proves the peer alive). */
  get lastInput(): number {
    return this.lastInputAt;
  }

  /** Sends a PING now, unless one is unanswered or keepalive is off: a liveness probe. */
  probe(): void {
    if (this.options.keepaliveInterval > 0) this.ping();
  }

  get isOpen(): boolean {
    return !this.closed && !this.goingAway && !this.remoteGoAway;
  }

  stats(): SessionStats {
    let recvQueued = 0;
    let sendPending = 0;
    for (const s of this.streams.values()) {
      recvQueued += s.recvQueued;
      sendPending += s.sendPending;
    }
    return {
      streams: this.streams.size,
      recvQueued,
      sendPending,
      transportBuffered: this.transport.bufferedAmount,
      framesIn: this.parser.frames,
      framesOut: this.framesOut,
      datagramsDropped: this.datagramsDropped,
      rtt: this.rtt,
    };
  }

  // --- StreamHost ------------------------------------------------------------------------

  canSend(): boolean {
    if (this.closed) return true; // let writes drain into the void; streams are being reset
    if (this.blocked) return false;
    return this.transport.bufferedAmount + this.outBytes < this.options.sendHighWater;
  }

  sendData(id: number, payload: Uint8Array, sent?: () => void): void {
    if (this.closed) {
      sent?.();
      return;
    }
    const n = payload.length;
    if (n >= COALESCE_BELOW) {
      // Zero-copy: the header goes (coalesced with other small frames) in one message, the
      // payload as the next message, referenced until the transport is done with it; the
      // parser on the other side joins them without a copy. `sent` fires then.
      const h = Buffer.allocUnsafe(HEADER_SIZE);
      writeHeader(h, 0, FrameType.DATA, id, n);
      this.queue(h);
      const view = Buffer.isBuffer(payload)
        ? payload
        : Buffer.from(payload.buffer, payload.byteOffset, n);
      this.out.push(view);
      this.outSent.length = this.out.length;
      this.outSent[this.out.length - 1] = sent;
      this.outBytes += n;
      return;
    }
    const buf = Buffer.allocUnsafe(HEADER_SIZE + n);
    writeHeader(buf, 0, FrameType.DATA, id, n);
    buf.set(payload, HEADER_SIZE);
    this.queue(buf);
    sent?.();
  }

  sendDatagram(id: number, payload: Uint8Array): boolean {
    if (this.closed || payload.length > this.options.maxFrameSize) {
      this.datagramsDropped++;
      return false;
    }
    const o = this.options;
    if (this.transport.bufferedAmount + this.outBytes > o.sendHighWater + o.maxDatagramQueue) {
      this.datagramsDropped++;
      return false;
    }
    this.queue(encodeDgram(id, payload));
    return true;
  }

  sendWindow(id: number, increment: number): void {
    if (!this.closed) this.queue(encodeWindow(id, increment));
  }

  sendOpenOk(id: number, window: number): void {
    if (!this.closed) this.queue(encodeOpenOk(id, window));
  }

  sendFin(id: number): void {
    if (!this.closed) this.queue(encodeFin(id));
  }

  sendRst(id: number, code: number, reason: string): void {
    if (!this.closed) this.queue(encodeRst(id, code, reason));
  }

  sendMeta(id: number, update: MetaUpdate): void {
    if (!this.closed && this.options.peerAcceptsMeta) this.queue(encodeMeta(id, update));
  }

  waitDrain(stream: Stream): void {
    this.waiting.add(stream);
  }

  release(stream: Stream): void {
    if (this.streams.get(stream.streamId) === stream) {
      this.streams.delete(stream.streamId);
      if (stream.inbound) this.inboundCount--;
    }
    this.waiting.delete(stream);
    this.maybeFinish();
  }

  // --- sending ---------------------------------------------------------------------------

  /**
   * Queues a reply the peer's own frames call for (PONG, RST REFUSED). A peer that keeps
   * sending them while it reads none of the replies (a PING flood, RFC 9113 10.5) would
   * grow our send buffer without bound: past `sendHighWater` plus MAX_REPLY_BACKLOG the
   * session ends with FLOW_CONTROL instead.
   */
  private queueReply(frame: Buffer): void {
    if (
      this.transport.bufferedAmount + this.outBytes >
      this.options.sendHighWater + MAX_REPLY_BACKLOG
    ) {
      this.fail(CloseCode.FLOW_CONTROL, 'the peer does not read the replies to its PINGs or OPENs');
      return;
    }
    this.queue(frame);
  }

  private queue(frame: Buffer): void {
    this.out.push(frame);
    this.outBytes += frame.length;
    this.framesOut++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushBound);
    }
  }

  /** Sends queued frames: small ones coalesced into one message, large ones as they are. */
  private flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    const sent = this.outSent;
    if (out.length === 0) return;
    this.out = [];
    this.outSent = [];
    this.outBytes = 0;
    if (this.closed) {
      for (const cb of sent) cb?.();
      return;
    }
    let ok = true;
    let run: Buffer[] = [];
    let runBytes = 0;
    const t = this.transport;
    const sendRun = (): void => {
      if (run.length === 0) return;
      ok = t.send(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes)) && ok;
      run = [];
      runBytes = 0;
    };
    for (let i = 0; i < out.length; i++) {
      const f = out[i]!;
      if (f.length >= COALESCE_BELOW) {
        sendRun();
        const cb = sent[i];
        ok = (cb ? t.send(f, cb) : t.send(f)) && ok;
      } else {
        run.push(f);
        runBytes += f.length;
        if (runBytes >= COALESCE_BELOW) sendRun();
      }
    }
    sendRun();
    if (!ok) this.blocked = true;
    else if (this.waiting.size > 0 && !this.resumeScheduled) {
      // Streams stopped for queued-but-unflushed bytes: the transport took them, so no
      // drain will come; resume them on the next turn (after I/O).
      this.resumeScheduled = true;
      setImmediate(this.resumeBound);
    }
  }

  private onDrain(): void {
    this.blocked = false;
    if (this.waiting.size === 0) return;
    const list = [...this.waiting];
    this.waiting.clear();
    for (const s of list) {
      s.pump();
      if (!this.canSend()) {
        // Keep the others waiting, in order, behind whoever just re-registered.
        for (const r of list) if (!r.destroyed && r.sendPending > 0) this.waiting.add(r);
        return;
      }
    }
  }

  // --- receiving -------------------------------------------------------------------------

  private isOurs(id: number): boolean {
    return (id & 1) === (this.side === 'client' ? 1 : 0);
  }

  /**
   * META for a stream the peer opened and that has ended: its process lookup finished after
   * the flow (OPEN said `processPending`). Checked like any META, then handed to whoever
   * holds the flow's record ('lateMeta'); ignored when nobody listens.
   */
  private onLateMeta(id: number, payload: Buffer): void {
    const update = this.metaOf(id, payload);
    if (update !== null) this.emit('lateMeta', id, update);
  }

  /** A META payload's update, or null after failing the session (PROTOCOL) on a bad one. */
  private metaOf(id: number, payload: Buffer): MetaUpdate | null {
    const m = decodeMeta(payload);
    const update = m === null ? null : metaUpdate(m);
    if (update === null) this.fail(CloseCode.PROTOCOL, `bad META on stream ${id}`);
    return update;
  }

  /** A stream id that was used once and is now gone (late frames for it are ignored). */
  private wasClosed(id: number): boolean {
    return this.isOurs(id) ? id < this.nextId : id <= this.lastPeerId;
  }

  private onFrame(type: number, id: number, payload: Buffer): void {
    if (this.closed) return;
    switch (type) {
      case FrameType.DATA: {
        const s = this.streams.get(id);
        if (s === undefined) {
          if (!this.wasClosed(id)) this.fail(CloseCode.STREAM_ID, `DATA on unknown stream ${id}`);
          return;
        }
        if (s.remoteFin) {
          this.fail(CloseCode.PROTOCOL, `DATA after FIN on stream ${id}`);
          return;
        }
        // A frame's payload may come in pieces (partialData): its whole length is checked
        // against the credit on the first piece, as if it had come at once.
        const p = this.parser;
        if (p.pieceOffset === 0 && p.frameLength > s.recvCredit) {
          this.fail(
            CloseCode.FLOW_CONTROL,
            `stream ${id}: ${p.frameLength} bytes of DATA exceed the credit of ${s.recvCredit}`,
          );
          return;
        }
        if (s.meta.proto === 'udp') {
          this.fail(CloseCode.PROTOCOL, `DATA on udp stream ${id}`);
          return;
        }
        s.onData(payload);
        return;
      }
      case FrameType.OPEN:
        this.onOpen(id, payload);
        return;
      case FrameType.OPEN_OK: {
        const s = this.streams.get(id);
        if (s === undefined) {
          if (!this.wasClosed(id))
            this.fail(CloseCode.STREAM_ID, `OPEN_OK on unknown stream ${id}`);
          return;
        }
        if (s.inbound || s.accepted) {
          this.fail(CloseCode.PROTOCOL, `unexpected OPEN_OK on stream ${id}`);
          return;
        }
        const w = readU32(payload, 0);
        if (w < BASE_WINDOW || w > MAX_CREDIT) {
          this.fail(CloseCode.FLOW_CONTROL, `OPEN_OK window ${w} out of range`);
          return;
        }
        // WINDOWs before OPEN_OK count too: the credit may not pass 2^31-1 either way.
        if (s.sendCredit + (w - BASE_WINDOW) > MAX_CREDIT) {
          this.fail(CloseCode.FLOW_CONTROL, `stream ${id}: credit grown past 2^31-1`);
          return;
        }
        s.onOpenOk(w, BASE_WINDOW);
        return;
      }
      case FrameType.WINDOW: {
        const s = this.streams.get(id);
        if (s === undefined) {
          if (!this.wasClosed(id)) this.fail(CloseCode.STREAM_ID, `WINDOW on unknown stream ${id}`);
          return;
        }
        const inc = readU32(payload, 0);
        if (inc === 0) {
          this.fail(CloseCode.PROTOCOL, `zero WINDOW increment on stream ${id}`);
          return;
        }
        if (s.sendCredit + inc > MAX_CREDIT) {
          this.fail(CloseCode.FLOW_CONTROL, `stream ${id}: credit grown past 2^31-1`);
          return;
        }
        s.onWindow(inc);
        return;
      }
      case FrameType.FIN: {
        const s = this.streams.get(id);
        if (s === undefined) {
          if (!this.wasClosed(id)) this.fail(CloseCode.STREAM_ID, `FIN on unknown stream ${id}`);
          return;
        }
        if (s.remoteFin) {
          this.fail(CloseCode.PROTOCOL, `second FIN on stream ${id}`);
          return;
        }
        s.onFin();
        return;
      }
      case FrameType.RST: {
        const s = this.streams.get(id);
        if (s === undefined) {
          // An RST crossing our own close is nothing to do; one for a never-opened stream
          // breaks the stream id rules.
          if (!this.wasClosed(id)) this.fail(CloseCode.STREAM_ID, `RST on unknown stream ${id}`);
          return;
        }
        const r = decodeRst(payload);
        s.onReset(r.code, r.reason, 'stream reset by peer');
        return;
      }
      case FrameType.DGRAM: {
        const s = this.streams.get(id);
        if (s === undefined) {
          if (!this.wasClosed(id)) this.fail(CloseCode.STREAM_ID, `DGRAM on unknown stream ${id}`);
          return;
        }
        if (s.meta.proto !== 'udp') {
          this.fail(CloseCode.PROTOCOL, `DGRAM on tcp stream ${id}`);
          return;
        }
        // Kept by whoever takes the datagram (a UDP send): not a view of a lent read.
        s.onDatagram(keepView(payload));
        return;
      }
      case FrameType.PING:
        this.queueReply(encodePing(payload, true));
        return;
      case FrameType.PONG:
        this.onPong(payload);
        return;
      case FrameType.GOAWAY:
        this.onGoAway(payload);
        return;
      case FrameType.META: {
        const s = this.streams.get(id);
        if (s === undefined) {
          if (!this.wasClosed(id)) this.fail(CloseCode.STREAM_ID, `META on unknown stream ${id}`);
          else if (!this.isOurs(id)) this.onLateMeta(id, payload);
          return;
        }
        if (!s.inbound) {
          this.fail(CloseCode.PROTOCOL, `META on stream ${id} from its acceptor`);
          return;
        }
        const update = this.metaOf(id, payload);
        if (update !== null) s.onMeta(update);
        return;
      }
      default:
        return; // the parser rejects unknown types
    }
  }

  private onOpen(id: number, payload: Buffer): void {
    if (this.isOurs(id) || id <= this.lastPeerId) {
      this.fail(CloseCode.STREAM_ID, `OPEN with bad stream id ${id}`);
      return;
    }
    this.lastPeerId = id;
    if (payload.length > MAX_OPEN) {
      this.fail(
        CloseCode.PROTOCOL,
        `OPEN of ${payload.length} bytes > ${MAX_OPEN} on stream ${id}`,
      );
      return;
    }
    const o = decodeOpen(payload);
    const meta = o?.meta as OpenMeta | undefined;
    if (o === null || !isMeta(meta)) {
      this.fail(CloseCode.PROTOCOL, `bad OPEN metadata on stream ${id}`);
      return;
    }
    if (o.window < BASE_WINDOW || o.window > MAX_CREDIT) {
      this.fail(CloseCode.FLOW_CONTROL, `OPEN window ${o.window} out of range`);
      return;
    }
    if (this.goingAway) {
      this.queueReply(encodeRst(id, ResetCode.REFUSED, 'session going away'));
      return;
    }
    if (this.inboundCount >= this.options.maxConcurrentStreams) {
      this.queueReply(encodeRst(id, ResetCode.REFUSED, 'too many streams'));
      return;
    }
    const s = new Stream(this, {
      id,
      meta: knownMeta(meta),
      inbound: true,
      sendCredit: o.window,
      recvCredit: BASE_WINDOW,
      readableHighWaterMark: this.options.streamHighWaterMark,
      // accept() grants the configured window on top of BASE_WINDOW.
      acceptWindow: this.options.initialWindow,
    });
    this.streams.set(id, s);
    this.inboundCount++;
    if (this.listenerCount('stream') === 0) {
      s.reset(ResetCode.REFUSED, 'no stream handler');
      return;
    }
    this.emit('stream', s);
  }

  private onGoAway(payload: Buffer): void {
    const g = decodeGoAway(payload);
    this.remoteGoAway = g;
    if (g.code >= 4400 && KNOWN_CODES.has(g.code)) {
      // The peer is about to close for a protocol error it saw in our frames.
      this.closeInfo = {
        code: g.code,
        reason: g.reason,
        remote: true,
        error: new ProtocolError(g.code, `peer closed the session: ${g.reason}`),
      };
    }
    for (const s of [...this.streams.values()]) {
      if (!s.inbound && s.streamId > g.lastStreamId && !s.accepted) {
        s.onReset(ResetCode.REFUSED, 'session going away', 'stream refused');
      }
    }
    this.emit('goaway', g);
    this.maybeFinish();
  }

  /** After GOAWAY (either way): close normally once no stream is left. */
  private maybeFinish(): void {
    if (this.closed || this.streams.size > 0) return;
    if (this.goingAway || this.remoteGoAway) {
      this.flush();
      this.terminate(CloseCode.NORMAL, 'goaway complete', false);
    }
  }

  // --- keepalive -------------------------------------------------------------------------

  private ping(): void {
    if (this.closed || this.pongTimer !== null) return;
    const opaque = Buffer.alloc(8);
    opaque.writeUInt32BE(++this.pingSeq, 0);
    this.pingSentAt = performance.now();
    this.queue(encodePing(opaque));
    this.armPongTimer(this.options.keepaliveTimeout);
  }

  /**
   * Fails the session unless something arrives within keepaliveTimeout. The PONG may queue
   * behind a send buffer of DATA on a slow link, so any input counts, not only the PONG.
   */
  private armPongTimer(ms: number): void {
    this.pongTimer = setTimeout(() => {
      const timeout = this.options.keepaliveTimeout;
      const idle = performance.now() - this.lastInputAt;
      if (idle < timeout) {
        this.armPongTimer(timeout - idle);
        return;
      }
      this.fail(CloseCode.KEEPALIVE_TIMEOUT, `nothing received (no PONG) within ${timeout} ms`);
    }, ms);
    this.pongTimer.unref();
  }

  private onPong(payload: Buffer): void {
    if (this.pongTimer === null || readU32(payload, 0) !== this.pingSeq) return;
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    const sample = performance.now() - this.pingSentAt;
    this.rtt = this.pingSeq === 1 ? sample : this.rtt * 0.875 + sample * 0.125;
    this.emit('rtt', this.rtt);
  }

  // --- closing ---------------------------------------------------------------------------

  /** The peer broke the protocol (or keepalive expired): GOAWAY(code), then close. */
  private fail(code: number, message: string): void {
    if (this.closed) return;
    this.parser.stop();
    const error = new ProtocolError(code, message);
    this.queue(encodeGoAway(this.lastPeerId, code, message));
    this.flush();
    this.terminate(code, message, false, error);
  }

  private terminate(code: number, reason: string, remote: boolean, error?: ProtocolError): void {
    if (this.closed) return;
    if (!remote) this.flush();
    this.closed = true;
    this.parser.stop();
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.pongTimer) clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = null;
    const info: SessionCloseInfo = this.closeInfo ?? { code, reason, remote };
    if (error) info.error = error;
    this.closeInfo = info;
    const why = `session closed (${info.code}${info.reason ? ` ${info.reason}` : ''})`;
    for (const s of [...this.streams.values()])
      s.onReset(ResetCode.SESSION_CLOSED, info.reason, why);
    this.streams.clear();
    this.waiting.clear();
    const pending = this.outSent;
    this.out = [];
    this.outSent = [];
    this.outBytes = 0;
    for (const cb of pending) cb?.();
    if (!remote) this.transport.close(code, truncateReason(reason));
    this.emit('close', info);
  }
}

function isMeta(m: unknown): m is OpenMeta {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const o = m as Record<string, unknown>;
  const optString = (v: unknown): boolean => v == null || typeof v === 'string';
  return (
    (o.proto === 'tcp' || o.proto === 'udp') &&
    typeof o.port === 'number' &&
    (typeof o.host === 'string' || typeof o.ip === 'string') &&
    optString(o.host) &&
    optString(o.ip) &&
    typeof o.channel === 'string'
  );
}

/** The known OpenMeta fields of a checked OPEN (unknown ones are dropped, not kept). */
function knownMeta(m: OpenMeta): OpenMeta {
  const out: OpenMeta = {
    proto: m.proto,
    host: m.host ?? null,
    ip: m.ip ?? null,
    port: m.port,
    flowId: m.flowId,
    connectionId: m.connectionId,
    channel: m.channel,
    ruleId: m.ruleId,
    policyId: m.policyId,
    srcIp: m.srcIp,
    srcPort: m.srcPort,
  };
  if (m.process !== undefined) out.process = m.process;
  if (m.processPending !== undefined) out.processPending = m.processPending;
  return out;
}

/**
 * The fields a META frame may carry (unknown keys are ignored, so later versions can add
 * some); null when a known field has the wrong type.
 */
function metaUpdate(m: Record<string, unknown>): MetaUpdate | null {
  const u: MetaUpdate = {};
  if ('process' in m) {
    if (m.process !== null && typeof m.process !== 'string') return null;
    u.process = m.process;
  }
  return u;
}

/** WebSocket close reasons are limited to 123 bytes. */
function truncateReason(reason: string): string {
  const b = Buffer.from(reason, 'utf8');
  return b.length <= 123 ? reason : b.subarray(0, 120).toString('utf8');
}
