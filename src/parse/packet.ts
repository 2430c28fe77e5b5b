/**
 * decodePacket: one pass over an IP packet into a REUSED record. Never throws and never
 * allocates: bad input becomes a verdict ('truncated', 'malformed', 'fragment',
 * 'unsupported'); addresses are numbers (IPv4 one uint32, IPv6 four words).
 *
 * @example
 * const rec = newPacket();
 * decodePacket(buf, rec, off, len);
 * if (rec.verdict === 'ok' && rec.proto === PROTO_TCP) ... rec.dst4, rec.dstPort ...
 */
import * as icmp from './icmp.js';
import * as v4 from './ipv4.js';
import * as v6 from './ipv6.js';
import * as tcp from './tcp.js';
import * as udp from './udp.js';

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

export type PacketVerdict = 'ok' | 'truncated' | 'malformed' | 'fragment' | 'unsupported';

export interface DecodedPacket {
  verdict: PacketVerdict;
  /** 4, 6, or 0 when the version nibble was not read. */
  family: number;
  /** Transport protocol (after IPv6 extension headers); -1 when unknown. */
  proto: number;
  /** Start of the IP header in the buffer and the packet's IP length (total length). */
  ipOff: number;
  ipLen: number;
  /** IP header length (IPv4 with options; IPv6 40 + extension headers). */
  ipHeaderLen: number;
  /** Start of the transport header. */
  l4Off: number;
  /** Transport segment length (header + payload). */
  l4Len: number;
  src4: number;
  dst4: number;
  src6: Uint32Array;
  dst6: Uint32Array;
  ttl: number;
  srcPort: number;
  dstPort: number;
  /** TCP flags byte; 0 for other protocols. */
  tcpFlags: number;
  icmpType: number;
  icmpCode: number;
  /** Transport payload (after the TCP/UDP/ICMP header). */
  payloadOff: number;
  payloadLen: number;
}

export function newPacket(): DecodedPacket {
  return {
    verdict: 'truncated',
    family: 0,
    proto: -1,
    ipOff: 0,
    ipLen: 0,
    ipHeaderLen: 0,
    l4Off: 0,
    l4Len: 0,
    src4: 0,
    dst4: 0,
    src6: new Uint32Array(4),
    dst6: new Uint32Array(4),
    ttl: 0,
    srcPort: 0,
    dstPort: 0,
    tcpFlags: 0,
    icmpType: 0,
    icmpCode: 0,
    payloadOff: 0,
    payloadLen: 0,
  };
}

/** At most this many IPv6 extension headers are walked (more: 'unsupported'). */
export const MAX_V6_EXTENSIONS = 8;

/**
 * Decode the IP packet at buf[off, off+len). Fills `rec` and returns its verdict.
 * `len` defaults to the rest of the buffer.
 */
export function decodePacket(
  buf: Uint8Array,
  rec: DecodedPacket,
  off = 0,
  len = buf.length - off,
): PacketVerdict {
  rec.family = 0;
  rec.proto = -1;
  rec.ipOff = off;
  rec.ipLen = 0;
  rec.ipHeaderLen = 0;
  rec.l4Off = off;
  rec.l4Len = 0;
  rec.srcPort = 0;
  rec.dstPort = 0;
  rec.tcpFlags = 0;
  rec.icmpType = 0;
  rec.icmpCode = 0;
  rec.payloadOff = off;
  rec.payloadLen = 0;
  if (off < 0 || len <= 0 || off + len > buf.length) return setVerdict(rec, 'truncated');
  const ver = buf[off]! >>> 4;
  if (ver === 4) return decode4(buf, rec, off, len);
  if (ver === 6) return decode6(buf, rec, off, len);
  return setVerdict(rec, 'malformed');
}

function decode4(buf: Uint8Array, rec: DecodedPacket, off: number, len: number): PacketVerdict {
  rec.family = 4;
  if (len < v4.IPV4_MIN_HEADER) return setVerdict(rec, 'truncated');
  const hl = v4.headerLength(buf, off);
  if (hl < v4.IPV4_MIN_HEADER) return setVerdict(rec, 'malformed');
  if (hl > len) return setVerdict(rec, 'truncated');
  const total = v4.totalLength(buf, off);
  if (total < hl) return setVerdict(rec, 'malformed');
  rec.src4 = v4.src(buf, off);
  rec.dst4 = v4.dst(buf, off);
  rec.ttl = v4.ttl(buf, off);
  rec.proto = v4.proto(buf, off);
  rec.ipHeaderLen = hl;
  if (total > len) return setVerdict(rec, 'truncated');
  rec.ipLen = total;
  if (!v4.headerChecksumOk(buf, off)) return setVerdict(rec, 'malformed');
  const ff = v4.flagsFrag(buf, off);
  if ((ff & (v4.V4_FLAG_MF | v4.V4_FRAG_MASK)) !== 0) return setVerdict(rec, 'fragment');
  return decodeL4(buf, rec, off + hl, total - hl);
}

function decode6(buf: Uint8Array, rec: DecodedPacket, off: number, len: number): PacketVerdict {
  rec.family = 6;
  if (len < v6.IPV6_HEADER) return setVerdict(rec, 'truncated');
  v6.readAddrs(buf, off, rec.src6, rec.dst6);
  rec.ttl = v6.hopLimit(buf, off);
  const total = v6.IPV6_HEADER + v6.payloadLength(buf, off);
  if (total > len) return setVerdict(rec, 'truncated');
  rec.ipLen = total;
  const end = off + total;
  let nh = v6.nextHeader(buf, off);
  let p = off + v6.IPV6_HEADER;
  for (let n = 0; ; n++) {
    if (nh === PROTO_TCP || nh === PROTO_UDP || nh === PROTO_ICMPV6) break;
    rec.proto = nh;
    if (n >= MAX_V6_EXTENSIONS) return setVerdict(rec, 'unsupported');
    if (nh === v6.NH_HOP_BY_HOP || nh === v6.NH_ROUTING || nh === v6.NH_DEST_OPTS) {
      if (p + 8 > end) return setVerdict(rec, 'truncated');
      const el = v6.extLength(buf, p);
      if (p + el > end) return setVerdict(rec, 'truncated');
      nh = buf[p]!;
      p += el;
    } else if (nh === v6.NH_AUTH) {
      if (p + 8 > end) return setVerdict(rec, 'truncated');
      const el = v6.authLength(buf, p);
      if (p + el > end) return setVerdict(rec, 'truncated');
      nh = buf[p]!;
      p += el;
    } else if (nh === v6.NH_FRAGMENT) {
      if (p + 8 > end) return setVerdict(rec, 'truncated');
      rec.proto = buf[p]!;
      rec.ipHeaderLen = p + 8 - off;
      return setVerdict(rec, 'fragment');
    } else {
      // No next header (59), ESP (50), or an unknown protocol.
      rec.ipHeaderLen = p - off;
      return setVerdict(rec, 'unsupported');
    }
  }
  rec.proto = nh;
  rec.ipHeaderLen = p - off;
  return decodeL4(buf, rec, p, end - p);
}

function decodeL4(buf: Uint8Array, rec: DecodedPacket, o: number, l4len: number): PacketVerdict {
  const proto = rec.proto;
  rec.l4Off = o;
  rec.l4Len = l4len;
  rec.payloadOff = o;
  if (proto === PROTO_TCP) {
    if (l4len < tcp.TCP_MIN_HEADER) return setVerdict(rec, 'truncated');
    rec.srcPort = tcp.srcPort(buf, o);
    rec.dstPort = tcp.dstPort(buf, o);
    rec.tcpFlags = tcp.flags(buf, o);
    const hl = tcp.headerLength(buf, o);
    if (hl < tcp.TCP_MIN_HEADER) return setVerdict(rec, 'malformed');
    if (hl > l4len) return setVerdict(rec, 'truncated');
    rec.payloadOff = o + hl;
    rec.payloadLen = l4len - hl;
    return setVerdict(rec, 'ok');
  }
  if (proto === PROTO_UDP) {
    if (l4len < udp.UDP_HEADER) return setVerdict(rec, 'truncated');
    rec.srcPort = udp.srcPort(buf, o);
    rec.dstPort = udp.dstPort(buf, o);
    const ul = udp.length(buf, o);
    if (ul < udp.UDP_HEADER) return setVerdict(rec, 'malformed');
    if (ul > l4len) return setVerdict(rec, 'truncated');
    rec.l4Len = ul;
    rec.payloadOff = o + udp.UDP_HEADER;
    rec.payloadLen = ul - udp.UDP_HEADER;
    return setVerdict(rec, 'ok');
  }
  if ((proto === PROTO_ICMP && rec.family === 4) || (proto === PROTO_ICMPV6 && rec.family === 6)) {
    if (l4len < 4) return setVerdict(rec, 'truncated');
    rec.icmpType = icmp.type(buf, o);
    rec.icmpCode = icmp.code(buf, o);
    const hl = l4len >= icmp.ICMP_HEADER ? icmp.ICMP_HEADER : 4;
    rec.payloadOff = o + hl;
    rec.payloadLen = l4len - hl;
    return setVerdict(rec, 'ok');
  }
  return setVerdict(rec, 'unsupported');
}

function setVerdict(rec: DecodedPacket, v: PacketVerdict): PacketVerdict {
  rec.verdict = v;
  return v;
}
