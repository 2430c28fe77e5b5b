/**
 * An IPv4-mapped IPv6 destination (::ffff:a.b.c.d, ATYP 4 or as a domain literal) is the
 * IPv4 host. It used to be classified as IPv6, so no IPv4 rule applied to it: the Private
 * Access RDP segment 127.77.0.5:3389 was tunneled when asked for as 127.77.0.5 but bypassed
 * as ::ffff:127.77.0.5 (what a dual-stack client socket reports for an IPv4 peer), around
 * the tunnel and the edge's policy. And a UDP ASSOCIATE announcing a mapped address
 * ('::ffff:7f00:1') dropped every datagram of its own client as a foreign sender.
 */
import t from 'tap';
import { encodeUdpHeader, Socks5Parser } from '../../src/capture/socks5.js';
import { startTestWorld, until } from '../e2e/helpers.js';
import { udpEcho } from '../forward/fixtures/fakes.js';
import { udpApp } from '../util/socks-udp.js';
import { domainRequest, hex, ipv6Request, rawClient, startSocks, u16 } from './helpers.js';

t.test('CONNECT to ::ffff:127.77.0.5:3389 is the RDP app segment, tunneled', async (t) => {
  const w = await startTestWorld({
    prefix: 'gsa-socks5-mapped-',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 },
  });
  t.teardown(() => w.close());
  const port = Number(w.client.addresses.socks!.split(':')[1]);
  const cases: Array<[string, Buffer]> = [
    ['ATYP 4 ::ffff:127.77.0.5', ipv6Request('00000000 00000000 0000ffff 7f4d0005', 3389)],
    ['domain literal "::ffff:127.77.0.5"', domainRequest('::ffff:127.77.0.5', 3389)],
  ];
  for (const [what, req] of cases) {
    const before = w.client.flows.list().length;
    const c = await rawClient(t, port, [hex('05 01 00'), req, Buffer.from('rdp-hello')]);
    const got = await c.waitBytes(2 + 10 + 9);
    t.equal(got[3], 0, `${what}: granted (reply 0x${(got[3] ?? -1).toString(16)})`);
    t.equal(got.subarray(12).toString(), 'rdp-hello', `${what}: echoed by the RDP server`);
    c.s.destroy();
    const f = await until(() => w.client.flows.list()[before], `${what}: flow`);
    t.equal(f.channel, 'private', `${what}: on the private channel (${f.action}: ${f.reason})`);
    t.equal(f.action, 'Tunnel', `${what}: tunneled`);
  }
});

t.test('UDP ASSOCIATE announcing ::ffff:127.0.0.1 accepts its client', async (t) => {
  const echo = await udpEcho();
  t.teardown(() => echo.close());
  const { port } = await startSocks(t);
  const { u, got: replies } = await udpApp(t);
  // DST.ADDR ::ffff:127.0.0.1 (ATYP 4), DST.PORT the port it sends from.
  const c = await rawClient(t, port, [
    hex('05 01 00'),
    Buffer.concat([hex('05 03 00 04 00000000 00000000 0000ffff 7f000001'), u16(u.address().port)]),
  ]);
  const r = await c.waitBytes(2 + 10);
  t.equal(r[3], 0, 'association granted');
  const relayPort = r.readUInt16BE(10);
  u.send(
    Buffer.concat([encodeUdpHeader(null, '127.0.0.1', echo.port), Buffer.from('mapped')]),
    relayPort,
    '127.0.0.1',
  );
  for (let i = 0; i < 100 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(replies.length, 1, 'the datagram was relayed and answered');
  t.equal(replies[0]?.subarray(10).toString(), 'MAPPED');
});

t.test('parser: ::ffff:a.b.c.d in a request is the IPv4 address', async (t) => {
  const req = (b: Buffer) => {
    const p = new Socks5Parser();
    p.state = 'request';
    p.push(b);
    return p.next();
  };
  t.match(req(ipv6Request('00000000 00000000 0000ffff 7f4d0005', 3389)), {
    atyp: 4,
    ip: '127.77.0.5',
  });
  t.match(req(domainRequest('::FFFF:7f4d:5', 3389)), { host: null, ip: '127.77.0.5' });
  t.match(req(ipv6Request('00000000 00000000 00000000 00000001', 80)), { ip: '::1' });
  t.match(
    req(ipv6Request('00000000 00000000 ffff0000 7f000001', 80)),
    { ip: '::ffff:0:7f00:1' },
    'not mapped (::ffff:0:0:0/96 is another prefix)',
  );
});
