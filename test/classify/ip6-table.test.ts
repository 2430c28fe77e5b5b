import t from 'tap';
import { NO_ITEM } from '../../src/classify/candidates.js';
import { Ip6Table } from '../../src/classify/ip6-table.js';
import { PBIT_TCP, PBIT_UDP, PortProtoChecks } from '../../src/classify/ports.js';
import { cmp6, parseCidr, parseIPv6 } from '../../src/util/ip.js';
import { ports } from './helpers.js';

const NONE = NO_ITEM;
function range(s: string, item: number) {
  const c = parseCidr(s);
  if (typeof c === 'string' || c.family !== 6) throw new Error(s);
  return { first: c.first, last: c.last, item };
}
function w(s: string): Uint32Array {
  const out = new Uint32Array(4);
  if (!parseIPv6(s, out)) throw new Error(s);
  return out;
}

t.test('EXO and Teams IPv6 ranges', async (t) => {
  const checks = new PortProtoChecks([
    { protocols: ['tcp'], ports: ports('80', '443') },
    { protocols: ['udp'], ports: ports('3478-3481') },
    { protocols: [], ports: [] },
    { protocols: [], ports: [] },
  ]);
  const table = new Ip6Table(
    [
      range('2603:1006::/40', 0),
      range('2603:1063::/38', 1),
      range('2620:1ec:4::152/128', 2),
      { first: w('::'), last: w('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), item: 3 },
    ],
    checks,
  );
  const look = (a: string, port = 443, pbit = PBIT_TCP) => {
    const x = w(a);
    return table.lookup(x[0]!, x[1]!, x[2]!, x[3]!, pbit, port, NONE);
  };
  t.equal(look('2603:1006::1'), 0);
  t.equal(look('2603:1006::'), 0);
  t.equal(look('2603:1006:ff:ffff:ffff:ffff:ffff:ffff'), 0, 'last of the /40');
  t.equal(look('2603:1006:100::'), 3, 'one past');
  t.equal(look('2603:1005:ffff:ffff:ffff:ffff:ffff:ffff'), 3, 'one before');
  t.equal(look('2603:1006::1', 443, PBIT_UDP), 3);
  t.equal(look('2603:1063::9', 3478, PBIT_UDP), 1);
  t.equal(look('2603:1063::9', 3482, PBIT_UDP), 3);
  t.equal(look('2620:1ec:4::152'), 2);
  t.equal(look('2620:1ec:4::153'), 3);
  t.equal(look('2620:1ec:4::151'), 3);
  t.equal(look('::'), 3);
  t.equal(look('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 3);
  t.match(table.toString(), /^ip6\(4 ranges/);
  t.ok(table.bytes > 0);
});

t.test('ranges that differ only in the low words', async (t) => {
  const checks = new PortProtoChecks([
    { protocols: [], ports: [] },
    { protocols: [], ports: [] },
  ]);
  const table = new Ip6Table(
    [
      { first: w('2001:db8::1:0:0:5'), last: w('2001:db8::1:0:0:9'), item: 1 },
      { first: w('2001:db8::1:0:0:7'), last: w('2001:db8::2:0:0:0'), item: 0 },
    ].sort((a, b) => a.item - b.item),
    checks,
  );
  const look = (a: string) => {
    const x = w(a);
    return table.lookup(x[0]!, x[1]!, x[2]!, x[3]!, PBIT_TCP, 1, NONE);
  };
  t.equal(look('2001:db8::1:0:0:4'), NONE);
  t.equal(look('2001:db8::1:0:0:5'), 1);
  t.equal(look('2001:db8::1:0:0:7'), 0);
  t.equal(look('2001:db8::1:ffff:ffff:ffff'), 0);
  t.equal(look('2001:db8::2:0:0:0'), 0);
  t.equal(look('2001:db8::2:0:0:1'), NONE);
});

t.test('agrees with a linear scan on random ranges', async (t) => {
  let seed = 11;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed;
  };
  const n = 2000;
  const rs: Array<{ first: Uint32Array; last: Uint32Array; item: number }> = [];
  for (let i = 0; i < n; i++) {
    const first = Uint32Array.of(0x26031000 | (rnd() & 3), rnd() & 7, rnd() & 3, rnd());
    const last = Uint32Array.from(first);
    last[(rnd() % 3) + 1] = (last[(rnd() % 3) + 1]! + (rnd() & 0xff)) >>> 0;
    if (cmp6(last, first) < 0) last.set(first);
    rs.push({ first, last, item: i });
  }
  const checks = new PortProtoChecks(
    rs.map((_, i) => ({ protocols: [], ports: i % 2 ? ports('443') : [] })),
  );
  const table = new Ip6Table(rs, checks);
  let bad = 0;
  const x = new Uint32Array(4);
  for (let k = 0; k < 10000; k++) {
    const r = rs[rnd() % n]!;
    x.set(k % 3 === 0 ? r.first : r.last);
    if (k % 4 === 1) x[3] = (x[3]! + 1) >>> 0;
    if (k % 4 === 2) x[3] = (x[3]! - 1) >>> 0;
    const port = k % 5 ? 443 : 80;
    let want = NONE;
    for (const q of rs) {
      if (cmp6(q.first, x) <= 0 && cmp6(x, q.last) <= 0 && checks.passes(q.item, PBIT_TCP, port)) {
        want = q.item;
        break;
      }
    }
    if (table.lookup(x[0]!, x[1]!, x[2]!, x[3]!, PBIT_TCP, port, NONE) !== want) bad++;
  }
  t.equal(bad, 0);
});
