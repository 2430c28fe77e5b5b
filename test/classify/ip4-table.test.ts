import t from 'tap';
import { NO_ITEM } from '../../src/classify/candidates.js';
import { Ip4Table } from '../../src/classify/ip4-table.js';
import { PBIT_TCP, PBIT_UDP, PortProtoChecks } from '../../src/classify/ports.js';
import { parseCidr, parseIPv4 } from '../../src/util/ip.js';
import { ports } from './helpers.js';

const NONE = NO_ITEM;
const ip = parseIPv4;
function range(s: string, item: number) {
  const c = parseCidr(s);
  if (typeof c === 'string' || c.family !== 4) throw new Error(s);
  return { first: c.first, last: c.last, item };
}

t.test('M365 ranges, overlaps and rule order', async (t) => {
  // item: 0 = EXO 40.96.0.0/13 tcp 80,443; 1 = Entra 20.190.128.0/18 tcp 443;
  // 2 = a nested /24 inside EXO, any port; 3 = default acquire 0.0.0.0/0 tcp 80,443;
  // 4 = a catch-all with no ports/protocols; 5 = after the catch-all (never first).
  const checks = new PortProtoChecks([
    { protocols: ['tcp'], ports: ports('80', '443') },
    { protocols: ['tcp'], ports: ports('443') },
    { protocols: [], ports: [] },
    { protocols: ['tcp'], ports: ports('80', '443') },
    { protocols: [], ports: [] },
    { protocols: [], ports: [] },
  ]);
  const table = new Ip4Table(
    [
      range('40.96.0.0/13', 0),
      range('20.190.128.0/18', 1),
      range('40.97.3.0/24', 2),
      range('0.0.0.0/0', 3),
      { first: ip('192.168.0.0'), last: ip('192.168.255.255'), item: 4 },
      range('192.168.1.1/32', 5),
    ],
    checks,
  );
  const look = (a: string, port = 443, pbit = PBIT_TCP) => table.lookup(ip(a), pbit, port, NONE);
  t.equal(look('40.96.0.1'), 0);
  t.equal(look('40.96.0.0'), 0, 'first address');
  t.equal(look('40.103.255.255'), 0, 'last address of the /13');
  t.equal(look('40.104.0.0'), 3, 'one past: only default acquire');
  t.equal(look('40.95.255.255'), 3, 'one before');
  t.equal(look('20.190.130.5'), 1);
  t.equal(look('20.190.130.5', 80), 3, 'Entra rule is 443 only; default acquire takes 80');
  t.equal(look('20.190.130.5', 443, PBIT_UDP), NONE, 'udp: nothing');
  t.equal(look('40.97.3.7'), 0, 'earlier rule wins over the nested one');
  t.equal(look('40.97.3.7', 22), 2, 'nested any-port rule when the earlier one fails on port');
  t.equal(look('40.97.3.7', 22, PBIT_UDP), 2);
  t.equal(look('192.168.1.1', 22), 4, 'catch-all before the later /32');
  t.equal(look('8.8.8.8', 22), NONE);
  t.equal(look('0.0.0.0', 80), 3);
  t.equal(look('255.255.255.255', 80), 3);
  t.equal(table.lookup(ip('40.96.0.1'), PBIT_TCP, 443, 0), 0, 'best already 0: unchanged');
  t.equal(table.lookup(ip('8.8.8.8'), PBIT_TCP, 443, 2), 2, 'nothing below best');
  t.match(table.toString(), /^ip4\(6 ranges, \d+ intervals/);
});

t.test('lists stop after an any-port any-protocol item', async (t) => {
  const checks = new PortProtoChecks([
    { protocols: [], ports: [] },
    { protocols: ['tcp'], ports: ports('443') },
  ]);
  const table = new Ip4Table([range('10.0.0.0/8', 0), range('10.1.0.0/16', 1)], checks);
  t.ok(table.bytes > 0);
  t.equal(table.lookup(ip('10.1.2.3'), PBIT_TCP, 443, NONE), 0);
  t.equal(table.intervals, 5);
  t.match(table.toString(), /, 3 candidates/, 'item 1 dropped from the /16 slot');
});

t.test('empty table and the top of the address space', async (t) => {
  const checks = new PortProtoChecks([{ protocols: [], ports: [] }]);
  const empty = new Ip4Table([], checks);
  t.equal(empty.lookup(ip('1.2.3.4'), PBIT_TCP, 443, NONE), NONE);
  const top = new Ip4Table(
    [{ first: ip('255.255.255.254'), last: ip('255.255.255.255'), item: 0 }],
    checks,
  );
  t.equal(top.lookup(ip('255.255.255.255'), PBIT_TCP, 1, NONE), 0);
  t.equal(top.lookup(ip('255.255.255.253'), PBIT_TCP, 1, NONE), NONE);
});

t.test('agrees with a linear scan on many random ranges', async (t) => {
  let seed = 7;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed;
  };
  const n = 3000;
  const rs: Array<{ first: number; last: number; item: number }> = [];
  const rules: Array<{ protocols: ('tcp' | 'udp')[]; ports: { from: number; to: number }[] }> = [];
  for (let i = 0; i < n; i++) {
    const a = rnd() & 0x00ffffff; // cluster in 0.0.0.0/8 so ranges overlap
    const len = rnd() % 5000;
    rs.push({ first: a, last: Math.min(a + len, 0xffffffff), item: i });
    rules.push({ protocols: i % 3 === 0 ? ['udp'] : [], ports: i % 2 ? ports('443') : [] });
  }
  const checks = new PortProtoChecks(rules);
  const table = new Ip4Table(rs, checks);
  let bad = 0;
  for (let k = 0; k < 20000; k++) {
    const r = rs[rnd() % n]!;
    const x = [r.first, r.last, r.first - 1, r.last + 1, rnd() & 0x00ffffff][k % 5]! >>> 0;
    const port = k % 3 ? 443 : 80;
    const pbit = k % 4 ? PBIT_TCP : PBIT_UDP;
    let want = NONE;
    for (const q of rs) {
      if (q.first <= x && x <= q.last && checks.passes(q.item, pbit, port)) {
        want = q.item;
        break;
      }
    }
    if (table.lookup(x, pbit, port, NONE) !== want) bad++;
  }
  t.equal(bad, 0);
});
