/**
 * The tunnel wire format: frame layout, encoders and an incremental parser. This is the one
 * module the client and the edge share (docs/protocol.md is its specification).
 *
 * Every frame has a fixed 10-byte header followed by `length` payload bytes:
 *
 * ```
 *  0       1       2               6               10
 *  +-------+-------+---------------+---------------+----------------
 *  | type  | flags | stream id u32 | length u32    | payload ...
 *  +-------+-------+---------------+---------------+----------------
 * ```
 * Integers are big-endian. Flags are reserved: sent as 0, ignored on receipt.
 * One WebSocket message may carry several frames, and a frame may span messages: the
 * parser is a byte-stream state machine that does not care about message boundaries.
 *
 * Contract of the parser (after websockets/ws's receiver): it never throws on any input;
 * when it is short of bytes it keeps what it has and returns; payloads are views into the
 * caller's chunks (`subarray`) and are copied only when a frame spans chunks; the first
 * violation moves it to a terminal error state reported once through `onError`.
 */
import { keepView } from '../util/big-read.js';

/** Frame types. Stable numbers: they are on the wire. */
export const FrameType = {
  /** Stream bytes; flow-controlled by the receiver's credit window. */
  DATA: 0x00,
  /** Opens a stream: u32 initial receive window of the opener, then UTF-8 JSON OpenMeta. */
  OPEN: 0x01,
  /** The acceptor connected to the destination: u32 initial receive window of the acceptor. */
  OPEN_OK: 0x02,
  /** Credit increment: u32 > 0 bytes the sender of WINDOW is ready to receive in addition. */
  WINDOW: 0x03,
  /** Half-close: the sender will send no more DATA on the stream. Empty payload. */
  FIN: 0x04,
  /** Abort the stream: u32 reset code (ResetCode), then a UTF-8 reason. */
  RST: 0x05,
  /** One UDP payload of a 'udp' stream; not flow-controlled; may be dropped. */
  DGRAM: 0x06,
  /** Keepalive / RTT probe on stream 0: 8 opaque bytes, echoed by PONG. */
  PING: 0x07,
  PONG: 0x08,
  /** Graceful shutdown on stream 0: u32 last accepted peer stream id, u32 code, UTF-8 reason. */
  GOAWAY: 0x09,
  /**
   * Metadata the opener learned after OPEN (the initiating process): a UTF-8 JSON object
   * of OpenMeta fields, at most MAX_META bytes. Only from the stream's opener.
   */
  META: 0x0a,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];
const MAX_TYPE = 0x0a;

/** Largest META payload (bytes). */
export const MAX_META = 4096;
/** The largest OPEN payload (window and metadata); more is a PROTOCOL error. */
export const MAX_OPEN = 8192;

export const FRAME_NAMES: readonly string[] = [
  'DATA',
  'OPEN',
  'OPEN_OK',
  'WINDOW',
  'FIN',
  'RST',
  'DGRAM',
  'PING',
  'PONG',
  'GOAWAY',
  'META',
];

export const HEADER_SIZE = 10;

/**
 * Session close codes. They are WebSocket close codes (4000-4999 is the application range)
 * and also the `code` of a GOAWAY frame. Stable: they are on the wire.
 */
export const CloseCode = {
  /** Orderly close (after GOAWAY, or client shutdown). */
  NORMAL: 1000,
  /** The endpoint is shutting down. */
  GOING_AWAY: 1001,
  /** A malformed frame (fixed-length payload of the wrong size, bad OPEN metadata...). */
  PROTOCOL: 4400,
  /** Authentication: no token presented. */
  AUTH_MISSING: 4401,
  /** Authentication: token forged, malformed, wrong audience or wrong tenant. */
  AUTH_FORBIDDEN: 4403,
  /** A refused upgrade (HTTP 404): no tunnel at that path, or no such channel. */
  NOT_FOUND: 4404,
  /** Unknown frame type. */
  BAD_FRAME_TYPE: 4405,
  /** No PONG within the keepalive timeout. */
  KEEPALIVE_TIMEOUT: 4408,
  /** A frame longer than maxFrameSize. */
  FRAME_SIZE: 4411,
  /** Stream id rules broken: wrong parity, zero/non-zero misuse, reuse, DATA on an unknown stream. */
  STREAM_ID: 4412,
  /** More DATA than the credit granted (window overflow), or a window grown past 2^31-1. */
  FLOW_CONTROL: 4413,
  /** Authentication: token expired. */
  AUTH_EXPIRED: 4419,
  /** Internal error of the endpoint. */
  INTERNAL: 4500,
} as const;
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Largest credit a stream may accumulate (as HTTP/2: 2^31-1). */
export const MAX_CREDIT = 0x7fffffff;
/**
 * Credit every stream starts with in each direction, before the peer's OPEN / OPEN_OK tells
 * its real window. Lets the opener send its first bytes (a TLS ClientHello, an HTTP request)
 * without waiting for OPEN_OK. Windows below this are invalid.
 */
export const BASE_WINDOW = 64 * 1024;

/** The frame-size limit a receiver applies unless configured otherwise (payload bytes). */
export const DEFAULT_MAX_FRAME_SIZE = 1024 * 1024;

/** Largest reason string sent in RST / GOAWAY (bytes, truncated beyond). */
export const MAX_REASON = 123;

// ---------------------------------------------------------------------------------------
// Encoding

/** Writes a header into `buf` at `off`. */
export function writeHeader(
  buf: Uint8Array,
  off: number,
  type: number,
  streamId: number,
  length: number,
): void {
  buf[off] = type;
  buf[off + 1] = 0;
  buf[off + 2] = streamId >>> 24;
  buf[off + 3] = (streamId >>> 16) & 0xff;
  buf[off + 4] = (streamId >>> 8) & 0xff;
  buf[off + 5] = streamId & 0xff;
  buf[off + 6] = length >>> 24;
  buf[off + 7] = (length >>> 16) & 0xff;
  buf[off + 8] = (length >>> 8) & 0xff;
  buf[off + 9] = length & 0xff;
}

function u32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

/** A frame whose payload is `payload` (copied once, into the frame). */
export function encodeFrame(type: number, streamId: number, payload?: Uint8Array): Buffer {
  const n = payload ? payload.length : 0;
  const buf = Buffer.allocUnsafe(HEADER_SIZE + n);
  writeHeader(buf, 0, type, streamId, n);
  if (payload && n > 0) buf.set(payload, HEADER_SIZE);
  return buf;
}

export function encodeData(streamId: number, payload: Uint8Array): Buffer {
  return encodeFrame(FrameType.DATA, streamId, payload);
}

function reasonBytes(reason: string | undefined): Buffer {
  if (!reason) return Buffer.alloc(0);
  const b = Buffer.from(reason, 'utf8');
  return b.length > MAX_REASON ? b.subarray(0, MAX_REASON) : b;
}

export function encodeOpen(streamId: number, window: number, meta: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 4 + json.length);
  writeHeader(buf, 0, FrameType.OPEN, streamId, 4 + json.length);
  u32(buf, HEADER_SIZE, window);
  buf.set(json, HEADER_SIZE + 4);
  return buf;
}

/** META: `update` as JSON; throws RangeError when it exceeds MAX_META bytes. */
export function encodeMeta(streamId: number, update: object): Buffer {
  const json = Buffer.from(JSON.stringify(update), 'utf8');
  if (json.length > MAX_META) throw new RangeError(`META of ${json.length} bytes > ${MAX_META}`);
  return encodeFrame(FrameType.META, streamId, json);
}

/** OPEN_OK and WINDOW: a u32 payload. */
export function encodeU32Frame(type: number, streamId: number, value: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 4);
  writeHeader(buf, 0, type, streamId, 4);
  u32(buf, HEADER_SIZE, value);
  return buf;
}

export function encodeOpenOk(streamId: number, window: number): Buffer {
  return encodeU32Frame(FrameType.OPEN_OK, streamId, window);
}

export function encodeWindow(streamId: number, increment: number): Buffer {
  return encodeU32Frame(FrameType.WINDOW, streamId, increment);
}

export function encodeFin(streamId: number): Buffer {
  return encodeFrame(FrameType.FIN, streamId);
}

export function encodeRst(streamId: number, code: number, reason?: string): Buffer {
  const r = reasonBytes(reason);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 4 + r.length);
  writeHeader(buf, 0, FrameType.RST, streamId, 4 + r.length);
  u32(buf, HEADER_SIZE, code);
  buf.set(r, HEADER_SIZE + 4);
  return buf;
}

export function encodeDgram(streamId: number, payload: Uint8Array): Buffer {
  return encodeFrame(FrameType.DGRAM, streamId, payload);
}

export function encodePing(opaque: Uint8Array, pong = false): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE + 8);
  writeHeader(buf, 0, pong ? FrameType.PONG : FrameType.PING, 0, 8);
  buf.set(opaque.subarray(0, 8), HEADER_SIZE);
  return buf;
}

export function encodeGoAway(lastStreamId: number, code: number, reason?: string): Buffer {
  const r = reasonBytes(reason);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 8 + r.length);
  writeHeader(buf, 0, FrameType.GOAWAY, 0, 8 + r.length);
  u32(buf, HEADER_SIZE, lastStreamId);
  u32(buf, HEADER_SIZE + 4, code);
  buf.set(r, HEADER_SIZE + 8);
  return buf;
}

// ---------------------------------------------------------------------------------------
// Decoding

/** Receives each complete, structurally valid frame. `payload` is a view: copy to keep it. */
export type FrameHandler = (type: number, streamId: number, payload: Buffer) => void;
/** Receives the first violation (a CloseCode) and a message; the parser then stops. */
export type FrameErrorHandler = (code: number, message: string) => void;

const S_HEADER = 0;
const S_PAYLOAD = 1;
const S_ERROR = 2;

const EMPTY = Buffer.alloc(0);

/**
 * Checks the structural rules that need no session state: known type, length within
 * `maxFrameSize`, fixed payload sizes, stream 0 only for PING/PONG/GOAWAY. Returns 0 when
 * valid, or a CloseCode. Stream-state rules (parity, unknown stream, credit) are the
 * session's.
 */
export function checkHeader(
  type: number,
  streamId: number,
  length: number,
  maxFrameSize: number,
): number {
  if (type > MAX_TYPE) return CloseCode.BAD_FRAME_TYPE;
  if (length > maxFrameSize) return CloseCode.FRAME_SIZE;
  switch (type) {
    case FrameType.PING:
    case FrameType.PONG:
      if (streamId !== 0) return CloseCode.STREAM_ID;
      return length === 8 ? 0 : CloseCode.FRAME_SIZE;
    case FrameType.GOAWAY:
      if (streamId !== 0) return CloseCode.STREAM_ID;
      return length >= 8 ? 0 : CloseCode.FRAME_SIZE;
    default:
      break;
  }
  if (streamId === 0) return CloseCode.STREAM_ID;
  switch (type) {
    case FrameType.OPEN_OK:
    case FrameType.WINDOW:
      return length === 4 ? 0 : CloseCode.FRAME_SIZE;
    case FrameType.FIN:
      return length === 0 ? 0 : CloseCode.FRAME_SIZE;
    case FrameType.OPEN:
    case FrameType.RST:
      return length >= 4 ? 0 : CloseCode.FRAME_SIZE;
    case FrameType.META:
      return length >= 2 && length <= MAX_META ? 0 : CloseCode.FRAME_SIZE;
    default:
      return 0;
  }
}

export interface FrameParserOptions {
  /** Largest payload accepted (bytes). Default 1 MiB. */
  maxFrameSize?: number;
  /**
   * Deliver a DATA payload in pieces as its bytes arrive (each piece a view of the input,
   * in order; a zero-length DATA frame as one empty piece) instead of joining a payload
   * that spans several inputs into one copy. Default false. The session turns it on:
   * DATA is a byte stream, so the pieces need no joining.
   */
  partialData?: boolean;
}

/**
 * Incremental frame parser. `push(chunk)` any number of bytes at a time; frames come out
 * through `onFrame` in order. Never throws on input: the first violation is reported
 * through `onError` and later input is ignored. (A throwing `onFrame` propagates: that is
 * the handler's bug, not the input's.)
 */
export class FrameParser {
  readonly maxFrameSize: number;
  onFrame: FrameHandler;
  onError: FrameErrorHandler;
  private state = S_HEADER;
  private buffers: Buffer[] = [];
  private buffered = 0;
  private type = 0;
  private streamId = 0;
  private length = 0;
  private readonly partialData: boolean;
  /** Frames parsed so far. */
  frames = 0;
  /**
   * During onFrame: the whole payload length of the frame being delivered, and (partialData)
   * how many of its bytes earlier pieces carried; so a handler can check a DATA frame's full
   * size on its first piece.
   */
  frameLength = 0;
  pieceOffset = 0;

  constructor(onFrame: FrameHandler, onError: FrameErrorHandler, options: FrameParserOptions = {}) {
    this.onFrame = onFrame;
    this.onError = onError;
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.partialData = options.partialData ?? false;
  }

  /** True once a violation was found. */
  get failed(): boolean {
    return this.state === S_ERROR;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Stops parsing (the session is closing); later input is ignored. */
  stop(): void {
    this.state = S_ERROR;
    this.buffers = [];
    this.buffered = 0;
  }

  push(chunk: Uint8Array): void {
    if (this.state === S_ERROR || chunk.length === 0) return;
    let buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.buffered === 0) {
      if (this.state === S_PAYLOAD && this.partialData && this.type === FrameType.DATA) {
        // The rest of a DATA payload that began in an earlier input: hand it on as it is.
        const take = Math.min(buf.length, this.length);
        this.piece(take === buf.length ? buf : buf.subarray(0, take));
        if (take === buf.length) return;
        buf = buf.subarray(take);
      }
      if (this.state === S_HEADER) {
        this.parseDirect(buf);
        return;
      }
      if (this.state === S_ERROR) return;
    }
    // Kept past this call: a lent read (util/big-read.ts) is copied or pinned.
    const kept = keepView(buf);
    this.buffers.push(kept);
    this.buffered += kept.length;
    this.loop();
  }

  /** Fast path: nothing pending, parse straight out of `buf` with views. */
  private parseDirect(buf: Buffer): void {
    let off = 0;
    const n = buf.length;
    while (this.state === S_HEADER && n - off >= HEADER_SIZE) {
      const type = buf[off]!;
      const streamId = readU32(buf, off + 2);
      const length = readU32(buf, off + 6);
      if (!this.header(type, streamId, length)) return;
      if (n - off - HEADER_SIZE < length) {
        this.state = S_PAYLOAD;
        off += HEADER_SIZE;
        if (type === FrameType.DATA && this.partialData) {
          // Hand on what is here; the rest follows in later inputs.
          if (off < n) this.piece(buf.subarray(off));
          return;
        }
        break;
      }
      const start = off + HEADER_SIZE;
      off = start + length;
      this.emit(length === 0 ? EMPTY : buf.subarray(start, off));
    }
    if (off < n && this.state !== S_ERROR) {
      const rest = keepView(off === 0 ? buf : buf.subarray(off));
      this.buffers.push(rest);
      this.buffered += rest.length;
    }
  }

  private loop(): void {
    while (this.state !== S_ERROR) {
      if (this.state === S_HEADER) {
        if (this.buffered < HEADER_SIZE) return;
        const h = this.consume(HEADER_SIZE);
        if (!this.header(h[0]!, readU32(h, 2), readU32(h, 6))) return;
        this.state = S_PAYLOAD;
      } else if (this.type === FrameType.DATA && this.partialData && this.length > 0) {
        if (this.buffered === 0) return;
        const first = this.buffers[0]!;
        const take = Math.min(first.length, this.length);
        this.buffered -= take;
        if (take === first.length) this.buffers.shift();
        else this.buffers[0] = first.subarray(take);
        this.piece(take === first.length ? first : first.subarray(0, take));
      } else {
        if (this.buffered < this.length) return;
        const payload = this.length === 0 ? EMPTY : this.consume(this.length);
        this.emit(payload);
      }
    }
  }

  /** partialData: the next piece of the current DATA payload (never longer than what is left). */
  private piece(p: Buffer): void {
    this.length -= p.length;
    if (this.length === 0) {
      this.emit(p);
      return;
    }
    this.onFrame(this.type, this.streamId, p);
    this.pieceOffset += p.length;
  }

  private header(type: number, streamId: number, length: number): boolean {
    const code = checkHeader(type, streamId, length, this.maxFrameSize);
    if (code !== 0) {
      this.fail(code, describe(code, type, streamId, length, this.maxFrameSize));
      return false;
    }
    this.type = type;
    this.streamId = streamId;
    this.length = length;
    this.frameLength = length;
    this.pieceOffset = 0;
    return true;
  }

  private emit(payload: Buffer): void {
    this.state = S_HEADER;
    this.frames++;
    this.onFrame(this.type, this.streamId, payload);
  }

  private fail(code: number, message: string): void {
    this.stop();
    this.onError(code, message);
  }

  /** Takes n bytes off the front: a view when the first chunk holds them, else a copy. */
  private consume(n: number): Buffer {
    this.buffered -= n;
    const first = this.buffers[0]!;
    if (n === first.length) {
      this.buffers.shift();
      return first;
    }
    if (n < first.length) {
      this.buffers[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const dst = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const b = this.buffers[0]!;
      const take = Math.min(b.length, n - off);
      dst.set(take === b.length ? b : b.subarray(0, take), off);
      off += take;
      if (take === b.length) this.buffers.shift();
      else this.buffers[0] = b.subarray(take);
    }
    return dst;
  }
}

function describe(
  code: number,
  type: number,
  streamId: number,
  length: number,
  max: number,
): string {
  const name = FRAME_NAMES[type] ?? `type 0x${type.toString(16)}`;
  switch (code) {
    case CloseCode.BAD_FRAME_TYPE:
      return `unknown frame type 0x${type.toString(16)}`;
    case CloseCode.FRAME_SIZE:
      return length > max
        ? `${name} frame of ${length} bytes exceeds maxFrameSize ${max}`
        : `${name} frame with bad length ${length}`;
    case CloseCode.STREAM_ID:
      return `${name} frame on bad stream id ${streamId}`;
    default:
      return `bad ${name} frame`;
  }
}

/** Decoded OPEN payload, or null when malformed. */
export function decodeOpen(payload: Buffer): { window: number; meta: unknown } | null {
  if (payload.length < 4) return null;
  try {
    const meta: unknown = JSON.parse(payload.toString('utf8', 4));
    return { window: readU32(payload, 0), meta };
  } catch {
    return null;
  }
}

/** META payload: the JSON object, or null when it is not one. */
export function decodeMeta(payload: Buffer): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(payload.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

export function decodeRst(payload: Buffer): { code: number; reason: string } {
  return { code: readU32(payload, 0), reason: payload.toString('utf8', 4) };
}

export function decodeGoAway(payload: Buffer): {
  lastStreamId: number;
  code: number;
  reason: string;
} {
  return {
    lastStreamId: readU32(payload, 0),
    code: readU32(payload, 4),
    reason: payload.toString('utf8', 8),
  };
}
