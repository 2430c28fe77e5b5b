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
 * Lent reads (connectBigReads + lendReads): for a consumer that handles every read
 * synchronously, the buffer is not handed on at all. During the delivery of a read,
 * `activeLease()` is that read's lease, and code that would keep a view of the read past the
 * call must say so: `hold()` (it gives the view back with the returned function once the
 * bytes are no longer needed, e.g. a socket write's callback), or `keep()` (a small view is
 * copied; a large one pins the buffer, which is then never reused). After the delivery, a
 * buffer nobody holds or pinned is read into again at once, and a held one as soon as every
 * hold is given back. Reusing a buffer that is still in the cache is what makes this pay
 * (docs/decisions/tunnel-lent-reads.md).
 *
 * Usage: pass `reader.onread` in the socket's constructor options (net.connect,
 * new net.Socket), then `reader.pipeTo(socket, sink)` once the sink exists. Backpressure:
 * reading pauses while `sink.write()` returns false and resumes on its 'drain'. End of input
 * ends the sink (half-close), as Readable.pipe() does, once it is known to be a FIN and not
 * an RST (reset.ts whenEndIsFin). Errors are the caller's to handle
 * (the socket still emits 'error' and 'close').
 */
import { isIP, type NetConnectOpts, connect as netConnect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { whenEndIsFin } from './reset.js';

/** Default buffer size per read: 256 KiB. */
export const BIG_READ_SIZE = 256 * 1024;

/**
 * Read buffers of sockets that closed, for the next socket: a short-lived connection (most
 * of them) then costs no allocation of its own. Only buffers that were never handed on are
 * pooled; a buffer is only ever filled by the one socket that holds it.
 */
const pool: Buffer[] = [];
const POOL_MAX = 16;

/**
 * Where a BigReader socket's first read goes. Node asks for the read buffer as the socket
 * is created, before connect: a buffer of its own then would cost every pending connect
 * `size` bytes (4096 of them, 1 GiB). This one is shared by every such socket; that is safe
 * because a read is delivered synchronously and its bytes are copied out (BigReader.onRead).
 */
let firstRead: Buffer | null = null;

function firstReadBuffer(size: number): Buffer {
  if (firstRead === null || firstRead.length < size) firstRead = Buffer.allocUnsafeSlow(size);
  return firstRead;
}

/** Buffers given back by leases that one socket keeps for its next reads. */
const FREE_MAX = 4;

/**
 * One read of a lent buffer (see the top of this file). A lease settles when the synchronous
 * delivery returns; the buffer goes back to its socket when it is settled, not pinned and
 * every hold was given back.
 */
export class ReadLease {
  private held = 0;
  private pinned = false;
  private settled = false;

  constructor(
    private readonly owner: ReadBuffer,
    /** The lent buffer (its ArrayBuffer is what views are checked against). */
    readonly buf: Buffer,
  ) {}

  /** True when `view` shares memory with the lent buffer. */
  aliases(view: Uint8Array): boolean {
    return view.buffer === this.buf.buffer;
  }

  /**
   * The caller keeps `view` until it calls the returned function (once; later calls do
   * nothing). Null when `view` is not part of the lent buffer (nothing to give back).
   */
  hold(view: Uint8Array): (() => void) | null {
    if (!this.aliases(view)) return null;
    this.held++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.held--;
      this.maybeReturn();
    };
  }

  /**
   * The caller keeps `view` with no promise to give it back: a small view is copied (the
   * copy is returned), a large one pins the buffer (never reused; `view` is returned).
   */
  keep(view: Buffer): Buffer {
    if (!this.aliases(view)) return view;
    if (view.length < this.owner.copyBelow) return Buffer.from(view);
    this.pinned = true;
    return view;
  }

  /** The delivery returned (called by the reader). */
  settle(): void {
    this.settled = true;
    this.maybeReturn();
  }

  private maybeReturn(): void {
    if (this.settled && !this.pinned && this.held === 0) {
      this.settled = false; // once
      this.pinned = true;
      this.owner.giveBack(this.buf);
    }
  }
}

let active: ReadLease | null = null;

/**
 * The lease of the lent read being delivered right now, or null (then views may be kept as
 * they are: the buffer behind them is never read into again).
 */
export function activeLease(): ReadLease | null {
  return active;
}

/** `activeLease()?.keep(view) ?? view`: for code that keeps a view it was handed. */
export function keepView(view: Buffer): Buffer {
  return active === null ? view : active.keep(view);
}

/** One socket's read buffer: lent for each read; `take` turns a read into a chunk of its own. */
class ReadBuffer {
  private spare: Buffer | null = null;
  private free: Buffer[] = [];
  readonly copyBelow: number;
  /** Lend reads (lendReads) instead of handing them on. */
  lending = false;
  /** The shared first-read buffer this socket was given (lazy), until its first read. */
  shared: Buffer | null = null;

  constructor(
    private readonly size: number,
    /** The first read goes into the shared buffer (firstReadBuffer), own buffers after. */
    private lazy = false,
  ) {
    this.copyBelow = size >>> 2;
  }

  /** The buffer for the next read (onread.buffer). */
  readonly next = (): Buffer => {
    if (this.spare === null) {
      if (this.lazy) {
        this.lazy = false;
        this.shared = firstReadBuffer(this.size);
        return this.shared;
      }
      const f = this.free.pop();
      const p = f ?? pool.pop();
      this.spare =
        p !== undefined && p.length === this.size ? p : Buffer.allocUnsafeSlow(this.size);
    }
    return this.spare;
  };

  /**
   * Delivers a read to `emit` as a lent view (see ReadLease): the buffer is read into again
   * once nothing holds it.
   */
  lend(n: number, buf: Buffer, emit: (view: Buffer) => void): void {
    // Until the lease settles, the next read must not land in this buffer.
    if (this.spare === buf) this.spare = null;
    const lease = new ReadLease(this, buf);
    const outer = active;
    active = lease;
    try {
      emit(buf.subarray(0, n));
    } finally {
      active = outer;
      lease.settle();
    }
  }

  /** Lends `buf` to one holder: the returned function gives it back (once). */
  lendOne(buf: Buffer): () => void {
    if (this.spare === buf) this.spare = null;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.giveBack(buf);
    };
  }

  /** A lent buffer nobody holds any more. */
  giveBack(buf: Buffer): void {
    if (this.spare === null) this.spare = buf;
    else if (this.free.length < FREE_MAX) this.free.push(buf);
  }

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

  /** The socket reads no more: its buffers may serve other connections. */
  release(): void {
    const b = this.spare;
    this.spare = null;
    this.lending = false;
    if (b !== null && pool.length < POOL_MAX) pool.push(b);
    for (const f of this.free) if (pool.length < POOL_MAX) pool.push(f);
    this.free = [];
  }
}

/** A socket's `onread` option: where the next read goes, and what to do with it. */
type OnRead = { buffer: () => Buffer; callback: (n: number, buf: Buffer) => boolean };

export class BigReader {
  private readonly buf: ReadBuffer;
  private sink: Writable | null = null;
  private socket: Socket | null = null;
  private waiting = false;
  private early: Buffer[] | null = null;
  readonly onread: OnRead;

  private readonly reuse: boolean;
  private readonly ahead: number;

  /**
   * `reuse`: the sink's write callback means it no longer refers to the bytes (true of a
   * net.Socket and of a tunnel stream, not of any Writable): a large read is then lent to
   * the write and its buffer read into again once the callback came without an error.
   * `ahead`: bytes the sink may hold unwritten (`writableLength`) while reading goes on. By
   * default reading pauses as soon as a write returns false and resumes on 'drain', when the
   * sink has written everything: the source's bytes then wait in its socket while the sink's
   * socket runs dry. A socket sink is better kept fed: a read or two ahead (the reads are
   * lent, so that is at most a few buffers).
   */
  constructor(size: number = BIG_READ_SIZE, options: { reuse?: boolean; ahead?: number } = {}) {
    // Its own read buffer only once the socket reads (see firstReadBuffer).
    this.buf = new ReadBuffer(size, true);
    this.reuse = options.reuse ?? false;
    this.ahead = options.ahead ?? 0;
    this.onread = { buffer: this.buf.next, callback: (n, buf) => this.onRead(n, buf) };
  }

  /** Starts relaying the socket's input into `sink`. Call once, after both exist. */
  pipeTo(socket: Socket, sink: Writable): void {
    this.socket = socket;
    this.sink = sink;
    socket.once('end', () =>
      // A FIN is passed on; an RST taken for an end is not (the socket's 'error' follows).
      whenEndIsFin(socket, () => {
        if (!sink.destroyed && !sink.writableEnded) sink.end();
      }),
    );
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
    if (buf === this.buf.shared) {
      // The first read, into the shared buffer: copied, whatever its size.
      this.buf.shared = null;
      const c = Buffer.allocUnsafe(n);
      buf.copy(c, 0, 0, n);
      return this.onChunk(c);
    }
    const sink = this.sink;
    if (sink !== null && this.reuse && n >= this.buf.copyBelow) {
      if (sink.destroyed) return false;
      const giveBack = this.buf.lendOne(buf);
      const ok = sink.write(buf.subarray(0, n), (err?: Error | null) => {
        // A failed write may still refer to the bytes: leave the buffer to the GC.
        if (!err) giveBack();
      });
      if (ok || sink.writableLength < this.ahead) return true;
      this.wait();
      return false;
    }
    return this.onChunk(this.buf.take(n, buf));
  }

  /** A read that is a chunk of its own: to the sink, or kept until there is one. */
  private onChunk(c: Buffer): boolean {
    const sink = this.sink;
    if (sink === null) {
      // Input before pipeTo(): keep it and pause until there is a sink.
      if (this.early === null) this.early = [c];
      else this.early.push(c);
      return false;
    }
    if (sink.destroyed) return false;
    if (sink.write(c)) return true;
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
  return withBigReads((onread) => netConnect({ ...options, onread }), size);
}

/** TLS reads: at most one record (16 KiB) each. */
export const TLS_READ_SIZE = 32 * 1024;

/**
 * tls.connect() with the same read buffers (and lending) as connectBigReads. A TLS socket
 * hands on at most one record (16 KiB) per read, so the buffers are smaller.
 */
export function connectTlsBigReads(
  options: ConnectionOptions,
  size: number = TLS_READ_SIZE,
): TLSSocket {
  // As tls.connect's callers (ws) do: SNI from the host unless it is an address.
  const servername =
    options.servername ?? (options.host && isIP(options.host) === 0 ? options.host : undefined);
  return withBigReads(
    (onread) =>
      // `onread` is a documented tls.connect option (Node >= 12.x) that @types/node lacks.
      tlsConnect({
        ...options,
        ...(servername !== undefined ? { servername } : {}),
        onread,
      } as ConnectionOptions),
    size,
  );
}

function withBigReads<S extends Socket>(make: (onread: OnRead) => S, size: number): S {
  const rb = new ReadBuffer(size);
  const emit = (view: Buffer): void => {
    socket.emit('data', view);
  };
  const socket: S = make({
    buffer: rb.next,
    callback: (n: number, buf: Buffer): boolean => {
      // Lent only to the one consumer that asked for it (lendReads), never to listeners
      // added since.
      if (rb.lending && socket.listenerCount('data') === 1) rb.lend(n, buf, emit);
      else socket.emit('data', rb.take(n, buf));
      return true;
    },
  });
  lendable.set(socket, rb);
  socket.once('close', () => rb.release());
  return socket;
}

const lendable = new WeakMap<Socket, ReadBuffer>();

/**
 * From now on, lends the reads of a connectBigReads socket to its one 'data' listener
 * (see ReadLease), which must keep views only through `activeLease()`. False, changing
 * nothing, for any other socket.
 */
export function lendReads(socket: Socket): boolean {
  const rb = lendable.get(socket);
  if (rb === undefined || socket.destroyed) return false;
  rb.lending = true;
  return true;
}
