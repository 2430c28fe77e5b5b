/**
 * `gsa-emu up --state-dir D &` followed by `gsa-emu status --state-dir D --wait S`, the
 * recipe of docs/usage.md "In a script or CI job", when another `up` already runs on D (a
 * second job on the same runner, a leftover from an earlier step). The new `up` stops at
 * once with GSA_ERR_BUSY and records why in D/up-failed.json; `status --wait` must say so,
 * not find the *other* `up` Connected and exit 0 (the script would go on to test through
 * proxies that were never started, and its final `gsa-emu stop` stop the other job's `up`).
 *
 * How long the new `up` takes to fail depends on the machine's load (a loaded CI runner took
 * more than the 1.5 s an earlier version waited): the second case slows it down on purpose.
 *
 * Everything listens on 127.0.0.1 (ports chosen by the kernel); both `up`s are stopped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { collect, slowPreload } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
const cli = (args: string[], nodeArgs: string[] = []): ChildProcess =>
  spawn(process.execPath, [...nodeArgs, mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

for (const slowMs of [0, 4000]) {
  const name =
    slowMs === 0
      ? 'status --wait reports the up launched with it that failed (BUSY)'
      : `the same when that up takes ${slowMs / 1000} s to get there (a loaded machine)`;
  t.test(name, { skip }, async (t) => busyCase(t, slowMs));
}

async function busyCase(t: Test, slowMs: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-ci-busy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A preload that holds the second `up` before it runs, as a busy machine would.
  const slow = await slowPreload(dir, slowMs);
  const upArgs = ['up', '--state-dir', dir, '--no-tty', '--socks-port', '0', '--http-port', '0'];

  // The first job's `up`, ready.
  const first = cli(upArgs);
  const firstDone = collect(first, 60_000);
  t.teardown(async () => {
    if (first.exitCode === null) first.kill('SIGTERM');
    await firstDone;
  });
  const ready = await collect(cli(['status', '--state-dir', dir, '--wait', '30']), 40_000);
  t.equal(ready.code, 0, `the first up is Connected: ${ready.err}`);

  // The second job: `up &` then `status --wait`, as the doc's script does.
  const second = collect(cli(upArgs, slowMs > 0 ? ['--import', slow] : []), 30_000);
  const wait = await collect(cli(['status', '--state-dir', dir, '--wait', '10']), 20_000);
  const s = await second;
  t.equal(s.code, 1, 'the second up fails');
  t.match(s.err, /in use by `gsa-emu up`/, 'with GSA_ERR_BUSY');
  t.not(wait.code, 0, 'status --wait does not report success for an up that failed to start');
  t.match(wait.err, /failed to start|in use/, 'and says why');
}
