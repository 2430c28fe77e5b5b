/**
 * A CI job's retry: an `up` that failed to start (a bad tenant file) and, right after it,
 * `up &` + `status --wait` on the same state folder. The first `up` left its reason in
 * up-failed.json; `status --wait` must wait for the `up` launched with it, not report the
 * earlier failure as its own (it exited 1 while the new `up` went on to connect). A newer
 * `up` that fails in turn is still reported.
 *
 * Linux (/proc tells which `up` started after the one that failed); everything listens on
 * 127.0.0.1 (ports chosen by the kernel); every `up` is stopped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { collect, slowPreload } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip =
  process.platform !== 'linux'
    ? 'needs Linux (/proc)'
    : existsSync(mainJs)
      ? false
      : 'dist/cli/main.js is missing: run `npm run build` first';
const cli = (args: string[], nodeArgs: string[] = []): ChildProcess =>
  spawn(process.execPath, [...nodeArgs, mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

t.test('status --wait waits for the retry after a failed up', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-ci-retry-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad-tenant.json');
  await writeFile(bad, '{bad');
  const upArgs = ['up', '--state-dir', dir, '--no-tty', '--socks-port', '0', '--http-port', '0'];

  const failed = await collect(cli([...upArgs, '--tenant', bad]), 30_000);
  t.equal(failed.code, 1, 'the first up fails on its tenant file');
  t.ok(existsSync(join(dir, 'up-failed.json')), 'and records why');

  // The retry, slowed down so that it is still starting when status looks.
  const slow = await slowPreload(dir, 1500);
  const retry = cli(upArgs, ['--import', slow]);
  const retryDone = collect(retry, 60_000);
  t.teardown(async () => {
    if (retry.exitCode === null) retry.kill('SIGTERM');
    await retryDone;
  });
  const wait = await collect(cli(['status', '--state-dir', dir, '--wait', '30']), 40_000);
  t.equal(wait.code, 0, `status --wait reports the retry Connected: ${wait.err}`);
  t.notMatch(wait.err, /failed to start/);
  t.match(wait.out, /Global Secure Access: Connected/);

  // A newer up that fails is still this command's failure.
  const stopped = await collect(cli(['stop', '--state-dir', dir]), 30_000);
  t.equal(stopped.code, 0, `stop: ${stopped.err}`);
  const again = collect(cli([...upArgs, '--tenant', bad], ['--import', slow]), 30_000);
  const wait2 = await collect(cli(['status', '--state-dir', dir, '--wait', '20']), 30_000);
  t.equal((await again).code, 1);
  t.equal(wait2.code, 1, 'status --wait fails with it');
  t.match(wait2.err, /failed to start: .*bad-tenant\.json/);
});
