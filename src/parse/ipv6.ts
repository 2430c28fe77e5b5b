/**
 * IPv6 header (RFC 8200) and the extension headers decodePacket walks: hop-by-hop (0),
 * routing (43), fragment (44), destination options (60), authentication (51). Readers
 * take `(buf, off)` at the start of the IPv6 header.
 */
import { rd16, rd32 } from './checksum.js';

export const IPV6_HEADER = 40;
export const V6_PAYLOAD_LEN = 4;
export const V6_NEXT_HEADER = 6;
export const V6_HOP_LIMIT = 7;
export const V6_SRC = 8;
export const V6_DST = 24;

export const NH_HOP_BY_HOP = 0;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ESP = 50;
export const NH_AUTH = 51;
export const NH_NONE = 59;
export const NH_DEST_OPTS = 60;
export const NH_ICMPV6 = 58;

export const payloadLength = (b: Uint8Array, o: number): number => rd16(b, o + V6_PAYLOAD_LEN);
export const nextHeader = (b: Uint8Array, o: number): number => b[o + V6_NEXT_HEADER]!;
export const hopLimit = (b: Uint8Array, o: number): number => b[o + V6_HOP_LIMIT]!;
/** Word `i` (0-3) of the source / destination address as an unsigned 32-bit number. */
export const srcWord = (b: Uint8Array, o: number, i: number): number => rd32(b, o + V6_SRC + 4 * i);
export const dstWord = (b: Uint8Array, o: number, i: number): number => rd32(b, o + V6_DST + 4 * i);

/** Copy the addresses into four-word arrays (no allocation). */
export function readAddrs(b: Uint8Array, o: number, src: Uint32Array, dst: Uint32Array): void {
  for (let i = 0; i < 4; i++) {
    src[i] = rd32(b, o + V6_SRC + 4 * i);
    dst[i] = rd32(b, o + V6_DST + 4 * i);
  }
}

/** Length in bytes of the generic extension header at `o` (hop-by-hop, routing, dest-opts). */
export const extLength = (b: Uint8Array, o: number): number => (b[o + 1]! + 1) << 3;
/** Length in bytes of an authentication header at `o` (RFC 4302: (len + 2) x 4). */
export const authLength = (b: Uint8Array, o: number): number => (b[o + 1]! + 2) << 2;
/** Fragment header fields (8 bytes). */
export const fragHeaderOffset = (b: Uint8Array, o: number): number => rd16(b, o + 2) & 0xfff8;
export const fragHeaderMore = (b: Uint8Array, o: number): number => b[o + 3]! & 1;
