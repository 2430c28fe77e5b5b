/**
 * `gsa-emu stop` and `up` on Windows.
 *
 * On Windows there are no signals: Node turns SIGTERM (and SIGINT, SIGQUIT, SIGKILL) into
 * TerminateProcess, so `up`'s shutdown would never run. stop asks `up` through its admin
 * API (POST /shutdown, test/e2e/background-up.test.ts) and, when that cannot be asked,
 * sends no terminating signal unless `--force` is given. `up` stops on Ctrl+Break
 * (SIGBREAK) as on Ctrl+C, and the commands its banner suggests are quoted for cmd.exe
 * (double quotes: cmd.exe does not know single quotes).
 *
 * Windows is simulated: process.platform reads 'win32' and process.kill records the
 * signals instead of sending them. The `up` stand-in is a `sleep` child of this test
 * (killed at the end).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stopUp } from '../../src/cli/commands/stop.js';
import { stateDirArg } from '../../src/cli/commands/up.js';
import { shellWord } from '../../src/util/shell-word.js';
import { startUp } from '../util/up-in-process.js';

const posix = process.platform !== 'win32';

/** process.platform reads 'win32' until `t` ends (or `restore`). */
function simulateWindows(t: Test): () => void {
  const platform = Object.getOwnPropertyDescriptor(process, 'platform')!;
  Object.defineProperty(process, 'platform', { ...platform, value: 'win32' });
  const restore = () => Object.defineProperty(process, 'platform', platform);
  t.teardown(restore);
  return restore;
}

async function standInLock(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-stop-win-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const standIn = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => {
    standIn.kill('SIGKILL');
  });
  await new Promise((res) => standIn.once('spawn', res));
  const pid = standIn.pid!;
  writeFileSync(
    join(dir, 'up.lock'),
    `${JSON.stringify({ pid, command: 'up', startedAt: new Date().toISOString() })}\n`,
  );
  return { dir, pid };
}

/** Records the signals sent to `pid` instead of sending them (signal 0 still probes). */
function recordKills(t: Test, pid: number): Array<string | number> {
  const realKill = process.kill;
  const sent: Array<string | number> = [];
  process.kill = ((p: number, sig?: string | number) => {
    if (sig === 0) return realKill.call(process, p, 0);
    if (p === pid) {
      sent.push(sig ?? 'SIGTERM');
      return true;
    }
    return realKill.call(process, p, sig);
  }) as typeof process.kill;
  t.teardown(() => {
    process.kill = realKill;
  });
  return sent;
}

const TERMINATING = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGKILL', 15, 2, 3, 9];

t.test(
  'stop on Windows does not terminate up with process.kill(pid, SIGTERM)',
  { skip: posix ? false : 'needs sleep' },
  async (t) => {
    const { dir, pid } = await standInLock(t);
    const sent = recordKills(t, pid);
    simulateWindows(t);
    const err = await stopUp(dir, 0.5).catch((e: unknown) => e);
    const terminating = sent.filter((s) => TERMINATING.includes(s));
    t.same(terminating, [], 'no signal that Windows turns into TerminateProcess');
    t.match(err, {
      code: 'GSA_ERR_NOT_STOPPED',
      message: /cannot ask "gsa-emu up" \(pid \d+\) to shut down: .*Ctrl\+C .*--force/,
    });
  },
);

t.test(
  'stop --force on Windows terminates an up that cannot be asked, and says so',
  { skip: posix ? false : 'needs sleep' },
  async (t) => {
    const { dir, pid } = await standInLock(t);
    const sent = recordKills(t, pid);
    simulateWindows(t);
    // The recorded SIGTERM does not end the stand-in: stop times out waiting for it.
    const err = await stopUp(dir, 0.5, { force: true }).catch((e: unknown) => e);
    t.same(sent, ['SIGTERM'], 'TerminateProcess, as asked');
    t.match(err, { code: 'GSA_ERR_NOT_STOPPED', message: /within 0\.5 s of SIGTERM/ });
  },
);

t.test('the banner quotes for cmd.exe on Windows, for sh elsewhere', async (t) => {
  t.equal(shellWord('C:\\Users\\ann\\.gsa-emu', 'win32'), 'C:\\Users\\ann\\.gsa-emu');
  t.equal(
    shellWord('C:\\Users\\Ann Lee\\.gsa-emu', 'win32'),
    '"C:\\Users\\Ann Lee\\.gsa-emu"',
    'double quotes',
  );
  t.equal(shellWord("C:\\it's here", 'win32'), '"C:\\it\'s here"', 'a single quote is literal');
  t.equal(shellWord('/home/ann lee', 'linux'), "'/home/ann lee'");
  t.equal(shellWord("/it's", 'darwin'), `'/it'\\''s'`);
  t.equal(stateDirArg('C:\\a b', 'win32'), ' --state-dir "C:\\a b"');
});

t.test('up stops on Ctrl+Break (SIGBREAK) on Windows as on Ctrl+C', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-up-win-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const before = process.listenerCount('SIGBREAK');
  const restore = simulateWindows(t);
  const u = startUp({
    socksPort: '0',
    httpPort: '0',
    exitAfter: '15',
    tty: false,
    stateDir: dir,
    processLookup: false,
  });
  // Listening from the start (a Ctrl+Break during setup stops it too).
  await new Promise((r) => setImmediate(r));
  const during = process.listenerCount('SIGBREAK');
  restore();
  t.equal(during, before + 1, 'up listens for SIGBREAK');
  await u.waitFor('Ctrl+C to stop.');
  t.match(u.text, 'Ctrl+C to stop.', 'up is ready');
  process.emit('SIGBREAK', 'SIGBREAK');
  await u.run;
  t.match(u.text, /stopping\.\.\.\nstopped\. logs: /, 'its clean shutdown');
  t.equal(process.listenerCount('SIGBREAK'), before, 'and no listener left');
});
