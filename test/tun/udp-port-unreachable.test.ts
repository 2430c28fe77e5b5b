/**
 * ICMP port unreachable for a UDP flow whose destination refused (no root needed: a
 * FakeDevice): the builder (checksums, the quoted datagram), `UdpFlow.portUnreachable`
 * and its rate limit (per flow as Linux's icmp_ratelimit, and over all flows), the
 * counters and metrics. The real kernel's view (ECONNREFUSED on a connected socket) is in
 * test/tun/kernel.test.ts and test/e2e/tun-udp-refused.test.ts.
 */
import t from 'tap';
import { icmpUnreachableForUdp, udpTemplate } from '../../src/capture/tun/build.js';
import { TokenBucket } from '../../src/capture/tun/icmp-limit.js';
import { type TunStackOptions, unaccounted } from '../../src/capture/tun/stack.js';
import { tunMetrics } from '../../src/client/tun-capture.js';
import { checksum, rd16, rd32 } from '../../src/parse/checksum.js';
import { headerChecksumOk } from '../../src/parse/ipv4.js';
import { formatIPv4 } from '../../src/util/ip.js';
import { UDP_443 } from '../parse/fixtures.js';
import { ip, udp4, udpStack, verify } from './helpers.js';

const APP = '10.255.0.1';

const mk = (opts: Partial<TunStackOptions> = {}) => udpStack(t, opts);

const tick = () => new Promise((r) => setImmediate(r));

/** The quoted datagram's fields that a receiving kernel (and a reader) use. */
function quoted(b: Buffer) {
  const q = 28;
  return {
    version: b[q]! >> 4,
    ihl: b[q]! & 15,
    totalLen: rd16(b, q + 2),
    proto: b[q + 9],
    src: formatIPv4(rd32(b, q + 12)),
    dst: formatIPv4(rd32(b, q + 16)),
    headerChecksumOk: headerChecksumOk(b, q),
    sport: rd16(b, q + 20),
    dport: rd16(b, q + 22),
    udpLen: rd16(b, q + 24),
    udpChecksum: rd16(b, q + 26),
  };
}

t.test('icmpUnreachableForUdp: valid checksums, from D to S, quoting S:sp -> D:dp', async (t) => {
  const tpl = udpTemplate(ip('198.51.100.7'), 443, ip(APP), 50147);
  const b = icmpUnreachableForUdp(tpl, 10, 3);
  t.equal(b.length, 56, '20 IP + 8 ICMP + 20 quoted IP + 8 quoted UDP');
  const v = verify(b);
  t.ok(v.ok, 'IPv4 header and ICMP checksums valid');
  t.equal(v.rec.proto, 1);
  t.equal(v.rec.icmpType, 3, 'destination unreachable');
  t.equal(v.rec.icmpCode, 3, 'port unreachable');
  t.equal(formatIPv4(v.rec.src4), '198.51.100.7', 'from the destination');
  t.equal(formatIPv4(v.rec.dst4), APP, 'to the application');
  t.equal(rd16(b, 2), 56, 'total length');
  t.equal(rd32(b, 24), 0, 'the unused word is zero');
  t.equal(checksum(b, 20, 36), 0, 'ICMP checksum over header and quote');
  t.same(quoted(b), {
    version: 4,
    ihl: 5,
    totalLen: 38,
    proto: 17,
    src: APP,
    dst: '198.51.100.7',
    headerChecksumOk: true,
    sport: 50147,
    dport: 443,
    udpLen: 18,
    udpChecksum: 0,
  });
  t.equal(icmpUnreachableForUdp(tpl, 70_000, 3).readUInt16BE(28 + 2), 65535, 'lengths capped');
});

t.test('TokenBucket: a burst, then one per interval; 0 is no limit', async (t) => {
  const b = new TokenBucket(1000, 6, 0);
  let n = 0;
  for (let i = 0; i < 10; i++) if (b.take(0)) n++;
  t.equal(n, 6, 'a burst of 6 at once');
  t.notOk(b.take(999), 'not before a whole interval');
  t.ok(b.take(1000), 'one after an interval');
  t.notOk(b.take(1000));
  n = 0;
  for (let i = 0; i < 10; i++) if (b.take(60_000)) n++;
  t.equal(n, 6, 'an idle minute saves a burst again, not more');
  t.notOk(b.take(59_000), 'a clock going back gives nothing');
  const free = new TokenBucket(0, 6, 0);
  n = 0;
  for (let i = 0; i < 100; i++) if (free.take(0)) n++;
  t.equal(n, 100);
});

t.test(
  'portUnreachable: ICMP 3/3 to the app quoting its datagram; rate-limited per flow',
  async (t) => {
    const { dev, stack, flows } = mk();
    dev.inject([UDP_443]);
    t.equal(flows.length, 1);
    const f = flows[0]!;
    t.equal(f.portUnreachable(), true);
    await tick();
    const [b] = dev.take();
    const v = verify(b!);
    t.ok(v.ok, 'checksums valid');
    t.equal(v.rec.icmpType, 3);
    t.equal(v.rec.icmpCode, 3);
    t.equal(formatIPv4(v.rec.src4), '198.51.100.7');
    t.equal(formatIPv4(v.rec.dst4), APP);
    // The app's datagram, but for the IP id, checksums (recomputed / none) and nothing else.
    const q = b!.subarray(28);
    t.same(q.subarray(0, 4), UDP_443.subarray(0, 4), 'version, IHL, TOS, total length');
    t.same(q.subarray(6, 10), UDP_443.subarray(6, 10), 'flags, TTL, protocol');
    t.same(q.subarray(12, 26), UDP_443.subarray(12, 26), 'addresses, ports, UDP length');
    t.equal(quoted(b!).udpChecksum, 0);
    t.equal(quoted(b!).headerChecksumOk, true);

    // Burst of 6 (the first one included), then limited.
    let sent = 1;
    for (let i = 0; i < 9; i++) if (f.portUnreachable()) sent++;
    await tick();
    t.equal(sent, 6, 'a burst of 6');
    t.equal(dev.take().length, 5);
    t.equal(stack.counters.icmpSent, 6);
    t.equal(stack.counters.icmpPortUnreachable, 6);
    t.equal(stack.counters.icmpRateLimited, 4);
    t.equal(unaccounted(stack.counters), 0, 'outgoing: not part of the received-packet sum');

    // Another flow has a bucket of its own.
    dev.inject([udp4(APP, 50148, '198.51.100.7', 443, Buffer.from('x'))]);
    t.equal(flows.length, 2);
    t.equal(flows[1]!.portUnreachable(), true, 'another flow is not limited by the first');
    await tick();
    const [b2] = dev.take();
    t.equal(quoted(b2!).sport, 50148);
    t.equal(quoted(b2!).udpLen, 9, 'the length of that flow’s last datagram');

    const m = tunMetrics(stack.snapshot());
    t.match(m, /^gsa_client_tun_icmp_sent_total\{type="port_unreachable"\} 7$/m);
    t.match(m, /^gsa_client_tun_icmp_sent_total\{type="admin_prohibited"\} 0$/m);
    t.match(m, /^gsa_client_tun_icmp_rate_limited_total 4$/m);
  },
);

t.test(
  'portUnreachable: the rate is an option; over all flows at most a burst of 50',
  async (t) => {
    const t0 = performance.now();
    const { dev, stack, flows } = mk({ icmpRateMs: 0 });
    dev.inject([UDP_443]);
    let sent = 0;
    for (let i = 0; i < 20; i++) if (flows[0]!.portUnreachable()) sent++;
    t.equal(sent, 20, 'icmpRateMs 0: no limit per flow');
    const pkts = [];
    for (let p = 0; p < 60; p++) {
      pkts.push(udp4(APP, 40000 + p, '198.51.100.7', 443, Buffer.alloc(1)));
    }
    dev.inject(pkts);
    t.equal(flows.length, 61);
    for (let i = 1; i < flows.length; i++) if (flows[i]!.portUnreachable()) sent++;
    // 50 at once, then one per millisecond: bounded by the time the test took.
    const ms = performance.now() - t0;
    t.ok(sent >= 50 && sent <= 50 + Math.ceil(ms), `${sent} of 80 sent in ${ms.toFixed(1)} ms`);
    t.ok(sent < 80, 'the stack-wide bucket stopped some');
    t.equal(stack.counters.icmpRateLimited, 80 - sent);
    await tick();
    dev.take();
  },
);

t.test(
  'portUnreachable: nothing for a closed flow, a non-accepted one or a closed stack',
  async (t) => {
    const { dev, stack, flows } = mk();
    dev.inject([UDP_443]);
    const f = flows[0]!;
    f.close();
    t.equal(f.portUnreachable(), false, 'closed flow');
    dev.inject([udp4(APP, 50200, '198.51.100.7', 443, Buffer.from('y'))]);
    const g = flows[1]!;
    await stack.close();
    t.equal(g.portUnreachable(), false, 'closed stack');
    t.equal(stack.counters.icmpSent, 0);
    t.equal(dev.take().length, 0);
  },
);

t.test('the icmpOnDrop admin-prohibited answer is unchanged and not rate-limited', async (t) => {
  const { dev, stack } = mk({ icmpOnDrop: true, hooks: { classify: () => 'drop' } });
  const pkts = Array.from({ length: 10 }, () => UDP_443);
  dev.inject(pkts);
  const outs = dev.take();
  t.equal(outs.length, 10, 'one per datagram');
  t.equal(verify(outs[0]!).rec.icmpCode, 13);
  t.equal(stack.counters.icmpSent, 10);
  t.equal(stack.counters.icmpAdminProhibited, 10);
  t.equal(stack.counters.icmpPortUnreachable, 0);
  t.equal(stack.counters.icmpRateLimited, 0);
});
