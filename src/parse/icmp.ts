/** ICMP (RFC 792) and ICMPv6 (RFC 4443) header by offset. */
import { rd16 } from './checksum.js';

export const ICMP_HEADER = 8;
export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CSUM = 2;
/** Echo identifier / sequence, or the unused/next-hop-MTU word of errors. */
export const ICMP_REST = 4;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
/** Destination unreachable codes. */
export const UNREACH_NET = 0;
export const UNREACH_HOST = 1;
export const UNREACH_PORT = 3;
export const UNREACH_FRAG_NEEDED = 4;
/** Communication administratively prohibited (RFC 1812). */
export const UNREACH_ADMIN_PROHIBITED = 13;

export const ICMP6_DEST_UNREACH = 1;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;

export const type = (b: Uint8Array, o: number): number => b[o + ICMP_TYPE]!;
export const code = (b: Uint8Array, o: number): number => b[o + ICMP_CODE]!;
export const checksumField = (b: Uint8Array, o: number): number => rd16(b, o + ICMP_CSUM);
