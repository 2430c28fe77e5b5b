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
import net from 'node:net';
import type { Duplex } from 'node:stream';

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
