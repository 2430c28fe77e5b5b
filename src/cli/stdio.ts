/**
 * Output that can no longer be written: `gsa-emu flows --json | head -1`, `gsa-emu up |
 * head -3`. Node ignores SIGPIPE, so once the reader is gone the next write to stdout fails
 * with EPIPE, an 'error' event on process.stdout that nothing handled: the process died
 * with a stack trace (and `up` left its state files behind).
 *
 * With the guard a write error on stdout or stderr is not a crash: the stream is taken as
 * gone (later writes to it are dropped) and the command goes on. A short command finishes
 * quietly with its own exit status (0 when it did its work); a long-running one (`up`,
 * `edge`) keeps running until it is stopped, and `up` stops writing its flow lines
 * (`onOutputGone`). EPIPE is said nowhere (the reader left on purpose); another write error
 * (EIO, ENOSPC) is said once on the other stream, when it still works.
 */

type Std = NodeJS.WriteStream;

const gone = new Set<Std>();
const listeners = new Set<(s: Std) => void>();
let installed = false;

/** Whether writes to `s` (process.stdout or process.stderr) fail for good. */
export function outputGone(s: NodeJS.WritableStream): boolean {
  return gone.has(s as Std);
}

/** Calls `fn` once `s` is gone (at once when it is already); returns the unsubscriber. */
export function onOutputGone(s: NodeJS.WritableStream, fn: () => void): () => void {
  if (gone.has(s as Std)) {
    fn();
    return () => {};
  }
  const l = (x: Std): void => {
    if (x === s) fn();
  };
  listeners.add(l);
  return () => listeners.delete(l);
}

function onError(s: Std, e: NodeJS.ErrnoException): void {
  if (gone.has(s)) return;
  gone.add(s);
  if (e?.code !== 'EPIPE' && e?.code !== 'ERR_STREAM_DESTROYED') {
    const other = s === process.stdout ? process.stderr : process.stdout;
    if (!gone.has(other)) {
      other.write(
        `gsa-emu: cannot write to ${s === process.stdout ? 'stdout' : 'stderr'}: ${e?.message ?? String(e)}\n`,
      );
    }
  }
  for (const l of [...listeners]) l(s);
}

/** Installs the guard on process.stdout and process.stderr (once per process). */
export function guardOutput(): void {
  if (installed) return;
  installed = true;
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => onError(s, e));
  }
}
