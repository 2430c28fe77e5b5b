/**
 * `gsa-emu stop`: stops the `gsa-emu up` that holds `<state-dir>/up.lock` as Ctrl+C would
 * (it closes the proxies, the tunnels and the edge, and removes client.json), and waits
 * until it has exited. For scripts that started `up` in the background, where the shell's
 * `kill %1` would only reach an `npx` wrapper.
 *
 * How: an authenticated `POST /shutdown` to the admin API named in client.json (the same
 * path in `up` as Ctrl+C, on every OS). Only when that API does not answer (client.json
 * not written yet, `--admin-port off`) SIGTERM, and the command says so; not on Windows,
 * where Node turns every signal into TerminateProcess (no clean shutdown): there only with
 * `--force`.
 *
 * A lock whose pid has exited, or now belongs to another process (the pid of a crashed `up`
 * reused: util/pid-lock.ts writerAlive), is stale: stop signals nothing, removes it (and a
 * stale client.json) and says no `up` runs.
 *
 * `gsa-emu stop --edge`: the same for the `gsa-emu edge` holding `<state-dir>/edge.lock`.
 * An edge has no admin API: it gets SIGTERM (its clean shutdown, as Ctrl+C); on Windows only
 * with `--force` (TerminateProcess: its lock is then removed here).
 *
 * A `stop` run an instant after `up &` (or `edge &`), before the lock is taken (after the
 * options are read; under `npx`, after npm has started it): nothing `up` writes before its
 * lock tells that it is starting, but on Linux /proc does (launched-ups.ts cliProcesses):
 * while a `gsa-emu up` of the folder runs without the lock, stop waits (within --wait) for
 * it to take the lock, then stops it, or to exit. Elsewhere such a `stop` finds nothing to
 * stop (exit 1) and the command keeps running: scripts stop after `status --wait` (an edge:
 * after its CA file appeared), see docs/usage.md.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  adminCall,
  netnsRunsOf,
  OtherNamespaceError,
  readClientState,
  removeStaleClientState,
  STATE_FILE,
} from '../../client/admin-client.js';
import { GsaError } from '../../errors.js';
import {
  type PidLockInfo,
  pidAlive,
  readPidLock,
  removeStaleLock,
  writerAlive,
} from '../../util/pid-lock.js';
import { stateDir } from '../../util/state-dir.js';
import { waitSeconds } from '../common.js';
import { cliProcesses } from '../launched-ups.js';
import { EDGE_LOCK } from './edge.js';

const POLL_MS = 100;
/** How long a POST /shutdown may take to be answered. */
const SHUTDOWN_ANSWER_MS = 3000;

export interface Stopped {
  pid: number;
  /** How it was asked: the admin API, or SIGTERM because that did not answer (`why`). */
  via: 'admin-api' | 'SIGTERM';
  why?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Asks the `up` of pid `pid` to shut down through the admin API of `<dir>/client.json`.
 * Resolves with true once it took the request, else with why it could not be asked. On
 * Windows a missing client.json (an `up` still starting) is waited for until `deadline`.
 */
async function askShutdown(dir: string, pid: number, deadline: number): Promise<true | string> {
  const file = join(dir, STATE_FILE);
  for (;;) {
    const s = readClientState(file);
    if (s !== null && s !== 'garbled' && s.pid === pid && s.admin) {
      if (!s.adminToken) return `${file} has no admin API token (an older gsa-emu)`;
      try {
        await adminCall(
          { url: `http://${s.admin}`, token: s.adminToken, from: file },
          'POST',
          '/shutdown',
          { pid },
          // Within --wait: an admin API that does not answer (a frozen up) must not
          // stretch the wait past it.
          { timeoutMs: Math.max(1, Math.min(SHUTDOWN_ANSWER_MS, deadline - Date.now())) },
        );
        return true;
      } catch (err) {
        // From another network namespace (the command of a `gsa-emu netns` run on the same
        // folder): its long "run it in that namespace" would read as if nothing was stopped.
        if (err instanceof OtherNamespaceError) {
          return `its admin API at ${s.admin} is in another network namespace than this command`;
        }
        return `its admin API at ${s.admin} did not take the request (${(err as Error).message})`;
      }
    }
    const why =
      s !== null && s !== 'garbled' && s.pid === pid
        ? 'it runs without an admin API (--admin-port off)'
        : `it has not written ${file} (still starting?)`;
    if (process.platform !== 'win32' || Date.now() >= deadline || !pidAlive(pid)) return why;
    await sleep(POLL_MS);
  }
}

async function waitExit(
  pid: number,
  deadline: number,
  seconds: number,
  after: string,
  what = 'up',
) {
  while (pidAlive(pid)) {
    if (Date.now() >= deadline) {
      throw new GsaError(
        'GSA_ERR_NOT_STOPPED',
        `"gsa-emu ${what}" (pid ${pid}) did not exit within ${seconds} s of ${after}`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** Sends `gsa-emu <what>` (pid `pid`) SIGTERM and waits for it to exit (waitExit). */
async function terminate(
  pid: number,
  what: 'up' | 'edge',
  deadline: number,
  seconds: number,
  why?: string,
): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch (err) {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `cannot signal "gsa-emu ${what}" (pid ${pid}): ${(err as Error).message}`,
    );
  }
  await waitExit(pid, deadline, seconds, why ? `SIGTERM (sent as ${why})` : 'SIGTERM', what);
}

/**
 * The lock of the running `gsa-emu <what>` in `lockFile`; GSA_ERR_NOT_RUNNING when there is
 * none, or when it is stale (its writer gone: removed, and `onStale` run).
 */
function runningLock(lockFile: string, what: string, onStale?: () => void): PidLockInfo {
  const lock = readPidLock(lockFile);
  if (lock === null) {
    throw new GsaError('GSA_ERR_NOT_RUNNING', `no running "gsa-emu ${what}" holds ${lockFile}`);
  }
  if (!writerAlive(lock)) {
    const reused = pidAlive(lock.pid);
    removeStaleLock(lockFile, lock);
    onStale?.();
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `no running "gsa-emu ${what}" holds ${lockFile}: it was left by pid ${lock.pid}, which ${reused ? 'is now another process' : 'has exited'} (removed the stale lock)`,
    );
  }
  return lock;
}

/**
 * The lock of the running `gsa-emu <what>` of `dir` (runningLock); while there is none but
 * such a process of the folder runs (Linux: one still starting), waits for its lock until
 * `deadline`.
 */
async function heldLock(
  dir: string,
  lockFile: string,
  what: 'up' | 'edge',
  deadline: number,
  seconds: number,
  onStale?: () => void,
): Promise<PidLockInfo> {
  let starting: number[] = [];
  for (;;) {
    try {
      return runningLock(lockFile, what, onStale);
    } catch (err) {
      if (!(err instanceof GsaError) || err.code !== 'GSA_ERR_NOT_RUNNING') throw err;
      const now = cliProcesses(dir, what) ?? [];
      if (now.length === 0) {
        if (starting.length === 0) throw err;
        throw new GsaError(
          'GSA_ERR_NOT_RUNNING',
          `${err.message}; the "gsa-emu ${what}" that ran without it (pid ${starting.join(', ')}) exited without taking it`,
        );
      }
      starting = now;
      if (Date.now() >= deadline) {
        throw new GsaError(
          'GSA_ERR_NOT_STOPPED',
          `"gsa-emu ${what}" (pid ${now.join(', ')}) runs for ${dir} but has not taken ${lockFile} within ${seconds} s (still starting, or shutting down)`,
        );
      }
      await sleep(POLL_MS);
    }
  }
}

/**
 * What "no `up` runs" leaves out when `gsa-emu netns` runs use the folder: `stop` does not
 * end them (a script inside a run, where GSA_EMU_STATE_DIR names the folder, would take the
 * bare "no up" for a broken run), they end when their command exits.
 */
function netnsHint(dir: string): string {
  const runs = netnsRunsOf(dir);
  const inside = runs.find((r) => r.inside);
  if (inside !== undefined) {
    return `; this command runs inside the "gsa-emu netns" run (pid ${inside.pid}) of that folder, which "gsa-emu stop" does not stop: the run ends when its command exits`;
  }
  if (runs.length === 0) return '';
  const pids = runs.map((r) => r.pid).join(', ');
  return `; "gsa-emu netns" (pid ${pids}) uses that folder: "gsa-emu stop" does not stop it, it ends when its command exits (or on SIGTERM: kill ${pids})`;
}

/**
 * Stops the `up` holding `<dir>/up.lock` (see the file comment); resolves once it has
 * exited. `force`: on Windows, terminate it when its admin API cannot be asked.
 */
export async function stopUp(
  dir: string,
  seconds: number,
  o: { force?: boolean } = {},
): Promise<Stopped> {
  const deadline = Date.now() + seconds * 1000;
  const lock = await heldLock(dir, join(dir, 'up.lock'), 'up', deadline, seconds, () =>
    removeStaleClientState(dir),
  ).catch((err: unknown) => {
    throw err instanceof GsaError && err.code === 'GSA_ERR_NOT_RUNNING'
      ? new GsaError(err.code, `${err.message}${netnsHint(dir)}`)
      : err;
  });
  const asked = await askShutdown(dir, lock.pid, deadline);
  if (asked === true) {
    await waitExit(lock.pid, deadline, seconds, 'the shutdown request');
    return { pid: lock.pid, via: 'admin-api' };
  }
  if (!pidAlive(lock.pid)) return { pid: lock.pid, via: 'admin-api' };
  if (process.platform === 'win32' && !o.force) {
    throw new GsaError(
      'GSA_ERR_NOT_STOPPED',
      `cannot ask "gsa-emu up" (pid ${lock.pid}) to shut down: ${asked}. On Windows a signal would end it at once, without its clean shutdown: stop it with Ctrl+C in its window, or give --force to terminate it`,
    );
  }
  await terminate(lock.pid, 'up', deadline, seconds, asked);
  return { pid: lock.pid, via: 'SIGTERM', why: asked };
}

/**
 * Stops the `gsa-emu edge` holding `<dir>/edge.lock` with SIGTERM (its clean shutdown);
 * resolves once it has exited. On Windows, where that signal is TerminateProcess, only with
 * `force` (see the file comment).
 */
export async function stopEdge(
  dir: string,
  seconds: number,
  o: { force?: boolean } = {},
): Promise<Stopped> {
  const lockFile = join(dir, EDGE_LOCK);
  const deadline = Date.now() + seconds * 1000;
  const lock = await heldLock(dir, lockFile, 'edge', deadline, seconds);
  if (process.platform === 'win32' && !o.force) {
    throw new GsaError(
      'GSA_ERR_NOT_STOPPED',
      `cannot ask "gsa-emu edge" (pid ${lock.pid}) to shut down: it has no admin API. On Windows a signal would end it at once, without its clean shutdown: stop it with Ctrl+C in its window, or give --force to terminate it`,
    );
  }
  await terminate(lock.pid, 'edge', deadline, seconds);
  // Terminated without its shutdown (Windows): the lock it left.
  removeStaleLock(lockFile, lock);
  return { pid: lock.pid, via: 'SIGTERM' };
}

export function register(program: Command): void {
  program
    .command('stop')
    .description(
      'stop the running "gsa-emu up" (--edge: "gsa-emu edge") of a state folder and wait until it has exited',
    )
    .option(
      '--state-dir <dir>',
      'state folder of the running client or edge (default $GSA_EMU_STATE_DIR, else ~/.gsa-emu)',
    )
    .option('--edge', 'stop the "gsa-emu edge" of the state folder (SIGTERM), not "gsa-emu up"')
    .option('--wait <seconds>', 'how long to wait for it to exit', '15')
    .option(
      '--force',
      'Windows: when it cannot be asked to shut down (its admin API; an edge never can), terminate it (no clean shutdown); elsewhere SIGTERM is used then anyway',
    )
    .action(async (o: { stateDir?: string; edge?: boolean; wait: string; force?: boolean }) => {
      const dir = stateDir(o.stateDir);
      const seconds = waitSeconds(o.wait);
      if (o.edge) {
        const r = await stopEdge(dir, seconds, { force: o.force === true });
        const how =
          process.platform === 'win32' ? ' by terminating it (no clean shutdown on Windows)' : '';
        process.stdout.write(`stopped "gsa-emu edge" (pid ${r.pid})${how}\n`);
        return;
      }
      const r = await stopUp(dir, seconds, { force: o.force === true });
      const how =
        r.via === 'SIGTERM'
          ? process.platform === 'win32'
            ? ` by terminating it (${r.why}; no clean shutdown on Windows)`
            : ` with SIGTERM (${r.why})`
          : '';
      process.stdout.write(
        `stopped "gsa-emu up" (pid ${r.pid})${how}; logs: ${join(dir, 'logs')}\n`,
      );
    });
}
