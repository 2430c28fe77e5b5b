import t from 'tap';
import {
  mergePorts,
  PBIT_OTHER,
  PBIT_TCP,
  PBIT_UDP,
  PortProtoChecks,
  protoBit,
} from '../../src/classify/ports.js';
import { ports } from './helpers.js';

t.test('protoBit', async (t) => {
  t.equal(protoBit(6), PBIT_TCP);
  t.equal(protoBit(17), PBIT_UDP);
  t.equal(protoBit(1), PBIT_OTHER);
  t.equal(protoBit(Number.NaN), PBIT_OTHER);
});

t.test('mergePorts sorts and merges overlapping and adjacent ranges', async (t) => {
  t.same(mergePorts(ports('443', '80', '81', '8000-8999', '8500-9100')), [
    { from: 80, to: 81 },
    { from: 443, to: 443 },
    { from: 8000, to: 9100 },
  ]);
  t.same(mergePorts([]), []);
});

t.test('passes: any, one range, several ranges, protocols', async (t) => {
  const c = new PortProtoChecks([
    { protocols: [], ports: [] }, // 0: anything
    { protocols: ['tcp'], ports: ports('443') }, // 1
    { protocols: ['udp'], ports: ports('3478-3481') }, // 2: Teams media
    { protocols: ['tcp', 'udp'], ports: ports('80', '443', '8000-8999') }, // 3
    { protocols: [], ports: ports('0-65535') }, // 4: every real port, but not garbage
  ]);
  t.equal(c.size, 5);
  t.equal(c.always[0], 1);
  t.equal(c.always[4], 0);
  t.ok(c.passes(0, PBIT_OTHER, Number.NaN), 'empty lists admit anything, even garbage');
  t.ok(c.passes(1, PBIT_TCP, 443));
  t.notOk(c.passes(1, PBIT_UDP, 443));
  t.notOk(c.passes(1, PBIT_TCP, 444));
  t.notOk(c.passes(1, PBIT_TCP, 442));
  for (const p of [3478, 3479, 3481]) t.ok(c.passes(2, PBIT_UDP, p), `${p}`);
  for (const p of [3477, 3482]) t.notOk(c.passes(2, PBIT_UDP, p), `${p}`);
  for (const p of [80, 443, 8000, 8512, 8999]) t.ok(c.passes(3, PBIT_UDP, p), `${p}`);
  for (const p of [79, 81, 442, 444, 7999, 9000, Number.NaN])
    t.notOk(c.passes(3, PBIT_TCP, p), `${p}`);
  t.notOk(c.passes(3, PBIT_OTHER, 443), 'ICMP is neither tcp nor udp');
  t.ok(c.passes(4, PBIT_OTHER, 0));
  t.notOk(c.passes(4, PBIT_TCP, Number.NaN));
  t.notOk(c.passes(4, PBIT_TCP, 70000));
  t.match(c.toString(), /5 items, 1 with several/);
});
