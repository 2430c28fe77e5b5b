/**
 * awakeTimeout counts only the time the process ran: a stall does not use up the bound,
 * and without one it fires after about its time, as setTimeout would.
 */
import t from 'tap';
import { awakeTimeout, MAX_STEP_MS } from '../../src/util/awake-timeout.js';

function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {}
}

t.test('fires after its time when nothing stalls', async (t) => {
  const started = performance.now();
  await new Promise<void>((r) => awakeTimeout(500, r));
  const took = performance.now() - started;
  t.ok(took >= 500 && took < 5000, `after about 500 ms (took ${Math.round(took)} ms)`);
});

t.test('a stall counts at most one step', async (t) => {
  const started = performance.now();
  let fired = false;
  const timer = awakeTimeout(500, () => {
    fired = true;
  });
  stall(1000);
  await new Promise((r) => setTimeout(r, 150));
  t.notOk(fired, 'not fired right after a stall twice its time');
  await new Promise((r) => setTimeout(r, 600));
  t.ok(fired, 'fired once the running time adds up');
  t.ok(performance.now() - started >= 1000 + 500 - MAX_STEP_MS, 'counting the stall as one step');
  timer.cancel();
});

t.test('cancel: never fires', async (t) => {
  let fired = false;
  awakeTimeout(100, () => {
    fired = true;
  }).cancel();
  await new Promise((r) => setTimeout(r, 400));
  t.notOk(fired);
});
