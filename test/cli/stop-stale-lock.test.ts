/**
 * A stale `up.lock` whose pid now belongs to an unrelated process.
 *
 * `up` crashed (SIGKILL, power loss, a reboot) and left `<state-dir>/up.lock` naming pid N.
 * Pids are reused, so N may now be any process of the same user. "Is pid N alive?" is not
 * "is pid N the `gsa-emu up` that wrote this lock?" (util/pid-lock.ts writerAlive: the
 * process start of /proc/<pid>/stat, or a start after the lock's `startedAt`):
 * - `gsa-emu stop` leaves that process alone, says no `up` runs (GSA_ERR_NOT_RUNNING) and
 *   removes the stale lock (and a stale client.json);
 * - `gsa-emu up` takes the lock over instead of GSA_ERR_BUSY.
 * And the fallback: an `up` that cannot be asked through its admin API (no client.json
 * yet) gets SIGTERM on POSIX, and stop says so.
 *
 * The unrelated processes are `sleep 30` children of this test (killed at the end).
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stopUp } from '../../src/cli/commands/stop.js';
import { writeClientState } from '../../src/client/admin-client.js';
import {
  acquirePidLock,
  processStartId,
  readPidLock,
  writerAlive,
} from '../../src/util/pid-lock.js';

const posix = process.platform !== 'win32';

/** A live `sleep 30` child (not gsa-emu), killed at the end of `t`. */
async function unrelated(t: Test) {
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((res) =>
    other.once('exit', (_c, sig) => res(sig)),
  );
  t.teardown(() => {
    if (other.exitCode === null && other.signalCode === null) other.kill('SIGKILL');
  });
  await new Promise((res) => other.once('spawn', res));
  return { other, pid: other.pid!, exited };
}

/** A live process that is not gsa-emu, and a lock left by a dead `up` whose pid it reused. */
async function staleLockOfUnrelatedProcess(t: Test, lock: Record<string, unknown> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-pidreuse-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { other, exited } = await unrelated(t);
  // What acquirePidLock of an older gsa-emu wrote, from a run an hour ago (before the reboot).
  writeFileSync(
    join(dir, 'up.lock'),
    `${JSON.stringify({
      pid: other.pid,
      command: 'up',
      startedAt: new Date(Date.now() - 3600_000).toISOString(),
      ...lock,
    })}\n`,
  );
  return { dir, other, exited };
}

t.test(
  'gsa-emu stop does not signal a process that merely reused the pid of a dead up',
  { skip: posix ? false : 'needs sleep' },
  async (t) => {
    const { dir, other, exited } = await staleLockOfUnrelatedProcess(t);
    writeClientState(dir, {
      pid: other.pid!,
      startedAt: new Date(Date.now() - 3600_000).toISOString(),
      admin: '127.0.0.1:1',
      socks: null,
      http: null,
      pac: null,
      edge: '',
      logs: '',
      adminToken: 'old',
    });
    let stopped: unknown = null;
    let error: unknown = null;
    try {
      stopped = await stopUp(dir, 2);
    } catch (e) {
      error = e;
    }
    // Give a SIGTERM, if one was sent, time to land.
    const sig = await Promise.race([exited, new Promise((r) => setTimeout(() => r('alive'), 300))]);
    t.equal(sig, 'alive', `the unrelated process (pid ${other.pid}) must not be killed`);
    t.equal(stopped, null, 'stop must not report that it stopped "gsa-emu up"');
    t.match(error, { code: 'GSA_ERR_NOT_RUNNING' }, 'stop says no gsa-emu up runs (stale lock)');
    t.match((error as Error).message, /is now another process \(removed the stale lock\)/);
    t.notOk(existsSync(join(dir, 'up.lock')), 'the stale lock is removed');
    t.notOk(existsSync(join(dir, 'client.json')), 'and the stale client.json');
    t.notOk(existsSync(join(dir, 'client.token')), 'and its token file');
  },
);

t.test(
  'up takes over a lock whose pid now belongs to an unrelated process',
  { skip: posix ? false : 'needs sleep' },
  async (t) => {
    const { dir } = await staleLockOfUnrelatedProcess(t);
    let release: (() => void) | null = null;
    let error: unknown = null;
    try {
      release = acquirePidLock(join(dir, 'up.lock'), 'up', 'the state directory', 'hint');
    } catch (e) {
      error = e;
    }
    release?.();
    t.equal(error, null, 'the stale lock is taken over, not GSA_ERR_BUSY');
  },
);

t.test(
  'Linux: the start id in a lock tells a reused pid even when startedAt fits',
  { skip: process.platform === 'linux' ? false : 'reads /proc' },
  async (t) => {
    const { pid } = await unrelated(t);
    const startedAt = new Date().toISOString();
    const id = processStartId(pid);
    t.match(id, /^[0-9a-f-]*:\d+$/, `the start id of pid ${pid}: ${id}`);
    t.equal(processStartId(pid), id, 'stable');
    t.ok(writerAlive({ pid, startedAt, procStart: id! }), 'the same process: alive');
    t.notOk(writerAlive({ pid, startedAt, procStart: `${id}0` }), 'another start: not the writer');
    t.ok(writerAlive({ pid, startedAt }), 'no start id, startedAt after its start: alive');
    // This process's own locks carry its start id.
    const dir = await mkdtemp(join(tmpdir(), 'gsa-pidreuse-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const release = acquirePidLock(join(dir, 'x.lock'), 'up', 'X', 'hint');
    t.equal(readPidLock(join(dir, 'x.lock'))?.procStart, processStartId(process.pid));
    release();
  },
);

t.test(
  'stop: an up that cannot be asked through its admin API gets SIGTERM on POSIX, saying so',
  { skip: posix ? false : 'POSIX signals' },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-stop-sigterm-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const { pid, exited } = await unrelated(t);
    // Its lock, written just after it started; no client.json (still starting).
    writeFileSync(
      join(dir, 'up.lock'),
      `${JSON.stringify({ pid, command: 'up', startedAt: new Date().toISOString() })}\n`,
    );
    const r = await stopUp(dir, 5);
    t.match(r, { pid, via: 'SIGTERM', why: /has not written .*client\.json/ });
    t.equal(await exited, 'SIGTERM', 'it got SIGTERM');
  },
);
