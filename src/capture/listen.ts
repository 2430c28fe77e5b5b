/**
 * Listener safety shared by the SOCKS5, HTTP proxy and PAC servers: loopback by default,
 * and a listener on any other address only with authentication, so the emulator is never
 * an open relay.
 */
import { OpenRelayError } from '../errors.js';
import { parseIPv4 } from '../util/ip.js';

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  const v4 = parseIPv4(host.startsWith('::ffff:') ? host.slice(7) : host);
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
