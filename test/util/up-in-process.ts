/**
 * `gsa-emu up` run in this process with its output captured, for the tests of what `up`
 * prints (the banner, the try lines, the flow lines) and of how it starts and stops.
 */
import { PassThrough } from 'node:stream';
import { type UpOptions, up } from '../../src/cli/commands/up.js';

export interface UpInProcess {
  /** All `up` has printed so far. */
  readonly text: string;
  /** `up`'s end (it stops by itself with `once` or `exitAfter`). */
  readonly run: Promise<void>;
  /** Waits, 25 ms at a time and `tries` times at the most, until the output has `what`. */
  waitFor(what: string | RegExp, tries?: number): Promise<void>;
}

/**
 * Starts `up` with these options, printing into `out` (a PassThrough; a plain one unless
 * given, e.g. one that says it is a terminal).
 */
export function startUp(o: UpOptions, out: PassThrough = new PassThrough()): UpInProcess {
  let text = '';
  out.on('data', (c) => {
    text += c;
  });
  const run = up(o, out);
  const has = (what: string | RegExp) =>
    typeof what === 'string' ? text.includes(what) : what.test(text);
  return {
    get text() {
      return text;
    },
    run,
    async waitFor(what, tries = 400) {
      for (let i = 0; i < tries && !has(what); i++) await new Promise((r) => setTimeout(r, 25));
    },
  };
}

/** `gsa-emu up --once` on any free proxy ports, not a terminal; resolves with what it printed. */
export async function upOnce(o: UpOptions): Promise<string> {
  const u = startUp({ socksPort: '0', httpPort: '0', once: true, tty: false, ...o });
  await u.run;
  return u.text;
}

/** An output for `up` that reads and drops what it prints. */
export function sink(): PassThrough {
  const out = new PassThrough();
  out.resume();
  return out;
}
