/**
 * Child processes in tests: bounded waits that collect their output, and Node children
 * that run TypeScript given inline (ESM) through tap's TypeScript loader, for scenarios that
 * must not run in the test process (one that would leave it unable to exit, or one that
 * needs another network namespace).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Node arguments that run the inline ESM TypeScript `script`. */
export function tsEvalArgs(script: string): string[] {
  const tsImport = new URL(
    '../../node_modules/@tapjs/typescript/dist/esm/import.mjs',
    import.meta.url,
  ).href;
  return ['--import', tsImport, '--input-type=module', '-e', script];
}

export interface Run {
  /** Exit code (127 when it could not start), or null when killed. */
  code: number | null;
  /** The signal that ended it ('SIGKILL' when it ran past the time limit), or null. */
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/**
 * Waits for a child and collects its output; it is killed after `timeoutMs` (bounded).
 * `atExit`: resolve when the child exits (its output until then, 200 ms later), not when
 * its pipes close: for a shell whose background children keep them open.
 */
export function collect(
  c: ChildProcess,
  timeoutMs: number,
  opts: { atExit?: boolean } = {},
): Promise<Run> {
  let out = '';
  let err = '';
  c.stdout?.on('data', (d) => {
    out += d;
  });
  c.stderr?.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, out, err: `${err}${e.message}` });
    });
    if (opts.atExit) {
      c.once('exit', (code, signal) => {
        clearTimeout(timer);
        // Output already in the pipes, then let go of them.
        setTimeout(() => {
          c.stdout?.destroy();
          c.stderr?.destroy();
          resolve({ code, signal, out, err });
        }, 200);
      });
      return;
    }
    c.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

/** Runs `script` in a child node; kills it after `timeoutMs`. */
export function runTs(script: string, timeoutMs = 20_000): Promise<Run> {
  return collect(
    spawn(process.execPath, tsEvalArgs(script), { stdio: ['ignore', 'pipe', 'pipe'] }),
    timeoutMs,
  );
}

/**
 * Writes `<dir>/slow.mjs`, a preload (`node --import <it>`) that holds a process `ms` before
 * its script runs, as a loaded machine would; returns its path.
 */
export async function slowPreload(dir: string, ms: number): Promise<string> {
  const file = join(dir, 'slow.mjs');
  await writeFile(file, `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${ms});\n`);
  return file;
}
