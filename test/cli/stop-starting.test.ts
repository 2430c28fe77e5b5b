/**
 * `gsa-emu stop` an instant after `gsa-emu up &` (or `edge &`), before the new process has
 * taken its lock: on Linux stop sees it in /proc, waits for the lock and stops it (it had
 * said "no running up" and left the `up` running: a CI job's leftover, holding its ports).
 * The starting process is held 2.5 s by a preload, as a loaded machine would.
 *
 * Everything listens on 127.0.0.1 (ports chosen by the kernel); every process is stopped
 * (SIGKILL in the teardown if a check failed first).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { collect, type Run, slowPreload } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = !existsSync(mainJs)
  ? 'dist/cli/main.js is missing: run `npm run build` first'
  : process.platform !== 'linux'
    ? `stop sees a starting process in /proc, Linux's; this is ${process.platform}`
    : false;

const HOLD_MS = 2500;

async function setup(t: Test): Promise<{ dir: string; slow: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-stop-starting-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const slow = await slowPreload(dir, HOLD_MS);
  return { dir, slow };
}

/** `node --import slow main.js args`, killed at the end of `t` if it still runs. */
function slowCli(
  t: Test,
  slow: string,
  args: string[],
): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', slow, mainJs, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = collect(child, 40_000);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done;
  });
  return { child, done };
}

const cli = (args: string[]): Promise<Run> =>
  collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    30_000,
  );

t.test('stop right after `up &` waits for it to start, then stops it', { skip }, async (t) => {
  const { dir, slow } = await setup(t);
  const up = slowCli(t, slow, [
    'up',
    '--state-dir',
    dir,
    '--no-tty',
    '--socks-port',
    '0',
    '--http-port',
    '0',
  ]);
  const stop = await cli(['stop', '--state-dir', dir, '--wait', '20']);
  t.equal(stop.code, 0, `stop succeeds: ${stop.err}`);
  t.match(stop.out, new RegExp(`stopped "gsa-emu up" \\(pid ${up.child.pid}\\)`), 'that up');
  const r = await up.done;
  t.equal(r.code, 0, `up exits cleanly: ${r.err}`);
  t.notOk(existsSync(join(dir, 'up.lock')), 'its lock is gone');
});

t.test('stop right after an `up &` that fails to start: says so, exit 1', { skip }, async (t) => {
  const { dir, slow } = await setup(t);
  const up = slowCli(t, slow, ['up', '--state-dir', dir, '--no-tty', '--socks-port', 'x']);
  const stop = await cli(['stop', '--state-dir', dir, '--wait', '20']);
  t.equal(stop.code, 1);
  t.match(stop.err, /no running "gsa-emu up" holds/);
  t.match(
    stop.err,
    new RegExp(`ran without it \\(pid ${up.child.pid}\\) exited without taking it`),
  );
  t.equal((await up.done).code, 2, 'the up failed (usage)');
});

t.test('stop --edge right after `edge &` waits for it, then stops it', { skip }, async (t) => {
  const { dir, slow } = await setup(t);
  const edge = slowCli(t, slow, ['edge', '--state-dir', dir, '--port', '0', '--no-tls']);
  const stop = await cli(['stop', '--edge', '--state-dir', dir, '--wait', '20']);
  t.equal(stop.code, 0, `stop --edge succeeds: ${stop.err}`);
  t.match(stop.out, new RegExp(`stopped "gsa-emu edge" \\(pid ${edge.child.pid}\\)`));
  const r = await edge.done;
  t.equal(r.code, 0, `the edge exits cleanly: ${r.err}`);
});

t.test('nothing starting and nothing running: at once, as before', { skip }, async (t) => {
  const { dir } = await setup(t);
  const started = Date.now();
  const stop = await cli(['stop', '--state-dir', dir, '--wait', '20']);
  t.equal(stop.code, 1);
  t.match(stop.err, /no running "gsa-emu up" holds/);
  t.notMatch(stop.err, /exited without/);
  t.ok(Date.now() - started < 10_000, 'did not wait out --wait');
});
