/**
 * Builders for the few packets the stack originates itself: UDP replies from a header
 * template, TCP RST for refused flows, ICMP destination unreachable. IPv4 only (GSA
 * tunnels IPv4 only).
 */
import { checksum, fold, pseudo4, rd16, rd32, sum16, wr16, wr32 } from '../../parse/checksum.js';
import { ICMP_DEST_UNREACH } from '../../parse/icmp.js';
import { V4_CSUM, V4_DST, V4_ID, V4_SRC, V4_TOTAL_LEN } from '../../parse/ipv4.js';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../parse/packet.js';
import { ACK, RST } from '../../parse/tcp.js';

let ipId = 1;

function ipHeader(b: Buffer, total: number, proto: number, src: number, dst: number): void {
  b[0] = 0x45;
  b[1] = 0;
  wr16(b, V4_TOTAL_LEN, total);
  wr16(b, V4_ID, ipId);
  ipId = (ipId + 1) & 0xffff;
  wr16(b, 6, 0x4000); // DF
  b[8] = 64;
  b[9] = proto;
  wr16(b, V4_CSUM, 0);
  wr32(b, V4_SRC, src);
  wr32(b, V4_DST, dst);
  wr16(b, V4_CSUM, checksum(b, 0, 20));
}

/**
 * A 28-byte IPv4+UDP header template for replies `src:sport -> dst:dport`; `udpReply`
 * fills lengths, the IP id and both checksums.
 */
export function udpTemplate(src: number, sport: number, dst: number, dport: number): Buffer {
  const t = Buffer.alloc(28);
  ipHeader(t, 28, PROTO_UDP, src, dst);
  wr16(t, 20, sport);
  wr16(t, 22, dport);
  return t;
}

/** A complete IPv4/UDP packet: template + payload, lengths and checksums filled. */
export function udpReply(template: Uint8Array, payload: Uint8Array): Buffer {
  const len = 28 + payload.length;
  const b = Buffer.allocUnsafe(len);
  b.set(template, 0);
  b.set(payload, 28);
  wr16(b, V4_TOTAL_LEN, len);
  wr16(b, V4_ID, ipId);
  ipId = (ipId + 1) & 0xffff;
  wr16(b, V4_CSUM, 0);
  wr16(b, V4_CSUM, checksum(b, 0, 20));
  const ulen = len - 20;
  wr16(b, 24, ulen);
  wr16(b, 26, 0);
  const ps = pseudo4(rd32(b, V4_SRC), rd32(b, V4_DST), PROTO_UDP, ulen);
  let c = ~fold(sum16(b, 20, ulen, ps)) & 0xffff;
  if (c === 0) c = 0xffff; // RFC 768: zero means "no checksum"
  wr16(b, 26, c);
  return b;
}

/**
 * RST answering a segment `src:sport -> dst:dport` (seq, flags, payload length as seen):
 * sent from dst:dport to src:sport (RFC 9293 3.10.7.1).
 */
export function tcpRstFor(
  src: number,
  sport: number,
  dst: number,
  dport: number,
  seq: number,
  ackNum: number,
  flags: number,
  payloadLen: number,
): Buffer {
  const b = Buffer.alloc(40);
  ipHeader(b, 40, PROTO_TCP, dst, src);
  wr16(b, 20, dport);
  wr16(b, 22, sport);
  if (flags & ACK) {
    wr32(b, 24, ackNum);
    b[33] = RST;
  } else {
    // SYN and FIN each count one sequence number.
    const seg = payloadLen + (flags & 0x02 ? 1 : 0) + (flags & 0x01 ? 1 : 0);
    wr32(b, 24, 0);
    wr32(b, 28, (seq + seg) >>> 0);
    b[33] = RST | ACK;
  }
  b[32] = 5 << 4;
  wr16(b, 34, 0);
  wr16(b, 36, 0);
  const ps = pseudo4(dst, src, PROTO_TCP, 20);
  wr16(b, 36, ~fold(sum16(b, 20, 20, ps)) & 0xffff);
  return b;
}

/**
 * ICMP destination unreachable (type 3, `code`) quoting the offending packet's IP header
 * and first 8 bytes of payload (RFC 792), sent from `from` to the packet's source.
 */
export function icmpUnreachable(
  pkt: Uint8Array,
  off: number,
  ipHeaderLen: number,
  ipLen: number,
  code: number,
  from: number,
): Buffer {
  const quote = Math.min(ipLen, ipHeaderLen + 8);
  const total = 20 + 8 + quote;
  const b = Buffer.alloc(total);
  ipHeader(b, total, PROTO_ICMP, from, rd32(pkt, off + V4_SRC));
  b[20] = ICMP_DEST_UNREACH;
  b[21] = code;
  b.set(pkt.subarray(off, off + quote), 28);
  wr16(b, 22, checksum(b, 20, total - 20));
  return b;
}

/**
 * ICMP destination unreachable (type 3, `code`) for a UDP flow whose offending datagram is
 * gone, rebuilt from the flow's reply `template` (`udpTemplate(D, dp, S, sp)`): sent from D
 * to S, quoting the datagram `S:sp -> D:dp` as the application sent it (RFC 792: its IP
 * header and first 8 bytes): an IPv4 header (id 0, TTL 64, DF, checksum valid) and the UDP
 * header with `payloadLen` in its length and 0 for its checksum ("none", RFC 768). What
 * the receiving kernel needs to find the socket (addresses, protocol, ports) is exact.
 * Built only when a destination refused: allocates.
 */
export function icmpUnreachableForUdp(
  template: Uint8Array,
  payloadLen: number,
  code: number,
): Buffer {
  const total = 20 + 8 + 28;
  const b = Buffer.alloc(total);
  const app = rd32(template, V4_DST);
  const dst = rd32(template, V4_SRC);
  ipHeader(b, total, PROTO_ICMP, dst, app);
  b[20] = ICMP_DEST_UNREACH;
  b[21] = code;
  // The quoted datagram S:sp -> D:dp.
  const q = 28;
  b[q] = 0x45;
  wr16(b, q + V4_TOTAL_LEN, Math.min(65535, 28 + payloadLen));
  wr16(b, q + 6, 0x4000);
  b[q + 8] = 64;
  b[q + 9] = PROTO_UDP;
  wr32(b, q + V4_SRC, app);
  wr32(b, q + V4_DST, dst);
  wr16(b, q + V4_CSUM, checksum(b, q, 20));
  wr16(b, q + 20, rd16(template, 22));
  wr16(b, q + 22, rd16(template, 20));
  wr16(b, q + 24, Math.min(65535 - 20, 8 + payloadLen));
  wr16(b, 22, checksum(b, 20, total - 20));
  return b;
}

/** The IPv4 destination of a built packet (tests, logs). */
export function dst4Of(b: Uint8Array): number {
  return rd32(b, V4_DST);
}
export function totalLenOf(b: Uint8Array): number {
  return rd16(b, V4_TOTAL_LEN);
}
