/** TCP header (RFC 9293) by offset; `off` is the start of the TCP header. */
import { rd16, rd32 } from './checksum.js';

export const TCP_MIN_HEADER = 20;
export const TCP_SPORT = 0;
export const TCP_DPORT = 2;
export const TCP_SEQ = 4;
export const TCP_ACK = 8;
export const TCP_DATA_OFF = 12;
export const TCP_FLAGS = 13;
export const TCP_WINDOW = 14;
export const TCP_CSUM = 16;
export const TCP_URG = 18;

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;
export const ECE = 0x40;
export const CWR = 0x80;

export const srcPort = (b: Uint8Array, o: number): number => rd16(b, o + TCP_SPORT);
export const dstPort = (b: Uint8Array, o: number): number => rd16(b, o + TCP_DPORT);
export const seq = (b: Uint8Array, o: number): number => rd32(b, o + TCP_SEQ);
export const ack = (b: Uint8Array, o: number): number => rd32(b, o + TCP_ACK);
/** Header length in bytes (data offset x 4), options included. */
export const headerLength = (b: Uint8Array, o: number): number => (b[o + TCP_DATA_OFF]! >>> 4) << 2;
export const flags = (b: Uint8Array, o: number): number => b[o + TCP_FLAGS]!;
export const window = (b: Uint8Array, o: number): number => rd16(b, o + TCP_WINDOW);
export const checksumField = (b: Uint8Array, o: number): number => rd16(b, o + TCP_CSUM);
