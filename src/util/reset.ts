/**
 * Aborting a TCP socket with an RST without tripping over Node's resetAndDestroy().
 *
 * `socket.resetAndDestroy()` asks libuv for `uv_tcp_close_reset()`, which refuses (UV_EINVAL)
 * while a shutdown is in flight: after `end()`, between Node's `_final` calling
 * `uv_shutdown()` and libuv performing it on its next loop turn (or later, while writes are
 * still queued). Node 20's `TCPWrap::Reset` marks the handle closing even when that call
 * failed, so the handle is never closed: the socket emits 'error' (EINVAL, syscall
 * "reset") but never 'close', its file descriptor stays open, and at exit Node waits for
 * the handle forever, spinning a CPU (Environment::CleanupHandles). A relay meets this when
 * the far side's FIN (which ends the socket) is followed at once by a reset. See
 * docs/decisions/forward-socket-reset.md.
 *
 * So: an RST while no shutdown can be pending (end() not called, or the shutdown already
 * done); otherwise a plain destroy(), which closes the socket after the FIN it already
 * announced.
 */
import { writeSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';

/** True when resetAndDestroy() is safe: a TCP socket with no shutdown in flight. */
export function canReset(socket: Duplex): socket is net.Socket {
  return socket instanceof net.Socket && (!socket.writableEnded || socket.writableFinished);
}

/** Aborts `socket`: with an RST where that is safe (canReset), else destroy(). Idempotent. */
export function resetSocket(socket: Duplex): void {
  if (socket.destroyed) return;
  if (canReset(socket)) {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // ERR_INVALID_HANDLE_TYPE: not a TCP handle after all (a pipe); destroy below.
    }
  }
  socket.destroy();
}

const NOTHING = Buffer.alloc(0);

type WriteCb = (err?: Error | null) => void;
type RawWrite = (chunk: unknown, enc: string, cb: WriteCb) => void;

/**
 * Calls `fin` when `socket`'s end of input (its 'end' event, which just came) was the
 * peer's FIN, and `reset` (then destroys the socket with the error, whose 'error' the
 * caller handles as the abort it is) when it was an RST that cut the data short.
 *
 * libuv reports an RST that comes with data, or while the socket is not being read, as an
 * end of input: a read that drains the queue and sees POLLHUP is taken for EOF, and the
 * ECONNRESET that the next read(2) would give is never read (uv__stream_io). A relay that
 * passed that end on as a FIN would hand its reader a transfer cut short (the peer's kernel
 * drops what it had not sent) that looks complete. A zero-byte write tells them apart:
 * Linux answers it with ECONNRESET on a connection reset before its FIN, with EPIPE on one
 * reset after it (tcp_reset in CLOSE_WAIT: every byte came, the FIN says so), and sends
 * nothing on a half-closed one (docs/decisions/relay-end-or-reset.md). The probe goes
 * past the socket's Writable (which would destroy the socket on any write error) and its
 * error is judged here.
 *
 * A socket whose own side has ended (the application half-closed its upload before the
 * destination reset), or has writes queued, is probed by `kernelProbe`. A socket without a
 * descriptor (Windows) or not TCP gets `fin` at once.
 */
export function whenEndIsFin(
  socket: Duplex,
  fin: () => void,
  /** Told of the reset before the socket is destroyed with it. */
  reset?: () => void,
): void {
  if (!(socket instanceof net.Socket) || socket instanceof TLSSocket || socket.destroyed) {
    fin();
    return;
  }
  if (socket.writableEnded || socket.writableLength > 0) {
    // Its own side ended (libuv refuses any write after its shutdown, without a system
    // call) or writes are queued (a probe through libuv would wait behind them): the
    // zero-byte write goes to the kernel directly, past libuv, and reads the same answer.
    const code = kernelProbe(socket);
    if (code === 'ECONNRESET') {
      reset?.();
      socket.destroy(Object.assign(new Error('read ECONNRESET'), { code, syscall: 'read' }));
      return;
    }
    fin();
    return;
  }
  // The socket's own _write, not write(): the Writable would destroy the socket on EPIPE,
  // which here is no abort. Nothing is queued, so the probe goes to the kernel at once.
  (socket as unknown as { _write: RawWrite })._write(NOTHING, 'buffer', (err) => {
    const e = err as NodeJS.ErrnoException | null | undefined;
    if (!e || e.code === 'EPIPE') {
      fin();
      return;
    }
    reset?.();
    socket.destroy(e);
  });
}

/**
 * A zero-byte write(2) on `socket`'s descriptor, past libuv: the error code the kernel
 * answers with, or null for none (or no descriptor to ask: Windows, a pipe). On Linux a
 * socket whose send side is shut down answers EPIPE, unless an error is pending on it
 * (`sk_err`, which tcp_reset sets and a read would have returned): then that error, which
 * the write consumes (tcp_sendmsg_locked -> sk_stream_error -> sock_error). Zero bytes
 * add nothing to the stream and cannot reorder what libuv has queued. SIGPIPE is ignored
 * by Node.
 */
export function kernelProbe(socket: net.Socket): string | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  try {
    writeSync(fd, NOTHING);
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? null;
  }
}
