import t from 'tap';
import { timerAt } from '../../src/util/timer-at.js';

t.test('timerAt: fires at the time, at once when past, never once cancelled', async (t) => {
  // The timers are unref'd: something must keep the process alive meanwhile.
  const hold = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(hold));
  const start = Date.now();
  const fired = await new Promise<number>((r) => timerAt(start + 50, () => r(Date.now())));
  t.ok(fired - start >= 45, `not before its time (${fired - start} ms)`);
  const past = await new Promise<number>((r) => timerAt(start - 1e6, () => r(Date.now())));
  t.ok(past - fired < 1000, 'a past time fires at once');
  let late = false;
  timerAt(Date.now() + 20, () => {
    late = true;
  }).cancel();
  await new Promise((r) => setTimeout(r, 60));
  t.notOk(late, 'cancelled');
});
