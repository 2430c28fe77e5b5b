import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import t from 'tap';
import { FakeDevice } from '../../src/capture/tun/device.js';
import { SyntheticPool } from '../../src/capture/tun/dns.js';
import {
  type FlowVerdict,
  type TunFlow,
  TunStack,
  unaccounted,
} from '../../src/capture/tun/stack.js';
import type { Flow } from '../../src/classify/types.js';
import { tunMetrics } from '../../src/client/tun-capture.js';
import { rd32 } from '../../src/parse/checksum.js';
import { headerChecksumOk } from '../../src/parse/ipv4.js';
import { ACK, FIN, PSH, RST, SYN } from '../../src/parse/tcp.js';
import { formatIPv4 } from '../../src/util/ip.js';
import { DNS_QUERY, ICMP6_RS, IPV6_FRAGMENT, TCP_SYN, UDP_443 } from '../parse/fixtures.js';
import { ip, tcp4, udp4, verify } from './helpers.js';

const LISTEN = 4000;
const APP = '10.255.0.1';

function mk(opts: Partial<ConstructorParameters<typeof TunStack>[0]> = {}) {
  const dev = new FakeDevice();
  const stack = new TunStack({ device: dev, listen: false, listenPort: LISTEN, ...opts });
  t.teardown(() => stack.close());
  return { dev, stack };
}

t.test(
  'TCP NAT: SYN to D:dp becomes natAddress:n -> tunAddress:listenPort, and back',
  async (t) => {
    const { dev, stack } = mk();
    dev.inject([TCP_SYN]);
    const [out] = dev.take();
    t.ok(out, 'one packet written back');
    const { ok, rec } = verify(out!);
    t.ok(ok, 'IPv4 and TCP checksums valid after the incremental update');
    t.equal(formatIPv4(rec.src4), '10.255.0.2');
    t.equal(formatIPv4(rec.dst4), '10.255.0.1');
    t.equal(rec.srcPort, 10000, 'first NAT port');
    t.equal(rec.dstPort, LISTEN);
    t.equal(out!.length, TCP_SYN.length, 'options and length untouched');
    t.same(out!.subarray(24, 36), TCP_SYN.subarray(24, 36), 'seq, ack, flags, window kept');
    t.same(out!.subarray(38), TCP_SYN.subarray(38), 'urgent pointer and options kept');
    t.same(stack.lookupNat(10000), {
      srcIp: ip(APP),
      srcPort: 57588,
      dstIp: ip('203.0.113.10'),
      dstPort: 443,
    });

    // The kernel's SYN-ACK from the listener is rewritten to come from the original destination.
    dev.inject([tcp4('10.255.0.1', LISTEN, '10.255.0.2', 10000, SYN | ACK, 777, 0xcd73a5d8)]);
    const [back] = dev.take();
    const v = verify(back!);
    t.ok(v.ok, 'reply checksums valid');
    t.equal(formatIPv4(v.rec.src4), '203.0.113.10');
    t.equal(v.rec.srcPort, 443);
    t.equal(formatIPv4(v.rec.dst4), APP);
    t.equal(v.rec.dstPort, 57588);
    t.equal(stack.counters.tcpOut, 1);
    t.equal(stack.counters.tcpIn, 1);
    t.equal(stack.counters.natEntries, 1);
    t.equal(unaccounted(stack.counters), 0);
  },
);

t.test('classify is called once per flow; the tag travels with the flow', async (t) => {
  const seen: Flow[] = [];
  const { dev, stack } = mk({
    hooks: {
      classify(f: TunFlow) {
        const asFlow: Flow = f; // structurally a classifier Flow
        seen.push({ ...asFlow, ip6: new Uint32Array(4) });
        f.tag = 'rule-42';
        return 'accept';
      },
    },
  });
  dev.inject([TCP_SYN, TCP_SYN]); // SYN + retransmission
  dev.inject([tcp4(APP, 57588, '203.0.113.10', 443, ACK, 1, 1)]);
  dev.inject([
    tcp4(APP, 57588, '203.0.113.10', 443, ACK | PSH, 1, 1, Buffer.from('GET / HTTP/1.1\r\n\r\n')),
  ]);
  t.equal(seen.length, 1);
  t.equal(seen[0]!.port, 443);
  t.equal(seen[0]!.ip4, ip('203.0.113.10'));
  t.equal(seen[0]!.proto, 6);
  t.equal(dev.take().length, 4);
  t.equal(stack.counters.tcpOut, 4);
  t.equal(stack.counters.natEntries, 1);
});

t.test("'reset' answers the SYN with RST|ACK from the destination; 'drop' is silent", async (t) => {
  let verdict: FlowVerdict = 'reset';
  const { dev, stack } = mk({ hooks: { classify: () => verdict } });
  dev.inject([TCP_SYN]);
  const [rst] = dev.take();
  const v = verify(rst!);
  t.ok(v.ok, 'RST checksums valid');
  t.equal(v.rec.tcpFlags, RST | ACK);
  t.equal(formatIPv4(v.rec.src4), '203.0.113.10');
  t.equal(v.rec.srcPort, 443);
  t.equal(v.rec.dstPort, 57588);
  t.equal(rd32(rst!, 28), (0xcd73a5d7 + 1) >>> 0, 'ack = SYN seq + 1');
  t.equal(stack.counters.natEntries, 0, 'no NAT entry for a reset flow');
  verdict = 'drop';
  dev.inject([TCP_SYN]);
  t.equal(dev.take().length, 0);
  t.equal(stack.counters.dropTcpDeny, 1);
  t.equal(stack.counters.rejected, 1);
  t.equal(unaccounted(stack.counters), 0);
});

t.test('a segment of no known flow gets a RST (a RST gets nothing)', async (t) => {
  const { dev, stack } = mk();
  dev.inject([tcp4(APP, 40000, '198.51.100.1', 80, ACK, 5, 9)]);
  const [rst] = dev.take();
  t.ok(verify(rst!).ok);
  t.equal(rst![33], RST);
  t.equal(rd32(rst!, 24), 9, 'seq = their ack');
  dev.inject([tcp4(APP, 40000, '198.51.100.1', 80, RST, 5, 9)]);
  t.equal(dev.take().length, 0);
  dev.inject([tcp4('10.255.0.1', LISTEN, '10.255.0.2', 12345, ACK, 1, 1)]);
  t.equal(dev.take().length, 0, 'listener packet for an unknown NAT port is dropped');
  t.equal(stack.counters.dropTcpNoFlow, 3);
});

t.test('NAT table is bounded; closed entries expire and their ports are reused', async (t) => {
  const { dev, stack } = mk({ natPortMin: 20000, natPortMax: 20003, tcpClosedMs: 0 });
  // Four connections that complete their handshake fill the table.
  for (let i = 0; i < 4; i++) {
    dev.inject([tcp4(APP, 30000 + i, '192.0.2.9', 80, SYN, 100, 0)]);
    dev.inject([tcp4('10.255.0.1', LISTEN, '10.255.0.2', 20000 + i, SYN | ACK, 500, 101)]);
    dev.inject([tcp4(APP, 30000 + i, '192.0.2.9', 80, ACK, 101, 501)]);
  }
  dev.take();
  for (let i = 4; i < 6; i++) dev.inject([tcp4(APP, 30000 + i, '192.0.2.9', 80, SYN)]);
  const outs = dev.take();
  t.equal(stack.counters.natEntries, 4);
  t.equal(stack.counters.dropTcpNatFull, 2);
  t.equal(outs.filter((p) => p[33] === (RST | ACK)).length, 2, 'the overflow flows are reset');
  t.equal(stack.counters.tcpHalfOpenEvicted, 0, 'established entries are never evicted');
  // Close flow 0 both ways (FIN from app, FIN from listener): expires after tcpClosedMs.
  dev.inject([tcp4(APP, 30000, '192.0.2.9', 80, FIN | ACK, 1, 1)]);
  dev.inject([tcp4('10.255.0.1', LISTEN, '10.255.0.2', 20000, FIN | ACK, 1, 2)]);
  await new Promise((r) => setTimeout(r, 5));
  dev.take();
  dev.inject([tcp4(APP, 31000, '192.0.2.9', 80, SYN)]);
  const [syn] = dev.take();
  t.equal(verify(syn!).rec.srcPort, 20000, 'port of the closed flow reused');
  t.equal(stack.counters.natEntries, 4);
  t.equal(unaccounted(stack.counters), 0);
});

t.test('a SYN-ACK the app never ACKs leaves a half-open entry, which expires', async (t) => {
  // Spoofed SYNs (found by fuzzing): the listener answers each, the "app" never completes
  // the handshake. Marked established on the SYN-ACK, they held the table for 2 h 4 min.
  const { dev, stack } = mk({ natPortMin: 20000, natPortMax: 20001, tcpSynMs: 0 });
  for (const [i, natPort] of [
    [0, 20000],
    [1, 20001],
  ] as const) {
    dev.inject([tcp4(APP, 30000 + i, '192.0.2.9', 80, SYN, 100, 0)]);
    dev.inject([tcp4('10.255.0.1', LISTEN, '10.255.0.2', natPort, SYN | ACK, 500, 101)]);
  }
  // Flow 1 completes its handshake: established, it idles for hours, not tcpSynMs.
  dev.inject([tcp4(APP, 30001, '192.0.2.9', 80, ACK, 101, 501)]);
  await new Promise((r) => setTimeout(r, 5));
  dev.take();
  dev.inject([tcp4(APP, 31000, '192.0.2.9', 80, SYN)]);
  const [syn] = dev.take();
  t.equal(verify(syn!).rec.srcPort, 20000, 'the half-open entry expired: its port reused');
  t.match(
    stack.lookupNat(20001),
    { srcPort: 30001 },
    'the established one did not expire: its mapping is kept',
  );
  t.equal(stack.counters.dropTcpNatFull, 0);
});

t.test('a full table of half-open entries makes room for a new SYN, oldest first', async (t) => {
  const { dev, stack } = mk({ natPortMin: 20000, natPortMax: 20002 });
  // A SYN flood (spoofed sources never complete the handshake) fills the table.
  for (let i = 0; i < 3; i++) {
    dev.inject([tcp4(`10.200.0.${i + 1}`, 40000, '192.0.2.9', 80, SYN)]);
    await new Promise((r) => setTimeout(r, 2)); // distinct ages
  }
  dev.take();
  // A real connection still gets in: the oldest half-open entry makes room.
  dev.inject([tcp4(APP, 30000, '192.0.2.9', 80, SYN)]);
  const [syn] = dev.take();
  t.equal(verify(syn!).rec.srcPort, 20000, "the oldest half-open entry's port");
  t.equal(stack.counters.tcpHalfOpenEvicted, 1);
  t.equal(stack.counters.dropTcpNatFull, 0);
  t.equal(stack.counters.natEntries, 3);
  t.match(stack.lookupNat(20001), { srcIp: ip('10.200.0.2') }, 'the younger ones are kept');
});

t.test('UDP: onUdp gets the payload, reply() builds a valid packet back', async (t) => {
  let n = 0;
  const { dev, stack } = mk({
    hooks: {
      onUdp(flow, payload, reply) {
        n++;
        t.equal(flow.dstIp, '198.51.100.7');
        t.equal(flow.dstPort, 443);
        t.equal(payload.toString(), 'hello quic');
        reply(Buffer.from('pong'));
      },
    },
  });
  dev.inject([UDP_443, UDP_443]);
  await new Promise((r) => setImmediate(r));
  const outs = dev.take();
  t.equal(n, 2);
  t.equal(outs.length, 2);
  const v = verify(outs[0]!);
  t.ok(v.ok, 'UDP reply checksums valid');
  t.equal(formatIPv4(v.rec.src4), '198.51.100.7');
  t.equal(v.rec.srcPort, 443);
  t.equal(formatIPv4(v.rec.dst4), APP);
  t.equal(v.rec.dstPort, 50147);
  t.equal(outs[0]!.subarray(28).toString(), 'pong');
  t.equal(stack.counters.udpFlows, 1);
  t.equal(stack.counters.udpIn, 2);
});

t.test('UDP: a reply larger than the device MTU is not written, and is counted', async (t) => {
  const dev = new FakeDevice({ mtu: 1280 });
  const replies: Array<(p: Uint8Array) => boolean> = [];
  const stack = new TunStack({
    device: dev,
    listen: false,
    listenPort: LISTEN,
    hooks: {
      onUdp(_flow, _payload, reply) {
        replies.push(reply);
      },
    },
  });
  t.teardown(() => stack.close());
  dev.inject([UDP_443]);
  t.equal(replies.length, 1, 'the flow was handed to onUdp');
  const reply = replies[0]!;
  // 20 bytes of IPv4 and 8 of UDP header: 1252 bytes of payload fill a 1280-byte MTU.
  t.equal(reply(Buffer.alloc(1253)), false, 'one byte too many: refused');
  await new Promise((r) => setImmediate(r));
  t.equal(dev.take().length, 0, 'nothing written');
  t.equal(stack.counters.dropUdpTooBig, 1);
  t.equal(stack.counters.udpOut, 0);
  t.equal(reply(Buffer.alloc(1252)), true, 'a reply that fits');
  await new Promise((r) => setImmediate(r));
  const outs = dev.take();
  t.equal(outs.length, 1, 'written');
  t.equal(outs[0]!.length, 1280);
  t.equal(stack.counters.dropUdpTooBig, 1, 'not counted');
  t.equal(stack.counters.udpOut, 1);
  t.equal(unaccounted(stack.counters), 0, 'not part of the received-packet sum');
});

t.test(
  "QUIC 'drop' is silent, or ICMP admin-prohibited with icmpOnDrop; 'reset' always ICMP",
  async (t) => {
    for (const [icmpOnDrop, verdict, expectIcmp] of [
      [false, 'drop', false],
      [true, 'drop', true],
      [false, 'reset', true],
    ] as const) {
      let calls = 0;
      const { dev, stack } = mk({
        icmpOnDrop,
        hooks: {
          classify: (f) => {
            calls++;
            return f.proto === 17 && f.port === 443 ? verdict : 'accept';
          },
        },
      });
      dev.inject([UDP_443, UDP_443]);
      await new Promise((r) => setImmediate(r));
      const outs = dev.take();
      t.equal(calls, 1, 'one classification for the flow');
      t.equal(outs.length, expectIcmp ? 2 : 0, `${verdict} icmpOnDrop=${icmpOnDrop}`);
      if (expectIcmp) {
        const v = verify(outs[0]!);
        t.ok(v.ok, 'ICMP checksum valid');
        t.equal(v.rec.proto, 1);
        t.equal(v.rec.icmpType, 3);
        t.equal(v.rec.icmpCode, 13);
        t.same(
          outs[0]!.subarray(28, 28 + 28),
          UDP_443.subarray(0, 28),
          'quotes IP header + 8 bytes',
        );
      }
      t.equal(unaccounted(stack.counters), 0);
    }
  },
);

t.test(
  'DNS: acquired names get 6.6.x.y, AAAA empty, others SERVFAIL without upstream',
  async (t) => {
    const { dev, stack } = mk({ hooks: { acquire: (n) => n.endsWith('contoso.com') } });
    dev.inject([DNS_QUERY]);
    await new Promise((r) => setImmediate(r));
    const [ans] = dev.take();
    const v = verify(ans!);
    t.ok(v.ok);
    t.equal(formatIPv4(v.rec.src4), '6.6.255.254');
    t.equal(v.rec.srcPort, 53);
    const msg = dnsPacket.decode(ans!.subarray(28));
    t.equal(msg.id, 0xdcca);
    t.equal(msg.answers?.length, 1);
    const a = msg.answers![0]! as { type: string; data: string; ttl: number };
    t.equal(a.type, 'A');
    t.match(a.data, /^6\.6\.\d+\.\d+$/);
    t.equal(a.ttl, 30);
    t.equal(stack.hostFor(ip(a.data)), 'app.contoso.com');
    const rows = stack.acquisitionTable();
    t.equal(rows.length, 1);
    t.match(rows[0], {
      fqdn: 'app.contoso.com',
      generatedIp: a.data,
      acquired: true,
      originalIp: '',
    });

    const q = (name: string, type: 'A' | 'AAAA') =>
      udp4(
        APP,
        5353,
        '10.255.0.2',
        53,
        dnsPacket.encode({
          id: 7,
          type: 'query',
          flags: dnsPacket.RECURSION_DESIRED,
          questions: [{ type, name }],
        }),
      );
    dev.inject([q('app.contoso.com', 'AAAA'), q('example.org', 'A')]);
    await new Promise((r) => setImmediate(r));
    const [aaaa, fail] = dev.take();
    const m1 = dnsPacket.decode(aaaa!.subarray(28));
    t.equal(m1.answers?.length, 0, 'AAAA for an acquired name: NOERROR, no answer');
    t.equal((m1.flags ?? 0) & 15, 0);
    t.equal((dnsPacket.decode(fail!.subarray(28)).flags ?? 0) & 15, 2, 'SERVFAIL');
    t.equal(stack.counters.dnsAcquired, 1);
    t.equal(stack.counters.dnsAaaaEmpty, 1);
    t.equal(stack.counters.dnsServfail, 1);

    // A TCP flow to the synthetic address carries the name into classify and pins the address.
    let host: string | null = null;
    stack.setHooks({
      acquire: () => true,
      classify: (f) => {
        host = f.host;
        return 'accept';
      },
    });
    dev.inject([tcp4(APP, 41000, a.data, 443, SYN)]);
    t.equal(host, 'app.contoso.com');
    t.equal(stack.dns.pool.refsOf(ip(a.data)), 1);
  },
);

t.test('DNS: other names go to the upstream; answers recorded IP -> FQDN', async (t) => {
  const up = dgram.createSocket('udp4');
  up.on('message', (m, r) => {
    const qm = dnsPacket.decode(m);
    const name = qm.questions![0]!.name;
    up.send(
      dnsPacket.encode({
        id: qm.id,
        type: 'response',
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: qm.questions,
        answers:
          name === 'www.example.test' ? [{ type: 'A', name, ttl: 60, data: '192.0.2.55' }] : [],
      }),
      r.port,
      r.address,
    );
  });
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', r));
  t.teardown(() => up.close());
  const { dev, stack } = mk({
    hooks: { acquire: (n) => n === 'app.contoso.com' },
    dns: { upstream: { host: '127.0.0.1', port: up.address().port }, timeoutMs: 2000 },
  });
  const query = dnsPacket.encode({
    id: 0x4242,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name: 'www.example.test' }],
  });
  dev.inject([udp4(APP, 5300, '10.255.0.2', 53, query)]);
  const got = await new Promise<Buffer>((resolve) => {
    dev.onWrite = resolve;
  });
  const m = dnsPacket.decode(got.subarray(28));
  t.equal(m.id, 0x4242, 'original id restored');
  t.equal((m.answers![0] as { data: string }).data, '192.0.2.55');
  t.equal(stack.hostFor(ip('192.0.2.55')), 'www.example.test');
  t.match(stack.acquisitionTable()[0], {
    fqdn: 'www.example.test',
    acquired: false,
    generatedIp: '',
    originalIp: '192.0.2.55',
  });
  t.equal(stack.counters.dnsForwarded, 1);
  t.equal(stack.counters.dnsAnswered, 1);
});

t.test(
  'DNS: answers from elsewhere or for another question are dropped; ids are random',
  async (t) => {
    const ids: number[] = [];
    let mode: 'late' | 'wrong-question' | 'plain' = 'late';
    const up = dgram.createSocket('udp4');
    const spoofer = dgram.createSocket('udp4');
    const answer = (id: number, name: string, data: string): Buffer =>
      dnsPacket.encode({
        id,
        type: 'response',
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: [{ type: 'A', name }],
        answers: [{ type: 'A', name, ttl: 60, data }],
      });
    up.on('message', (m, r) => {
      const qm = dnsPacket.decode(m);
      ids.push(qm.id!);
      const name = qm.questions![0]!.name;
      if (mode === 'wrong-question') {
        up.send(answer(qm.id!, 'other.example.test', '192.0.2.66'), r.port, r.address);
        return;
      }
      if (mode === 'plain') {
        up.send(answer(qm.id!, name, '192.0.2.77'), r.port, r.address);
        return;
      }
      // A forged answer with the right id, from another port, before the real one.
      spoofer.send(answer(qm.id!, name, '192.0.2.66'), r.port, r.address);
      setTimeout(() => up.send(answer(qm.id!, name, '192.0.2.55'), r.port, r.address), 100);
    });
    await new Promise<void>((r) => up.bind(0, '127.0.0.1', r));
    await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', r));
    t.teardown(() => {
      up.close();
      spoofer.close();
    });
    const { dev, stack } = mk({
      dns: { upstream: { host: '127.0.0.1', port: up.address().port }, timeoutMs: 500 },
    });
    const ask = async (name: string, port: number): Promise<dnsPacket.Packet> => {
      const got = new Promise<Buffer>((resolve) => {
        dev.onWrite = resolve;
      });
      dev.inject([
        udp4(
          APP,
          port,
          '10.255.0.2',
          53,
          dnsPacket.encode({
            id: 7,
            type: 'query',
            flags: dnsPacket.RECURSION_DESIRED,
            questions: [{ type: 'A', name }],
          }),
        ),
      ]);
      return dnsPacket.decode((await got).subarray(28));
    };
    const m = await ask('www.example.test', 5301);
    t.equal(
      (m.answers![0] as { data: string }).data,
      '192.0.2.55',
      'the genuine answer, not a forged one',
    );
    t.ok(stack.counters.dnsSpoofed > 0, `forged answers counted (${stack.counters.dnsSpoofed})`);
    mode = 'wrong-question';
    const w = await ask('asked.example.test', 5302);
    t.equal((w.flags ?? 0) & 15, 2, 'an answer to another question is not taken: SERVFAIL');
    mode = 'plain';
    for (let i = 0; i < 8; i++) await ask(`n${i}.example.test`, 5310 + i);
    const steps = ids.slice(1).map((id, i) => (id - ids[i]! + 0x10000) & 0xffff);
    t.notOk(
      steps.every((d) => d === 1),
      `ids are not sequential (${ids.join(', ')})`,
    );
  },
);

t.test('synthetic pool: LRU, never reuses an address a flow still uses', async (t) => {
  const p = new SyntheticPool(2, 1);
  const a = p.allocate('a.test', 0);
  const b = p.allocate('b.test', 0);
  t.not(a, b);
  t.equal(p.allocate('a.test', 1), a, 'same name, same address');
  p.ref(a);
  p.ref(b);
  t.equal(p.allocate('c.test', 10_000), -1, 'all pinned: no address');
  p.unref(b);
  const c = p.allocate('c.test', 10_000);
  t.equal(c, b, 'the unpinned one (b) is reused');
  t.equal(p.nameOf(c), 'c.test');
  t.equal(p.nameOf(a), 'a.test');
  const big = new SyntheticPool();
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) seen.add(big.allocate(`n${i}.test`, 0));
  t.equal(seen.size, 2000);
  t.notOk(seen.has(ip('6.6.255.254')), 'the resolver address is never handed out');
});

t.test('IPv6, fragments, ICMP: counted and dropped; onIpv6 sees IPv6', async (t) => {
  let v6 = 0;
  const { dev, stack } = mk({ hooks: { onIpv6: () => v6++ } });
  dev.inject([ICMP6_RS, IPV6_FRAGMENT, Buffer.from([0x45, 0])]);
  t.equal(dev.take().length, 0);
  t.equal(v6, 1);
  t.equal(stack.counters.dropIpv6, 1);
  t.equal(stack.counters.dropFragment, 1);
  t.equal(stack.counters.dropTruncated, 1);
  t.equal(unaccounted(stack.counters), 0);
  // The admin API's /metrics shows each drop reason (all of them, zeros too).
  const m = tunMetrics(stack.snapshot());
  t.match(m, /^# TYPE gsa_client_tun_dropped_packets_total counter$/m);
  t.match(m, /^gsa_client_tun_dropped_packets_total\{reason="ipv6"\} 1$/m);
  t.match(m, /^gsa_client_tun_dropped_packets_total\{reason="fragment"\} 1$/m);
  t.match(m, /^gsa_client_tun_dropped_packets_total\{reason="truncated"\} 1$/m);
  t.match(m, /^gsa_client_tun_dropped_packets_total\{reason="tcp_nat_full"\} 0$/m);
  t.match(m, /^gsa_client_tun_dropped_packets_total\{reason="not_ipv4_nat"\} 0$/m);
  t.equal(m.match(/^gsa_client_tun_dropped_packets_total\{/gm)?.length, 13, 'one row per reason');
});

t.test(
  'fuzz: random and mutated packets through the stack; counters add up; NAT bounded',
  async (t) => {
    const { dev, stack } = mk({
      natPortMin: 30000,
      natPortMax: 30063,
      maxUdpFlows: 32,
      hooks: {
        acquire: (n) => n.length % 2 === 0,
        classify: (f) => (['accept', 'reset', 'drop'] as const)[f.port % 3]!,
        onUdp: (_f, p, reply) => {
          reply(p);
        },
      },
    });
    dev.keep = 100;
    const seeds = [TCP_SYN, UDP_443, DNS_QUERY, ICMP6_RS, IPV6_FRAGMENT];
    const tcpArb = fc
      .tuple(fc.nat({ max: 65535 }), fc.nat({ max: 65535 }), fc.nat({ max: 255 }), fc.boolean())
      .map(([sp, dp, flags, fromListener]) =>
        fromListener
          ? tcp4('10.255.0.1', LISTEN, '10.255.0.2', 30000 + (sp % 80), flags, sp, dp)
          : tcp4(APP, sp, '198.51.100.3', dp, flags, sp, dp),
      );
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }),
        fc.nat({ max: 40 }),
      )
      .map(([s, flips, cut]) => {
        const b = Buffer.from(s);
        for (const [i, v] of flips) b[i % b.length] = v;
        return b.subarray(0, Math.max(0, b.length - cut));
      });
    const anyPkt = fc.oneof(
      tcpArb,
      mutated,
      fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u)),
    );
    // What the stack writes is well formed, with one exception it shares with any NAT: it
    // does not verify transport checksums (the kernel wrote the packet; verifying would
    // read every byte) and updates them incrementally (RFC 1624), so a packet that came in
    // with a bad TCP/UDP checksum goes out with a bad one, and the receiver drops it.
    const badL4 = (p: Buffer): boolean => {
      const v = verify(p);
      return !v.ok && v.rec.verdict === 'ok' && v.rec.family === 4 && headerChecksumOk(p, 0);
    };
    let checked = 0;
    let malformed = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(anyPkt, { minLength: 1, maxLength: 20 }), async (pkts) => {
        const out: Buffer[] = [];
        dev.onWrite = (w) => out.push(w);
        const input = pkts.filter((p) => p.length > 0);
        dev.inject(input);
        await new Promise((r) => setImmediate(r));
        dev.onWrite = null;
        const tainted = input.some(badL4);
        for (const w of out) {
          if (w[0]! >> 4 === 6) continue;
          if (!headerChecksumOk(w, 0)) malformed++;
          else if (tainted) continue;
          else if (!verify(w).ok) malformed++;
          else checked++;
        }
        return (
          unaccounted(stack.counters) === 0 &&
          stack.counters.natEntries <= 64 &&
          stack.counters.udpEntries <= 32 &&
          malformed === 0
        );
      }),
      { numRuns: 300 },
    );
    t.equal(malformed, 0, 'every IPv4 packet written has a valid header; transport checksums too');
    t.ok(checked > 100, `${checked} written packets verified in full`);
    t.ok(stack.counters.rxPackets > 1000, `${stack.counters.rxPackets} packets`);
    t.ok(
      stack.counters.tcpOut > 0 && stack.counters.dropMalformed + stack.counters.dropTruncated > 0,
    );
  },
);
