/**
 * A timer for a point in time that may lie further ahead than Node's longest delay
 * (2^31-1 ms, about 24.8 days; a longer delay fires at once): it re-arms until then.
 * Unref'd: it never keeps the process alive.
 */

/** Node's longest timer delay. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface TimerAt {
  cancel(): void;
}

/** Calls `fn` at `at` (ms since the epoch, `Date.now()`'s clock); at once if that is past. */
export function timerAt(at: number, fn: () => void): TimerAt {
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const left = at - Date.now();
    timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fn, Math.max(0, left));
    timer.unref();
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}
