import fc from 'fast-check';
import t from 'tap';
import {
  applyDelta,
  checksum,
  deltaWord,
  deltaWord32,
  pseudo4,
  rd16,
  sum16,
  update16,
  update32,
  wr16,
  wr32,
} from '../../src/parse/checksum.js';
import * as v4 from '../../src/parse/ipv4.js';
import {
  decodePacket,
  newPacket,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
} from '../../src/parse/packet.js';
import * as tcp from '../../src/parse/tcp.js';
import { parseIPv4 } from '../../src/util/ip.js';
import {
  DNS_QUERY,
  ICMP6_RS,
  IPV4_OPTIONS_ICMP,
  IPV6_EXT_UDP,
  IPV6_FRAGMENT,
  TCP_SYN,
  UDP_443,
} from './fixtures.js';

const l4Ok = (b: Buffer, rec = newPacket()): boolean => {
  decodePacket(b, rec);
  const ps = pseudo4(rec.src4, rec.dst4, rec.proto, rec.l4Len);
  return checksum(b, rec.l4Off, rec.l4Len, ps) === 0;
};

t.test('real TCP SYN', async (t) => {
  const rec = newPacket();
  t.equal(decodePacket(TCP_SYN, rec), 'ok');
  t.equal(rec.family, 4);
  t.equal(rec.proto, PROTO_TCP);
  t.equal(rec.src4, parseIPv4('10.255.0.1'));
  t.equal(rec.dst4, parseIPv4('203.0.113.10'));
  t.equal(rec.srcPort, 57588);
  t.equal(rec.dstPort, 443);
  t.equal(rec.tcpFlags, tcp.SYN);
  t.equal(rec.ipHeaderLen, 20);
  t.equal(tcp.headerLength(TCP_SYN, rec.l4Off), 40, 'options included');
  t.equal(rec.payloadLen, 0);
  t.equal(rec.payloadOff, 60);
  t.equal(tcp.seq(TCP_SYN, rec.l4Off), 0xcd73a5d7);
  t.ok(v4.headerChecksumOk(TCP_SYN, 0));
  t.equal(v4.computeHeaderChecksum(TCP_SYN, 0), v4.headerChecksum(TCP_SYN, 0));
  t.ok(l4Ok(TCP_SYN), 'TCP checksum verifies');
});

t.test('real UDP and DNS', async (t) => {
  const rec = newPacket();
  t.equal(decodePacket(UDP_443, rec), 'ok');
  t.equal(rec.proto, PROTO_UDP);
  t.equal(rec.dstPort, 443);
  t.equal(
    UDP_443.subarray(rec.payloadOff, rec.payloadOff + rec.payloadLen).toString(),
    'hello quic',
  );
  t.ok(l4Ok(UDP_443));
  t.equal(decodePacket(DNS_QUERY, rec), 'ok');
  t.equal(rec.dst4, parseIPv4('6.6.255.254'));
  t.equal(rec.dstPort, 53);
  t.equal(rec.payloadLen, 33);
  t.ok(l4Ok(DNS_QUERY));
});

t.test('IPv4 options (IHL 6)', async (t) => {
  const rec = newPacket();
  t.equal(decodePacket(IPV4_OPTIONS_ICMP, rec), 'ok');
  t.equal(rec.ipHeaderLen, 24);
  t.equal(rec.l4Off, 24);
  t.equal(rec.proto, PROTO_ICMP);
  t.equal(rec.icmpType, 8);
  t.equal(checksum(IPV4_OPTIONS_ICMP, 24, 8), 0, 'ICMP checksum');
});

t.test('IPv6: ICMPv6, extension headers, fragment', async (t) => {
  const rec = newPacket();
  t.equal(decodePacket(ICMP6_RS, rec), 'ok');
  t.equal(rec.family, 6);
  t.equal(rec.proto, PROTO_ICMPV6);
  t.equal(rec.icmpType, 133, 'router solicitation');
  t.equal(rec.dst6[0], 0xff020000);
  t.equal(rec.dst6[3], 2);
  t.equal(decodePacket(IPV6_EXT_UDP, rec), 'ok');
  t.equal(rec.proto, PROTO_UDP);
  t.equal(rec.ipHeaderLen, 56, '40 + HBH 8 + dest opts 8');
  t.equal(rec.srcPort, 1000);
  t.equal(rec.dstPort, 53);
  t.equal(
    IPV6_EXT_UDP.subarray(rec.payloadOff, rec.payloadOff + rec.payloadLen).toString(),
    'test',
  );
  t.equal(decodePacket(IPV6_FRAGMENT, rec), 'fragment');
  t.equal(rec.proto, PROTO_UDP);
});

t.test('verdicts for bad input', async (t) => {
  const rec = newPacket();
  t.equal(decodePacket(Buffer.alloc(0), rec), 'truncated');
  t.equal(decodePacket(TCP_SYN.subarray(0, 19), rec), 'truncated');
  t.equal(decodePacket(TCP_SYN.subarray(0, 40), rec), 'truncated', 'total length beyond buffer');
  t.equal(decodePacket(Buffer.from([0x50, 0, 0, 0]), rec), 'malformed', 'version 5');
  const badIhl = Buffer.from(TCP_SYN);
  badIhl[0] = 0x44;
  t.equal(decodePacket(badIhl, rec), 'malformed', 'IHL 4');
  const badSum = Buffer.from(TCP_SYN);
  badSum[10] ^= 0xff;
  t.equal(decodePacket(badSum, rec), 'malformed', 'header checksum');
  const frag = Buffer.from(UDP_443);
  wr16(frag, 6, 0x2000); // MF
  wr16(frag, 10, 0);
  wr16(frag, 10, v4.computeHeaderChecksum(frag, 0));
  t.equal(decodePacket(frag, rec), 'fragment');
  const gre = Buffer.from(UDP_443);
  gre[9] = 47;
  wr16(gre, 10, 0);
  wr16(gre, 10, v4.computeHeaderChecksum(gre, 0));
  t.equal(decodePacket(gre, rec), 'unsupported');
  const badDoff = Buffer.from(TCP_SYN);
  badDoff[32] = 0x40; // data offset 4
  t.equal(decodePacket(badDoff, rec), 'malformed');
  const longDoff = Buffer.from(TCP_SYN);
  longDoff[32] = 0xf0; // 60 bytes > 40 available
  t.equal(decodePacket(longDoff, rec), 'truncated');
  const udpLen = Buffer.from(UDP_443);
  wr16(udpLen, 24, 4);
  t.equal(decodePacket(udpLen, rec), 'malformed', 'UDP length < 8');
  t.equal(decodePacket(IPV6_EXT_UDP.subarray(0, 50), rec), 'truncated');
  // A trailing pad after the IP packet is ignored (Ethernet minimum frames do this).
  t.equal(decodePacket(Buffer.concat([UDP_443, Buffer.alloc(6)]), rec), 'ok');
  t.equal(rec.ipLen, UDP_443.length);
  // Offsets into a larger buffer.
  const big = Buffer.concat([Buffer.alloc(7, 0xaa), TCP_SYN, Buffer.alloc(3)]);
  t.equal(decodePacket(big, rec, 7, TCP_SYN.length), 'ok');
  t.equal(rec.dstPort, 443);
  t.equal(decodePacket(big, rec, 7, 1000), 'truncated', 'len past the buffer');
});

t.test('RFC 1624 incremental updates equal a full recomputation', async (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 20, maxLength: 200 }),
      fc.nat({ max: 0xffff }),
      fc.nat({ max: 0xffffffff }),
      (bytes, new16, new32) => {
        const b = Buffer.from(bytes.length % 2 ? [...bytes, 0] : bytes);
        wr16(b, 0, 0);
        wr16(b, 0, checksum(b, 0, b.length));
        const c0 = rd16(b, 0);
        const old16 = rd16(b, 4);
        wr16(b, 4, new16);
        const c1 = update16(c0, old16, new16);
        const old32 = ((b[8]! << 24) | (b[9]! << 16) | (b[10]! << 8) | b[11]!) >>> 0;
        wr32(b, 8, new32);
        const c2 = update32(c1, old32, new32);
        wr16(b, 0, c2);
        // The packet verifies (sums to 0xffff -> checksum 0), also via combined deltas.
        const viaDelta = applyDelta(c0, deltaWord32(deltaWord(0, old16, new16), old32, new32));
        return checksum(b, 0, b.length) === 0 && (viaDelta === c2 || viaDelta + c2 === 0xffff);
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2000 random headers');
});

t.test('sum16 handles odd lengths and matches a naive sum', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      let s = 0;
      for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
      return sum16(bytes, 0, bytes.length) === s;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

t.test('fuzz: decodePacket never throws, verdicts are total, fields stay in bounds', async (t) => {
  const rec = newPacket();
  const verdicts = new Set(['ok', 'truncated', 'malformed', 'fragment', 'unsupported']);
  const seeds = [
    TCP_SYN,
    UDP_443,
    DNS_QUERY,
    ICMP6_RS,
    IPV4_OPTIONS_ICMP,
    IPV6_EXT_UDP,
    IPV6_FRAGMENT,
  ];
  const check = (b: Uint8Array, off = 0, len = b.length - off): boolean => {
    const v = decodePacket(b, rec, off, len);
    if (!verdicts.has(v)) return false;
    if (v === 'ok') {
      const end = off + len;
      if (rec.payloadOff < off || rec.payloadOff + rec.payloadLen > end) return false;
      if (rec.l4Off + rec.l4Len > end || rec.ipOff + rec.ipLen > end) return false;
    }
    return true;
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (b) => check(b)),
    { numRuns: 5000 },
  );
  // Mutations of real packets: flip bytes, cut, extend.
  fc.assert(
    fc.property(
      fc.constantFrom(...seeds),
      fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 6 }),
      fc.nat({ max: 80 }),
      (seed, flips, cut) => {
        const b = Buffer.from(seed);
        for (const [i, v] of flips) b[i % b.length] = v;
        return check(b) && check(b.subarray(0, Math.max(0, b.length - cut)));
      },
    ),
    { numRuns: 5000 },
  );
  t.pass('10000 random and mutated packets');
});
