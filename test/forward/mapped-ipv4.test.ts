/**
 * Forwarder.decide() takes an IPv4-mapped IPv6 address (::ffff:0:0/96, in any spelling, as
 * the address or as a name that is an address literal) for the IPv4 address, for every
 * capture: IPv4 rules apply to it, its record shows it, and a bypassed flow dials it over
 * IPv4. It used to be classified as IPv6 and miss every IPv4 rule (test/capture/
 * socks5-mapped-ipv4.test.ts has the SOCKS5 side).
 */
import t from 'tap';
import { PROTO_TCP, PROTO_UDP } from '../../src/classify/types.js';
import { unmapIPv4 } from '../../src/util/ip.js';
import { decision, echoServer, fakeForwarder } from './fixtures/fakes.js';

const RDP = decision({ action: 'tunnel', channel: 'private', ruleId: 'rdp' });

t.test('unmapIPv4', async (t) => {
  t.equal(unmapIPv4('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(unmapIPv4('::ffff:7f00:1'), '127.0.0.1');
  t.equal(unmapIPv4('0:0:0:0:0:FFFF:0A01:0203'), '10.1.2.3');
  t.equal(unmapIPv4('::ffff:0:0'), '0.0.0.0');
  for (const other of ['127.0.0.1', '::1', '::', '::ffff:0:7f00:1', '64:ff9b::7f00:1', 'host']) {
    t.equal(unmapIPv4(other), other, `${other} as it is`);
  }
});

t.test('decide(): IPv4 rules apply to ::ffff:a.b.c.d', async (t) => {
  const { fwd } = fakeForwarder([{ ip: '127.77.0.5', port: 3389, decision: RDP }]);
  for (const [host, ip] of [
    [null, '::ffff:7f4d:5'],
    [null, '::ffff:127.77.0.5'],
    ['::ffff:127.77.0.5', null],
    ['::FFFF:7F4D:5', null],
  ] as const) {
    const what = `host ${host} ip ${ip}`;
    for (const proto of [PROTO_TCP, PROTO_UDP]) {
      const r = await fwd.decide(proto, host, ip, 3389);
      t.equal(r.decision.ruleId, 'rdp', `${what}: the IPv4 rule`);
      t.equal(r.ip, '127.77.0.5', `${what}: the IPv4 address`);
      t.equal(r.host, null, `${what}: no name`);
    }
  }
  const v6 = await fwd.decide(PROTO_TCP, null, '::1', 3389);
  t.equal(v6.ip, '::1', 'other IPv6 addresses stay');
  t.equal(v6.decision.ruleId, null);
});

t.test('a bypassed ::ffff:127.0.0.1 is dialed over IPv4, its record shows 127.0.0.1', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { fwd } = fakeForwarder();
  const res = await fwd.connectTcp({
    host: null,
    ip: '::ffff:7f00:1',
    port: echo.port,
    srcIp: '127.0.0.1',
    srcPort: 1,
    capture: 'socks',
  });
  t.equal(res.refused, undefined, `connected (${res.refused ? res.reason : ''})`);
  t.equal(res.flow.destinationIp, '127.0.0.1');
  res.upstream?.destroy();
});
