/**
 * ICMP net and host unreachable for a UDP flow whose destination cannot be reached (no
 * root needed: a FakeDevice): the built packets (type 3 code 0 / 1, checksums, the quoted
 * datagram), `UdpFlow.unreachable(kind)`, the rate limit it shares with port unreachable
 * (per flow and over all flows), counters and metrics. Port unreachable itself is in
 * test/tun/udp-port-unreachable.test.ts; the real kernel's view (ENETUNREACH /
 * EHOSTUNREACH on a connected socket) in test/e2e/tun-udp-unreachable.test.ts.
 */
import t from 'tap';
import { icmpUnreachableForUdp, udpTemplate } from '../../src/capture/tun/build.js';
import { unaccounted } from '../../src/capture/tun/stack.js';
import { tunMetrics } from '../../src/client/tun-capture.js';
import { checksum, rd16, rd32 } from '../../src/parse/checksum.js';
import { UNREACH_HOST, UNREACH_NET, UNREACH_PORT } from '../../src/parse/icmp.js';
import { headerChecksumOk } from '../../src/parse/ipv4.js';
import { formatIPv4 } from '../../src/util/ip.js';
import { UDP_443 } from '../parse/fixtures.js';
import { ip, udp4, udpStack, verify } from './helpers.js';

const APP = '10.255.0.1';

const mk = () => udpStack(t);

const tick = () => new Promise((r) => setImmediate(r));

t.test('the codes: net 0, host 1, port 3 (RFC 792)', async (t) => {
  t.equal(UNREACH_NET, 0);
  t.equal(UNREACH_HOST, 1);
  t.equal(UNREACH_PORT, 3);
});

for (const [name, code] of [
  ['net unreachable', UNREACH_NET],
  ['host unreachable', UNREACH_HOST],
] as const) {
  t.test(`icmpUnreachableForUdp, ${name}: checksums, from D to S, the quote`, async (t) => {
    const tpl = udpTemplate(ip('203.0.113.9'), 5353, ip(APP), 40001);
    const b = icmpUnreachableForUdp(tpl, 5, code);
    t.equal(b.length, 56);
    const v = verify(b);
    t.ok(v.ok, 'IPv4 header and ICMP checksums valid');
    t.equal(v.rec.icmpType, 3, 'destination unreachable');
    t.equal(v.rec.icmpCode, code, name);
    t.equal(formatIPv4(v.rec.src4), '203.0.113.9');
    t.equal(formatIPv4(v.rec.dst4), APP);
    t.equal(checksum(b, 20, 36), 0, 'ICMP checksum');
    t.equal(rd32(b, 24), 0, 'unused word');
    const q = 28;
    t.ok(headerChecksumOk(b, q), 'quoted header checksum');
    t.equal(b[q + 9], 17, 'quoted: UDP');
    t.equal(formatIPv4(rd32(b, q + 12)), APP);
    t.equal(formatIPv4(rd32(b, q + 16)), '203.0.113.9');
    t.equal(rd16(b, q + 20), 40001, 'quoted source port');
    t.equal(rd16(b, q + 22), 5353, 'quoted destination port');
    t.equal(rd16(b, q + 24), 13, 'quoted UDP length');
    t.equal(rd16(b, q + 2), 33, 'quoted total length');
  });
}

t.test('unreachable(kind): the code asked for, counted by type, quoting the flow', async (t) => {
  const { dev, stack, flows } = mk();
  dev.inject([UDP_443]);
  const f = flows[0]!;
  t.equal(f.unreachable('net'), true);
  t.equal(f.unreachable('host'), true);
  t.equal(f.unreachable('port'), true);
  await tick();
  const out = dev.take();
  t.same(
    out.map((b) => verify(b).rec.icmpCode),
    [0, 1, 3],
    'net, host, port unreachable, in order',
  );
  for (const b of out) {
    const v = verify(b);
    t.ok(v.ok, 'checksums valid');
    t.equal(v.rec.icmpType, 3);
    t.equal(formatIPv4(v.rec.src4), '198.51.100.7');
    t.equal(formatIPv4(v.rec.dst4), APP);
    t.same(b.subarray(28 + 12, 28 + 26), UDP_443.subarray(12, 26), 'addresses, ports, length');
  }
  const c = stack.counters;
  t.equal(c.icmpSent, 3);
  t.equal(c.icmpNetUnreachable, 1);
  t.equal(c.icmpHostUnreachable, 1);
  t.equal(c.icmpPortUnreachable, 1);
  t.equal(unaccounted(c), 0);
  const m = tunMetrics(stack.snapshot());
  t.match(m, /^gsa_client_tun_icmp_sent_total\{type="net_unreachable"\} 1$/m);
  t.match(m, /^gsa_client_tun_icmp_sent_total\{type="host_unreachable"\} 1$/m);
  t.match(m, /^gsa_client_tun_icmp_sent_total\{type="port_unreachable"\} 1$/m);
  t.match(m, /^gsa_client_tun_icmp_sent_total\{type="admin_prohibited"\} 0$/m);
});

t.test('one rate limit per flow for every kind; another flow has its own', async (t) => {
  const { dev, stack, flows } = mk();
  dev.inject([UDP_443]);
  const f = flows[0]!;
  let sent = 0;
  for (let i = 0; i < 10; i++) if (f.unreachable(i % 2 ? 'host' : 'net')) sent++;
  if (f.portUnreachable()) sent++;
  t.equal(sent, 6, 'a burst of 6 over all kinds');
  t.equal(stack.counters.icmpRateLimited, 5);
  dev.inject([udp4(APP, 50148, '198.51.100.7', 443, Buffer.from('x'))]);
  t.equal(flows[1]!.unreachable('host'), true, 'another flow is not limited by the first');
  t.match(tunMetrics(stack.snapshot()), /^gsa_client_tun_icmp_rate_limited_total 5$/m);
  await tick();
  t.equal(dev.take().length, 7);
});

t.test('nothing for a closed flow or a closed stack', async (t) => {
  const { dev, stack, flows } = mk();
  dev.inject([UDP_443]);
  flows[0]!.close();
  t.equal(flows[0]!.unreachable('host'), false);
  dev.inject([udp4(APP, 50200, '198.51.100.7', 443, Buffer.from('y'))]);
  await stack.close();
  t.equal(flows[1]!.unreachable('net'), false);
  t.equal(stack.counters.icmpSent, 0);
  t.equal(dev.take().length, 0);
});
