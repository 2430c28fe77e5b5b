/**
 * Packet decoders by offset (IPv4, IPv6 with extension headers, TCP, UDP, ICMP) and the
 * Internet checksum. Each header module exports offsets and `(buf, off) => number`
 * readers; `decodePacket` fills a reused record and never throws.
 *
 * @packageDocumentation
 */
export * as checksum from './checksum.js';
export * as icmp from './icmp.js';
export * as ipv4 from './ipv4.js';
export * as ipv6 from './ipv6.js';
export * from './packet.js';
export * as tcp from './tcp.js';
export * as udp from './udp.js';
