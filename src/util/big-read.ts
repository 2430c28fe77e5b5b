/**
 * Large socket reads for the relay hot path.
 *
 * A net.Socket reads at most 64 KiB per read(2) (libuv's suggested size), and every chunk
 * then costs a 'data' emit, a tunnel DATA frame and a WebSocket message. With `onread` and a
 * buffer factory the kernel fills up to `size` bytes per call, so a fast sender is relayed in
 * a quarter (or fewer) of the reads, frames and messages.
 *
 * Memory: a read that filled at least a quarter of the buffer is handed on as a view of it
 * (no copy) and a fresh buffer is made for the next read; a smaller read is copied into an
 * exact-size buffer and the large one is reused, so a trickle of small reads never pins
 * `size` bytes per chunk.
 *
 * Usage: pass `reader.onread` in the socket's constructor options (net.connect,
 * new net.Socket), then `reader.pipeTo(socket, sink)` once the sink exists. Backpressure:
 * reading pauses while `sink.write()` returns false and resumes on its 'drain'. End of input
 * ends the sink (half-close), as Readable.pipe() does. Errors are the caller's to handle
 * (the socket still emits 'error' and 'close').
 */
import { type NetConnectOpts, connect as netConnect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';

/** Default buffer size per read: 256 KiB. */
export const BIG_READ_SIZE = 256 * 1024;

/**
 * Read buffers of sockets that closed, for the next socket: a short-lived connection (most
 * of them) then costs no allocation of its own. Only buffers that were never handed on are
 * pooled; a buffer is only ever filled by the one socket that holds it.
 */
const pool: Buffer[] = [];
const POOL_MAX = 16;

/** One socket's read buffer: lent for each read; `take` turns a read into a chunk of its own. */
class ReadBuffer {
  private spare: Buffer | null = null;
  private readonly copyBelow: number;

  constructor(private readonly size: number) {
    this.copyBelow = size >>> 2;
  }

  /** The buffer for the next read (onread.buffer). */
  readonly next = (): Buffer => {
    if (this.spare === null) {
      const p = pool.pop();
      this.spare =
        p !== undefined && p.length === this.size ? p : Buffer.allocUnsafeSlow(this.size);
    }
    return this.spare;
  };

  /** A large read is handed on as a view (the buffer is not reused); a small one is copied. */
  take(n: number, buf: Buffer): Buffer {
    if (n >= this.copyBelow) {
      this.spare = null;
      return buf.subarray(0, n);
    }
    const c = Buffer.allocUnsafe(n);
    buf.copy(c, 0, 0, n);
    return c;
  }

  /** The socket reads no more: its buffer may serve another connection. */
  release(): void {
    const b = this.spare;
    this.spare = null;
    if (b !== null && pool.length < POOL_MAX) pool.push(b);
  }
}

export class BigReader {
  private readonly buf: ReadBuffer;
  private sink: Writable | null = null;
  private socket: Socket | null = null;
  private waiting = false;
  private early: Buffer[] | null = null;
  readonly onread: { buffer: () => Buffer; callback: (n: number, buf: Buffer) => boolean };

  constructor(size: number = BIG_READ_SIZE) {
    this.buf = new ReadBuffer(size);
    this.onread = { buffer: this.buf.next, callback: (n, buf) => this.onRead(n, buf) };
  }

  /** Starts relaying the socket's input into `sink`. Call once, after both exist. */
  pipeTo(socket: Socket, sink: Writable): void {
    this.socket = socket;
    this.sink = sink;
    socket.once('end', () => {
      if (!sink.destroyed && !sink.writableEnded) sink.end();
    });
    socket.once('close', () => this.buf.release());
    const early = this.early;
    this.early = null;
    if (early !== null) {
      let ok = true;
      for (const c of early) ok = sink.write(c);
      if (!ok) this.wait();
      else socket.resume();
    }
  }

  private onRead(n: number, buf: Buffer): boolean {
    const sink = this.sink;
    if (sink === null) {
      // Input before pipeTo(): keep it and pause until there is a sink.
      const c = this.buf.take(n, buf);
      if (this.early === null) this.early = [c];
      else this.early.push(c);
      return false;
    }
    if (sink.destroyed) return false;
    if (sink.write(this.buf.take(n, buf))) return true;
    this.wait();
    return false;
  }

  private wait(): void {
    if (this.waiting) return;
    this.waiting = true;
    this.sink!.once('drain', this.resume);
  }

  private readonly resume = (): void => {
    this.waiting = false;
    const s = this.socket;
    if (s !== null && !s.destroyed) s.resume();
  };
}

/**
 * net.connect() whose reads are up to `size` bytes, delivered as ordinary 'data' events, so
 * code written for a plain socket (an HTTP client, the WebSocket) gets them unchanged.
 * pause()/resume() work as usual (Node stops and restarts reading for onread sockets).
 */
export function connectBigReads(options: NetConnectOpts, size: number = BIG_READ_SIZE): Socket {
  const rb = new ReadBuffer(size);
  const socket: Socket = netConnect({
    ...options,
    onread: {
      buffer: rb.next,
      callback: (n: number, buf: Buffer): boolean => {
        socket.emit('data', rb.take(n, buf));
        return true;
      },
    },
  });
  socket.once('close', () => rb.release());
  return socket;
}
