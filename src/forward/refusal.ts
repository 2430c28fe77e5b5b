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
