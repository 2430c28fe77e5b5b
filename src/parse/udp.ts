/** UDP header (RFC 768) by offset; `off` is the start of the UDP header. */
import { rd16 } from './checksum.js';

export const UDP_HEADER = 8;
export const UDP_SPORT = 0;
export const UDP_DPORT = 2;
export const UDP_LEN = 4;
export const UDP_CSUM = 6;

export const srcPort = (b: Uint8Array, o: number): number => rd16(b, o + UDP_SPORT);
export const dstPort = (b: Uint8Array, o: number): number => rd16(b, o + UDP_DPORT);
export const length = (b: Uint8Array, o: number): number => rd16(b, o + UDP_LEN);
export const checksumField = (b: Uint8Array, o: number): number => rd16(b, o + UDP_CSUM);
