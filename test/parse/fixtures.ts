/**
 * Packet fixtures as hex. "Real" ones were read from a TUN device in a namespace (Linux
 * 6.x, packets the kernel emitted for node/curl clients); hand-built ones say so, and
 * their checksums are checked by the parser tests (and the kernel test feeds similar
 * builds back to the kernel).
 */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Real: TCP SYN 10.255.0.1:57588 -> 203.0.113.10:443, MSS/SACK/TS/WS options (60 bytes). */
export const TCP_SYN = hex(
  '4500003c503440004006a37d0aff0001cb00710ae0f401bbcd73a5d700000000a002ffd75ba700000204ffd70402080a1fed3567000000000103030a',
);
/** Real: UDP 10.255.0.1:50147 -> 198.51.100.7:443, payload "hello quic". */
export const UDP_443 = hex(
  '4500002605d840004011ffb40aff0001c6336407c3e301bb0012e62568656c6c6f2071756963',
);
/** Real: DNS A query for app.contoso.com to 6.6.255.254:53 (glibc resolver). */
export const DNS_QUERY = hex(
  '4500003d07f54000401121b70aff00010606fffea3f500350029254fdcca010000010000000000000361707007636f6e746f736f03636f6d0000010001',
);
/** Real: ICMPv6 router solicitation fe80::... -> ff02::2 (the kernel sends it on link up). */
export const ICMP6_RS = hex(
  '6000000000083afffe8000000000000051ef96926ebf8795ff02000000000000000000000000000285009e6000000000',
);

/**
 * Hand-built: IPv4 with 4 bytes of options (IHL 6: NOP NOP NOP EOL), ICMP echo request
 * 10.255.0.2 -> 10.255.0.1 (test/tun/device.test.ts writes it into a TUN: the kernel answers).
 */
export const IPV4_OPTIONS_ICMP = hex(
  '4600002000010000400161db0aff00020aff0001010101000800f7fe00010000',
);

/** Hand-built: IPv6 hop-by-hop (8) + destination options (8) + UDP 1000 -> 53, 4-byte payload. */
export const IPV6_EXT_UDP = hex(
  '60000000 001c 00 40' +
    '20010db8000000000000000000000001' +
    '20010db8000000000000000000000002' +
    '3c00 01 04 00000000' + // hop-by-hop: next=60, len 0, PadN(4)
    '1100 01 04 00000000' + // dest opts: next=17, len 0, PadN(4)
    '03e8 0035 000c 0000 74657374',
);

/** Hand-built: IPv6 with a fragment header (first fragment of UDP). */
export const IPV6_FRAGMENT = hex(
  '60000000 0010 2c 40' +
    '20010db8000000000000000000000001' +
    '20010db8000000000000000000000002' +
    '1100 0001 12345678' + // fragment: next=17, offset 0, M=1
    '03e8 0035 0010 0000',
);
