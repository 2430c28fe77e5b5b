/**
 * A timeout that counts only the time this process was running: a bound on how long
 * something may take to answer that an event-loop stall (a loaded host descheduling the
 * process, a long synchronous task, a GC pause, SIGSTOP) does not use up.
 *
 * A plain `setTimeout(fail, ms)` measures wall-clock time, and after a stall longer than
 * `ms` libuv runs the expired timer before it polls for I/O: an answer that arrived during
 * the stall (a connect completed by the kernel, a lookup done on the thread pool) is read
 * only after the timeout has already said there was none. Here the time is counted in
 * steps of TICK_MS, a step counting at most MAX_STEP_MS however late it fires, and once the
 * bound is reached the verdict waits for one I/O poll (setImmediate runs after it), so an
 * answer that is already there wins.
 */

/** How often the time is counted (ms). */
export const TICK_MS = 100;
/** The most one step counts, however late it fired (ms). */
export const MAX_STEP_MS = 2 * TICK_MS;

export interface AwakeTimeout {
  cancel(): void;
}

/** Calls `onTimeout` once `ms` of running time have passed, unless cancelled first. */
export function awakeTimeout(ms: number, onTimeout: () => void): AwakeTimeout {
  let counted = 0;
  let last = performance.now();
  let done = false;
  let immediate: NodeJS.Immediate | null = null;
  const timer = setInterval(() => {
    const now = performance.now();
    counted += Math.min(now - last, MAX_STEP_MS);
    last = now;
    if (counted < ms) return;
    clearInterval(timer);
    // Let the I/O that is ready be read first: an answer that came during a stall wins.
    immediate = setImmediate(() => {
      immediate = null;
      if (done) return;
      done = true;
      onTimeout();
    });
  }, TICK_MS);
  return {
    cancel() {
      done = true;
      clearInterval(timer);
      if (immediate !== null) clearImmediate(immediate);
    },
  };
}
