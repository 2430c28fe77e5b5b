/**
 * Exiting although a handle was left open.
 *
 * A handle that is open but idle (a socket whose close never completed, see
 * docs/decisions/forward-socket-reset.md) does not keep Node's event loop alive, so the loop
 * empties; Node then closes every handle and waits for each to finish closing, and for such
 * a handle that wait never ends: the process spins a CPU after its command is done. No
 * timer runs by then, so the guard acts on 'beforeExit', the last point where JavaScript
 * still runs: when handles other than the terminal's are still listed, it names them and
 * exits with the command's exit code.
 */

/** Handle types that are the process's own stdio, not ours to worry about. */
const STDIO = new Set(['TTYWrap', 'PipeWrap']);

/** The handle types that would hold the exit up: all listed but the process's stdio. */
export function leftoverHandles(resources: string[]): string[] {
  return resources.filter((r) => !STDIO.has(r));
}

/** Installs the guard (once per process). */
export function guardExit(): void {
  process.once('beforeExit', () => {
    const left = leftoverHandles(process.getActiveResourcesInfo());
    if (left.length === 0) return;
    process.stderr.write(
      `gsa-emu: exiting with handles still open (${left.join(', ')}); please report this\n`,
    );
    process.exit();
  });
}
