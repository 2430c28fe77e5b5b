/** whenIdle(): fires once the count stood still for the whole period, never while it moves. */
import t from 'tap';
import { whenIdle } from '../../src/util/idle-timer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('fires after a still period, not while bytes move, not after cancel', async (t) => {
  let n = 0;
  let idleAt = 0;
  const t0 = Date.now();
  whenIdle(
    () => n,
    50,
    () => {
      idleAt = Date.now() - t0;
    },
  );
  // Bytes move for about 200 ms.
  for (let i = 0; i < 10; i++) {
    n += 10;
    await sleep(20);
  }
  t.equal(idleAt, 0, 'not idle while the count moves');
  await sleep(150);
  t.ok(idleAt >= 200, `idle once still (${idleAt} ms)`);

  let fired = false;
  const cancel = whenIdle(
    () => 0,
    30,
    () => {
      fired = true;
    },
  );
  cancel();
  await sleep(80);
  t.notOk(fired, 'cancelled');
});
