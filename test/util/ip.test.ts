import t from 'tap';
import {
  cmp6,
  formatIPv4,
  formatIPv6,
  ipFamily,
  parseCidr,
  parseIPv4,
  parseIPv6,
} from '../../src/util/ip.js';

t.test('parseIPv4', async (t) => {
  t.equal(parseIPv4('0.0.0.0'), 0);
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff);
  t.equal(parseIPv4('40.96.0.1'), (40 * 2 ** 24 + 96 * 2 ** 16 + 1) >>> 0);
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1..2.3',
    'a.b.c.d',
    '1.2.3.4 ',
  ]) {
    t.equal(parseIPv4(bad), -1, bad);
  }
  t.equal(formatIPv4(parseIPv4('132.245.7.9')), '132.245.7.9');
});

t.test('parseIPv6', async (t) => {
  const w = new Uint32Array(4);
  t.ok(parseIPv6('2603:1006::', w));
  t.same([...w], [0x26031006, 0, 0, 0]);
  t.ok(parseIPv6('::1', w));
  t.same([...w], [0, 0, 0, 1]);
  t.ok(parseIPv6('::ffff:1.2.3.4', w));
  t.same([...w], [0, 0, 0xffff, 0x01020304]);
  t.equal(formatIPv6(w), '::ffff:102:304');
  for (const bad of [
    '',
    ':::',
    '1::2::3',
    '12345::',
    'g::',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
  ]) {
    t.notOk(parseIPv6(bad, w), bad);
  }
  t.ok(parseIPv6('2620:1ec:a92::152', w));
  t.equal(formatIPv6(w), '2620:1ec:a92::152');
  t.equal(ipFamily('::1'), 6);
  t.equal(ipFamily('1.1.1.1'), 4);
  t.equal(ipFamily('example.com'), 0);
});

t.test('parseCidr', async (t) => {
  const c = parseCidr('40.96.0.0/13');
  t.equal(typeof c, 'object');
  if (typeof c === 'object' && c.family === 4) {
    t.equal(formatIPv4(c.first), '40.96.0.0');
    t.equal(formatIPv4(c.last), '40.103.255.255');
  }
  t.equal(parseCidr('10.0.0.0/33'), '"10.0.0.0/33" is not a CIDR');
  const d = parseCidr('2603:1006::/40');
  if (typeof d === 'object' && d.family === 6) {
    t.equal(formatIPv6(d.last), '2603:1006:ff:ffff:ffff:ffff:ffff:ffff');
    t.equal(cmp6(d.first, d.last), -1);
  } else t.fail('v6 cidr');
  const z = parseCidr('0.0.0.0/0');
  if (typeof z === 'object' && z.family === 4) t.equal(z.last, 0xffffffff);
});
