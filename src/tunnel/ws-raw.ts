/**
 * Zero-copy receive for the tunnel's WebSocket.
 *
 * `ws` joins every message that spans several socket reads into a new buffer before it
 * emits it. A tunnel DATA frame of 256 KiB spans about four 64 KiB reads, so on the
 * receiving side that copy (and the allocation and GC behind it) was the largest cost after
 * the kernel's own. The tunnel's frames are self-delimiting and DATA is a byte stream, so
 * WebSocket message boundaries carry no meaning here: this receiver takes over the socket's
 * 'data' events and hands the payload of every binary frame on as views of the reads, in
 * order, without joining them.
 *
 * Everything else stays with `ws`: control frames (ping, pong, close) and text frames are fed,
 * byte for byte, to the `ws` receiver, which answers pings and runs the closing handshake as
 * before. Any violation (reserved bits, unknown opcode, wrong masking for the side, a frame
 * over maxPayload, a bad continuation) switches to passing every byte from then on to `ws`,
 * which fails the connection with the right close code (1002, 1009) exactly as it would have.
 *
 * Relies on three `ws` internals (`_socket`, `_receiver`, `_isServer`, stable through ws 8);
 * when they are missing or the receiver already holds bytes, `attachRawReceiver` returns
 * false and the caller keeps using 'message' events.
 */
import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import { keepView, lendReads } from '../util/big-read.js';

interface WsInternals {
  _socket?: NodeJS.EventEmitter & { pause(): void };
  _receiver?: { write(chunk: Buffer): boolean; _bufferedBytes?: number; _maxPayload?: number };
  _isServer?: boolean;
}

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;

/** Parses the frame layer and routes bytes: binary payloads to `onData`, the rest to ws. */
export class RawReceiver {
  private readonly hdr = Buffer.alloc(14);
  private hdrLen = 0;
  private hdrNeed = 2;
  private inHeader = true;
  /** Payload bytes left in the current frame. */
  private remaining = 0;
  /** Current frame's payload goes to onData (true) or to ws (false). */
  private toData = false;
  private readonly maskKey = Buffer.alloc(4);
  private masked = false;
  private maskOff = 0;
  /** Inside a fragmented binary message (opcode 2 without FIN, continuations to follow). */
  private inFragment = false;
  /** After a violation every byte goes to ws. */
  private passthrough = false;

  constructor(
    private readonly isServer: boolean,
    private readonly maxPayload: number,
    private readonly onData: (b: Buffer) => void,
    private readonly toWs: (b: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.passthrough) {
      this.toWs(chunk);
      return;
    }
    let off = 0;
    const n = chunk.length;
    while (off < n) {
      if (this.inHeader) {
        const take = Math.min(this.hdrNeed - this.hdrLen, n - off);
        chunk.copy(this.hdr, this.hdrLen, off, off + take);
        this.hdrLen += take;
        off += take;
        if (this.hdrLen < this.hdrNeed) return;
        if (!this.header()) {
          // Hand ws the header and everything after it; it fails the connection.
          this.passthrough = true;
          this.toWs(Buffer.from(this.hdr.subarray(0, this.hdrLen)));
          if (off < n) this.toWs(chunk.subarray(off));
          return;
        }
        continue;
      }
      const take = Math.min(this.remaining, n - off);
      const piece = chunk.subarray(off, off + take);
      off += take;
      this.remaining -= take;
      if (this.toData) {
        if (this.masked) this.unmask(piece);
        this.onData(piece);
      } else {
        this.toWs(piece);
      }
      if (this.remaining === 0) this.startHeader();
    }
  }

  private startHeader(): void {
    this.inHeader = true;
    this.hdrLen = 0;
    this.hdrNeed = 2;
  }

  /** With `hdrNeed` bytes in `hdr`: true when the frame is fine (state set), false on a violation. */
  private header(): boolean {
    const h = this.hdr;
    const b1 = h[1]!;
    const len7 = b1 & 0x7f;
    const masked = (b1 & 0x80) !== 0;
    const full = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    if (this.hdrNeed < full) {
      this.hdrNeed = full;
      return true; // inHeader stays set: collect the rest of the header
    }
    const b0 = h[0]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return false; // no extensions negotiated
    if (masked !== this.isServer) return false; // clients mask, servers do not (RFC 6455 5.1)
    let length = len7;
    let at = 2;
    if (len7 === 126) {
      length = h.readUInt16BE(2);
      at = 4;
    } else if (len7 === 127) {
      const hi = h.readUInt32BE(2);
      if (hi > 0x1fffff) return false;
      length = hi * 2 ** 32 + h.readUInt32BE(6);
      at = 10;
    }
    if (masked) {
      h.copy(this.maskKey, 0, at, at + 4);
      this.masked = this.maskKey.readUInt32BE(0) !== 0; // an all-zero key changes nothing
      this.maskOff = 0;
    } else {
      this.masked = false;
    }
    if (opcode === OP_BINARY || opcode === OP_CONT) {
      if (opcode === OP_BINARY && this.inFragment) return false;
      if (opcode === OP_CONT && !this.inFragment) return false;
      if (length > this.maxPayload) return false;
      this.inFragment = !fin;
      this.toData = true;
    } else if (opcode === OP_TEXT || opcode >= 0x8) {
      // Text (never sent by a tunnel peer) and control frames: ws handles them whole. A text
      // message split in fragments would need ws to see its continuations: pass everything.
      if (opcode === OP_TEXT && !fin) return false;
      if (opcode >= 0x8 && (!fin || length > 125)) return false;
      if (opcode > 0xa) return false;
      if (this.inFragment && opcode === OP_TEXT) return false;
      this.toData = false;
      this.toWs(Buffer.from(h.subarray(0, this.hdrNeed)));
    } else {
      return false; // reserved opcodes 3-7
    }
    this.inHeader = false;
    this.remaining = length;
    if (length === 0) this.startHeader();
    return true;
  }

  private unmask(b: Buffer): void {
    const k = this.maskKey;
    let m = this.maskOff;
    for (let i = 0; i < b.length; i++) {
      b[i]! ^= k[m & 3]!;
      m++;
    }
    this.maskOff = m & 3;
  }
}

/**
 * Takes over the receive side of an open `ws` WebSocket (see above). Returns false, changing
 * nothing, when it cannot (then keep using 'message').
 */
export function attachRawReceiver(ws: WebSocket, onData: (b: Buffer) => void): boolean {
  const w = ws as unknown as WsInternals;
  const socket = w._socket;
  const receiver = w._receiver;
  if (!socket || !receiver || ws.readyState !== 1) return false;
  if ((receiver._bufferedBytes ?? 0) > 0) return false;
  const theirs = socket.listeners('data');
  if (theirs.length !== 1) return false;
  socket.removeListener('data', theirs[0] as (...args: unknown[]) => void);
  const raw = new RawReceiver(
    w._isServer === true,
    receiver._maxPayload && receiver._maxPayload > 0 ? receiver._maxPayload : 100 * 2 ** 20,
    onData,
    (b) => {
      // ws may keep what it is given (a control frame in parts, a pong to send).
      if (!receiver.write(keepView(b))) socket.pause();
    },
  );
  const onSocketData = (c: Buffer): void => raw.push(c);
  socket.on('data', onSocketData);
  // The client's socket (connectBigReads) can lend its reads: everything above keeps views
  // only through activeLease() (here, the FrameParser, the session and its streams).
  lendReads(socket as unknown as Socket);
  // As ws does on a receiver error: stop reading frames; ws sends the close frame itself.
  (receiver as unknown as NodeJS.EventEmitter).once('error', () =>
    socket.removeListener('data', onSocketData),
  );
  return true;
}
