/**
 * The half-close timeout of relayed flows (docs/decisions/forward-half-close-timeout.md):
 * once one direction of a flow has ended, the other gets this long without a byte moving
 * before the flow is given up (Linux's tcp_fin_timeout is 60 s too).
 */
export const HALF_CLOSE_TIMEOUT_MS = 60_000;

/**
 * Calls `onIdle` once `moved()` (a byte count that grows while anything moves) has not
 * changed for `ms`. The count is read only when the timer fires, so the data path pays
 * nothing; the timer does not keep the process alive. Returns a function that cancels it.
 */
export function whenIdle(moved: () => number, ms: number, onIdle: () => void): () => void {
  let seen = moved();
  let timer: NodeJS.Timeout | null = null;
  const tick = (): void => {
    const now = moved();
    if (now !== seen) {
      seen = now;
      timer = setTimeout(tick, ms).unref();
      return;
    }
    timer = null;
    onIdle();
  };
  timer = setTimeout(tick, ms).unref();
  return () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
}
