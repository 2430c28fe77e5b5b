/**
 * The message transport a tunnel session runs over: anything that moves whole binary
 * messages in order and tells when its send buffer is full. Two implementations: a
 * WebSocket (`wsTransport`) and an in-memory pair (`memoryPair`) for unit tests and
 * in-process use. The session sets the three hooks; the transport calls them.
 */
import type WebSocket from 'ws';
import { attachRawReceiver } from './ws-raw.js';

export interface FrameTransport {
  /**
   * Sends one message (the transport keeps a reference: do not reuse `data`). Returns false
   * when the send buffer is at or above its high-water mark; the transport then calls
   * `onDrain` once it has room again. `sent`, when given, is called once the transport no
   * longer references `data` (handed to the OS, delivered, or dropped on close).
   */
  send(data: Buffer, sent?: () => void): boolean;
  /** Bytes accepted by `send` and not yet handed to the OS. */
  readonly bufferedAmount: number;
  /** Closes the transport; `onClose` follows (asynchronously). */
  close(code: number, reason: string): void;
  onMessage: (data: Buffer) => void;
  onDrain: () => void;
  onClose: (code: number, reason: string) => void;
}

const noop = (): void => {};

/** Default high-water mark of a transport's send buffer: 1 MiB. */
export const DEFAULT_SEND_HIGH_WATER = 1024 * 1024;

/**
 * Wraps an open `ws` WebSocket (binary, permessage-deflate off). Text messages are passed on
 * as bytes (the session rejects them as frames it cannot parse).
 *
 * Backpressure: `send` compares `ws.bufferedAmount` with `highWater`; the drain signal is the
 * underlying socket's 'drain' event (ws 8 exposes it as `_socket`; ws has no 'drain' of its
 * own), with the send callback as a fallback.
 */
export function wsTransport(
  ws: WebSocket,
  highWater: number = DEFAULT_SEND_HIGH_WATER,
): FrameTransport {
  let waiting = false;
  let closed = false;
  const socket = (ws as unknown as { _socket?: NodeJS.EventEmitter })._socket;
  const drained = (): void => {
    if (!waiting) return;
    waiting = false;
    t.onDrain();
  };
  const t: FrameTransport = {
    onMessage: noop,
    onDrain: noop,
    onClose: noop,
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    send(data, sent) {
      if (closed || ws.readyState !== 1) {
        if (sent) queueMicrotask(sent);
        return false;
      }
      if (sent) ws.send(data, () => sent());
      else ws.send(data);
      if (ws.bufferedAmount < highWater) return true;
      if (!waiting) {
        waiting = true;
        if (socket) socket.once('drain', drained);
        else ws.send(Buffer.alloc(0), drained);
      }
      return false;
    },
    close(code, reason) {
      if (closed) return;
      closed = true;
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code, reason);
    },
  };
  // Binary frames straight from the socket reads, without ws joining them (ws-raw.ts);
  // 'message' then only carries what ws still parses (text frames), or everything when the
  // raw receiver cannot attach.
  attachRawReceiver(ws, (b) => t.onMessage(b));
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    if (Buffer.isBuffer(data)) t.onMessage(data);
    else if (Array.isArray(data)) t.onMessage(Buffer.concat(data));
    else t.onMessage(Buffer.from(data));
  });
  ws.on('close', (code: number, reason: Buffer) => {
    closed = true;
    if (socket) socket.removeListener('drain', drained);
    t.onClose(code, reason.toString());
  });
  // 'error' is always followed by 'close'; the listener keeps it from being thrown.
  ws.on('error', noop);
  return t;
}

/**
 * Two connected in-memory transports. Messages are delivered in order on a later turn of the
 * event loop (setImmediate), so backpressure and re-entrancy behave as over a socket:
 * `bufferedAmount` counts bytes sent and not yet delivered, and `send` returns false above
 * `highWater`.
 */
export function memoryPair(
  highWater: number = DEFAULT_SEND_HIGH_WATER,
): [FrameTransport, FrameTransport] {
  const a = new MemoryEnd(highWater);
  const b = new MemoryEnd(highWater);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class MemoryEnd implements FrameTransport {
  onMessage: (data: Buffer) => void = noop;
  onDrain: () => void = noop;
  onClose: (code: number, reason: string) => void = noop;
  peer!: MemoryEnd;
  bufferedAmount = 0;
  private queue: Buffer[] = [];
  private sentCbs: Array<(() => void) | undefined> = [];
  private scheduled = false;
  private waiting = false;
  private closed = false;
  constructor(private readonly highWater: number) {}

  send(data: Buffer, sent?: () => void): boolean {
    if (this.closed) {
      if (sent) queueMicrotask(sent);
      return false;
    }
    this.queue.push(data);
    this.sentCbs.push(sent);
    this.bufferedAmount += data.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.deliver());
    }
    if (this.bufferedAmount < this.highWater) return true;
    this.waiting = true;
    return false;
  }

  private deliver(): void {
    this.scheduled = false;
    const q = this.queue;
    const cbs = this.sentCbs;
    this.queue = [];
    this.sentCbs = [];
    for (let i = 0; i < q.length; i++) {
      const m = q[i]!;
      this.bufferedAmount -= m.length;
      // Like a socket, the transport copies out before the write completes: the receiver
      // gets its own bytes, and the sender may reuse its buffers afterwards (those of
      // earlier messages too: a stream's write completes with its last piece).
      if (!this.closed && !this.peer.closed) this.peer.onMessage(Buffer.from(m));
      cbs[i]?.();
    }
    if (this.waiting && this.bufferedAmount < this.highWater) {
      this.waiting = false;
      this.onDrain();
    }
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    // Deliver what was sent before the close, like a WebSocket closing handshake.
    if (this.queue.length > 0) this.deliver();
    this.closed = true;
    this.peer.closed = true;
    setImmediate(() => {
      this.onClose(code, reason);
      this.peer.onClose(code, reason);
    });
  }
}
