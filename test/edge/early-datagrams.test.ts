/**
 * UDP datagrams that reach the edge before its socket for the flow is connected are held,
 * at most 64 and 64 KiB per flow (DGRAM frames are not flow-controlled: 64 of 1 MiB each
 * were held before), and none larger than the relay would send.
 */
import t from 'tap';
import { EarlyDatagrams } from '../../src/edge/egress.js';

t.test('held up to 64 KiB', async (t) => {
  const e = new EarlyDatagrams(65_507);
  let n = 0;
  for (let i = 0; i < 100; i++) if (e.push(Buffer.alloc(2000))) n++;
  t.equal(n, 32, '32 x 2,000 bytes fit in 64 KiB');
  t.equal(e.held.length, 32);
  t.ok(e.push(Buffer.alloc(1536)), 'a smaller one still fits (65,536 bytes in all)');
  t.notOk(e.push(Buffer.alloc(1)), 'then nothing');
});

t.test('held up to 64 datagrams', async (t) => {
  const e = new EarlyDatagrams(65_507);
  let n = 0;
  for (let i = 0; i < 100; i++) if (e.push(Buffer.alloc(10))) n++;
  t.equal(n, 64);
});

t.test('none larger than the relay sends', async (t) => {
  const e = new EarlyDatagrams(1200);
  t.notOk(e.push(Buffer.alloc(1201)));
  t.ok(e.push(Buffer.alloc(1200)));
  t.equal(e.held.length, 1);
  t.notOk(new EarlyDatagrams(65_507).push(Buffer.alloc(1024 * 1024)), 'a 1 MiB frame is not held');
});
