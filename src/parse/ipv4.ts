/**
 * IPv4 header (RFC 791) by offset. Readers take `(buf, off)` where `off` is the start of
 * the IP header; they do not check bounds (decodePacket does, once).
 */
import { checksum, fold, rd16, rd32, sum16 } from './checksum.js';

export const IPV4_MIN_HEADER = 20;
export const V4_VER_IHL = 0;
export const V4_TOS = 1;
export const V4_TOTAL_LEN = 2;
export const V4_ID = 4;
export const V4_FLAGS_FRAG = 6;
export const V4_TTL = 8;
export const V4_PROTO = 9;
export const V4_CSUM = 10;
export const V4_SRC = 12;
export const V4_DST = 16;

export const V4_FLAG_DF = 0x4000;
export const V4_FLAG_MF = 0x2000;
export const V4_FRAG_MASK = 0x1fff;

export const version = (b: Uint8Array, o: number): number => b[o]! >>> 4;
/** Header length in bytes (IHL x 4), options included. */
export const headerLength = (b: Uint8Array, o: number): number => (b[o]! & 0x0f) << 2;
export const totalLength = (b: Uint8Array, o: number): number => rd16(b, o + V4_TOTAL_LEN);
export const ident = (b: Uint8Array, o: number): number => rd16(b, o + V4_ID);
export const flagsFrag = (b: Uint8Array, o: number): number => rd16(b, o + V4_FLAGS_FRAG);
/** Fragment offset in bytes. */
export const fragOffset = (b: Uint8Array, o: number): number =>
  (rd16(b, o + V4_FLAGS_FRAG) & V4_FRAG_MASK) << 3;
export const moreFragments = (b: Uint8Array, o: number): number =>
  (rd16(b, o + V4_FLAGS_FRAG) & V4_FLAG_MF) !== 0 ? 1 : 0;
export const ttl = (b: Uint8Array, o: number): number => b[o + V4_TTL]!;
export const proto = (b: Uint8Array, o: number): number => b[o + V4_PROTO]!;
export const headerChecksum = (b: Uint8Array, o: number): number => rd16(b, o + V4_CSUM);
export const src = (b: Uint8Array, o: number): number => rd32(b, o + V4_SRC);
export const dst = (b: Uint8Array, o: number): number => rd32(b, o + V4_DST);

/** The header checksum value the header should carry (computed with the field as zero). */
export function computeHeaderChecksum(b: Uint8Array, o: number): number {
  const hl = headerLength(b, o);
  return ~fold(sum16(b, o + 12, hl - 12, sum16(b, o, 10))) & 0xffff;
}

/** True when the stored header checksum is valid (the sum over the header folds to 0xffff). */
export function headerChecksumOk(b: Uint8Array, o: number): boolean {
  return checksum(b, o, headerLength(b, o)) === 0;
}
