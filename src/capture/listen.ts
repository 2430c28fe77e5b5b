/**
 * Listener safety shared by the SOCKS5, HTTP proxy and PAC servers: loopback by default,
 * and a listener on any other address only with authentication, so the emulator is never
 * an open relay; and what a proxy does with a bug of its own in one connection.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { OpenRelayError } from '../errors.js';
import type { ForwardLogger } from '../forward/forwarder.js';
import { parseIPv4, unmapIPv4 } from '../util/ip.js';

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  const v4 = parseIPv4(unmapIPv4(host));
  return v4 >= 0 && v4 >>> 24 === 127;
}

/** Throws OpenRelayError unless `host` is loopback or credentials are configured. */
export function assertSafeListen(what: string, host: string, hasAuth: boolean): void {
  if (!isLoopbackHost(host) && !hasAuth) throw new OpenRelayError(what, host);
}

export interface Credentials {
  username: string;
  password: string;
}

/**
 * An unexpected error of ours while serving one proxy connection: counted, logged, and that
 * connection closed, so one bad flow never takes the process down.
 */
export function closeOnInternalError(
  what: string,
  sock: Socket,
  err: unknown,
  stats: { internalErrors: number },
  log: ForwardLogger | undefined,
): void {
  stats.internalErrors++;
  log?.warn(
    { err: err instanceof Error ? (err.stack ?? err.message) : String(err) },
    `${what}: internal error; connection closed`,
  );
  if (!sock.destroyed) sock.destroy();
}

/**
 * Sends a refusal and ends `sock`. It goes on reading (and dropping) what the client still
 * sends, so the client's FIN completes the close of a socket paused for the handshake, and
 * destroys it 1 s later at the latest: a client that keeps its side open (proxies run
 * `allowHalfOpen`) holds no connection slot.
 */
export function endSoon(sock: Duplex, reply: string | Buffer): void {
  if (!sock.destroyed) sock.end(reply);
  sock.resume();
  setTimeout(() => sock.destroy(), 1000).unref();
}
