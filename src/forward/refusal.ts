/**
 * Why a flow was not opened, from the edge's reset or a direct connect's error: shared by
 * the TCP forwarder (forwarder.ts) and the UDP associations (udp.ts), which forwarder.ts
 * imports, so it lives in neither.
 */
import { ResetCode } from '../tunnel/types.js';

/**
 * Why a flow was not opened: blocked (policy, hardening, the edge), network (no route to
 * the network: ENETUNREACH), unreachable (the host: no address, no route to it, the edge
 * could not reach it), refused (the destination refused: ECONNREFUSED), timeout, failed
 * (nothing was tried: the edge refused the stream itself, RST REFUSED).
 */
export type Refusal = 'blocked' | 'network' | 'unreachable' | 'refused' | 'timeout' | 'failed';

/**
 * Why a flow its decision tunnels went direct: the channel's tile was switched off after the
 * classifier was compiled (the decision's own reason says it tunnels). As hardening's
 * `<channel> channel down: fallback bypass`.
 */
export function channelOffReason(channel: string): string {
  return `${channel} channel off: bypass`;
}

/**
 * Maps a TunnelStream reset (the edge's answer to OPEN) to a refusal. A CONNECT_FAILED
 * reason is free text that holds the destination's name ("cannot resolve refused.test"):
 * only the errno token the edge puts in it counts (`connect failed: ECONNREFUSED from ...`).
 */
export function refusalOfReset(code: number, reason: string): Refusal {
  switch (code) {
    case ResetCode.BLOCKED:
      return 'blocked';
    case ResetCode.TIMEOUT:
      return 'timeout';
    case ResetCode.CONNECT_FAILED: {
      const errno = /\b(ECONNREFUSED|ENETUNREACH|ETIMEDOUT)\b/.exec(reason)?.[1];
      if (errno === 'ECONNREFUSED') return 'refused';
      if (errno === 'ENETUNREACH') return 'network';
      if (errno === 'ETIMEDOUT') return 'timeout';
      return 'unreachable';
    }
    case ResetCode.REFUSED:
      // The edge refused the stream itself (stream limit): no destination was tried.
      return 'failed';
    default:
      return 'unreachable';
  }
}

/** Maps a direct-connect socket error to a refusal. */
export function refusalOfError(err: NodeJS.ErrnoException): Refusal {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ENETUNREACH':
      return 'network';
    case 'ETIMEDOUT':
    case 'ESOCKETTIMEDOUT':
      return 'timeout';
    default:
      return 'unreachable';
  }
}

/**
 * The ICMP destination unreachable a direct network would have delivered for a refusal
 * (RFC 792 codes; Linux hands them to a connected socket as the errno in brackets): `net`
 * (code 0, ENETUNREACH), `host` (code 1, EHOSTUNREACH), `port` (code 3, ECONNREFUSED).
 */
export type Unreachable = 'net' | 'host' | 'port';

/**
 * The ICMP a refusal answers: network -> net, unreachable -> host, refused -> port.
 * Blocked (admin prohibited, answered elsewhere), timeout (nothing came back) and failed
 * (the edge refused the stream itself: nothing was tried) -> none.
 */
export function unreachableOf(r: Refusal): Unreachable | null {
  switch (r) {
    case 'network':
      return 'net';
    case 'unreachable':
      return 'host';
    case 'refused':
      return 'port';
    default:
      return null;
  }
}

/**
 * The ICMP behind a connected UDP socket's error: only the errnos Linux sets from an ICMP
 * destination unreachable (or from a route lookup that found none), not local errors
 * (EMSGSIZE, ENOBUFS, EPERM...), which a direct network would not answer either.
 */
export function unreachableOfError(err: { code?: string | undefined }): Unreachable | null {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'port';
    case 'ENETUNREACH':
      return 'net';
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
      return 'host';
    default:
      return null;
  }
}

/**
 * The ICMP behind the edge's reset of a udp stream: CONNECT_FAILED only, when its reason
 * says the destination could not be reached: a name (or name and port) the edge or its
 * connector cannot resolve, an address it has no route to (host), or the errno of its
 * connected socket (as `unreachableOfError`). BLOCKED, TIMEOUT, REFUSED and the rest -> none.
 */
export function unreachableOfReset(code: number, reason: string): Unreachable | null {
  if (code !== ResetCode.CONNECT_FAILED) return null;
  if (/\b(cannot resolve|no route to)\b/.test(reason)) return 'host';
  const errno = /\bE[A-Z]{3,}\b/.exec(reason)?.[0];
  return errno === undefined ? null : unreachableOfError({ code: errno });
}
