/**
 * The TUN's synthetic resolver takes only messages shaped as a stub resolver's query (one
 * question, no answer or authority records, at most one additional: EDNS): found by fuzzing,
 * a 64 KiB datagram of thousands of questions, each a compression pointer to the one before,
 * took the decoder hundreds of milliseconds of the one thread every flow runs on.
 */
import dnsPacket from 'dns-packet';
import t from 'tap';
import { DnsInterceptor, plainQuery } from '../../src/capture/tun/dns.js';

/** `n` questions: `a.test`, then each a pointer to the question before it. */
function pointerChain(n: number): Buffer {
  const first = Buffer.from([1, 0x61, 4, 0x74, 0x65, 0x73, 0x74, 0, 0, 1, 0, 1]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0x4242, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(n, 4);
  const parts = [header, first];
  let prev = 12;
  let at = 12 + first.length;
  for (let i = 1; i < n; i++) {
    const q = Buffer.from([0xc0 | (prev >> 8), prev & 0xff, 0, 1, 0, 1]);
    parts.push(q);
    prev = at;
    at += q.length;
  }
  return Buffer.concat(parts);
}

t.test('a message of many questions is dropped before it is decoded', async (t) => {
  const dns = new DnsInterceptor({ acquire: () => true });
  t.teardown(() => dns.close());
  const bomb = pointerChain(10_000);
  t.ok(bomb.length < 65_536, `one datagram (${bomb.length} bytes)`);
  t.equal(plainQuery(bomb), false);
  let answered = 0;
  t.equal(
    dns.handle(bomb, () => answered++, 0),
    false,
    'not taken',
  );
  t.equal(dns.counters.dnsMalformed, 1);
  t.equal(answered, 0);
});

t.test('stub queries, EDNS included, are taken; other shapes are not', async (t) => {
  const dns = new DnsInterceptor({ acquire: (n) => n === 'app.contoso.test' });
  t.teardown(() => dns.close());
  const query = (extra: Partial<dnsPacket.Packet> = {}) =>
    dnsPacket.encode({
      id: 7,
      type: 'query',
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: 'A', name: 'app.contoso.test' }],
      ...extra,
    });
  const plain = query();
  const edns = query({
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  });
  for (const [what, msg] of [
    ['plain', plain],
    ['EDNS', edns],
  ] as const) {
    t.ok(plainQuery(msg), what);
    let reply: Buffer | null = null;
    t.ok(
      dns.handle(msg, (r) => (reply = r), 0),
      `${what}: taken`,
    );
    t.match(dnsPacket.decode(reply!).answers?.[0], { data: /^6\.6\./ }, `${what}: answered`);
  }
  const two = query({
    questions: [
      { type: 'A', name: 'app.contoso.test' },
      { type: 'A', name: 'b.test' },
    ],
  });
  const withAnswer = query({ answers: [{ type: 'A', name: 'x.test', data: '192.0.2.1' }] });
  for (const [what, msg] of [
    ['two questions', two],
    ['an answer record', withAnswer],
    ['a short message', Buffer.alloc(11)],
  ] as const) {
    t.notOk(plainQuery(msg), what);
    t.notOk(
      dns.handle(msg, () => {}, 0),
      `${what}: not taken`,
    );
  }
});
