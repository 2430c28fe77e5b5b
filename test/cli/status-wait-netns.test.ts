/**
 * `gsa-emu netns --state-dir D ... &` followed by `gsa-emu status --state-dir D --wait S`
 * when the run fails to start (here: a tenant file that is not YAML). The run records why
 * in D/netns-<pid>-failed.json, its own file (runs of a folder go side by side, and next to
 * an `up`); `status --wait` must end at once with that failure, naming the run's pid and
 * log, not wait its S seconds for a client that never comes (it did), nor report the
 * Connected of another client of D (an `up` that ran before). A failure recorded before
 * `status` was launched is not its own.
 *
 * Needs root and iproute2 (netSkip), and what `netns` checks before it starts (/dev/net/tun,
 * the addon). No namespace is made (the run fails before); the `up` listens on 127.0.0.1
 * (ports chosen by the kernel) and is stopped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { netnsUnavailable } from '../../src/cli/commands/netns.js';
import { collect, slowPreload } from '../util/ts-child.js';
import { netSkip } from './netns-helpers.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const unavailable = netSkip ? null : netnsUnavailable();
const skip =
  netSkip ||
  (unavailable ? `needs what gsa-emu netns needs: ${unavailable}` : false) ||
  (existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first');
const cli = (args: string[], nodeArgs: string[] = []): ChildProcess =>
  spawn(process.execPath, [...nodeArgs, mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

/** `status --state-dir dir --wait s`: its result and how long it took (ms). */
async function statusWait(dir: string, s: number) {
  const t0 = Date.now();
  const r = await collect(
    cli(['status', '--state-dir', dir, '--wait', String(s)]),
    s * 1000 + 15_000,
  );
  return { ...r, ms: Date.now() - t0 };
}

/** What status says of the failed run `pid` of `dir`. */
const named = (dir: string, pid: number): RegExp =>
  new RegExp(
    `"gsa-emu netns" \\(pid ${pid}, log ${join(dir, 'logs', `netns-${pid}-client.log`).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) failed to start: .*bad-tenant\\.yaml`,
  );

async function setup(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-status-netns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad-tenant.yaml');
  await writeFile(bad, 'bad: [\n');
  const netnsArgs = ['netns', '--state-dir', dir, '--tenant', bad, '--', 'sleep', '30'];
  return { dir, netnsArgs };
}

t.test('status --wait reports the netns run launched with it that failed', { skip }, async (t) => {
  const { dir, netnsArgs } = await setup(t);
  const run = cli(netnsArgs);
  const runDone = collect(run, 30_000);
  let runEnd = 0;
  run.once('exit', () => {
    runEnd = Date.now();
  });
  const wait = await statusWait(dir, 60);
  const waitEnd = Date.now();
  const r = await runDone;
  t.equal(r.code, 1, `the netns run fails: ${r.err}`);
  t.match(r.err, /bad-tenant\.yaml/);
  t.equal(wait.code, 1, 'status --wait exits 1');
  // Not its 60 s: a few polls after the run's end (the machine may be loaded).
  t.ok(
    waitEnd - runEnd < 10_000,
    `within 10 s of the run's end (${waitEnd - runEnd} ms; status took ${wait.ms} ms)`,
  );
  t.match(wait.err, named(dir, run.pid!), 'naming the run, its log and its error');
  t.notMatch(wait.err, /no Connected client within/);
  // The log it names has the error: not an empty file.
  const log = readFileSync(join(dir, 'logs', `netns-${run.pid}-client.log`), 'utf8');
  t.match(log, /"msg":"failed to start"/, 'the log it names says so');
  t.match(log, /bad-tenant\.yaml/, 'with the error');

  // Later, that record is not the failure of a status launched after it.
  await new Promise((r) => setTimeout(r, 2500));
  const later = await statusWait(dir, 1);
  t.equal(later.code, 1);
  t.match(later.err, /no Connected client within 1 s/, 'an older record: not its failure');
});

t.test('the same while an up of the folder is Connected', { skip }, async (t) => {
  const { dir, netnsArgs } = await setup(t);
  const up = cli(['up', '--state-dir', dir, '--no-tty', '--socks-port', '0', '--http-port', '0']);
  const upDone = collect(up, 90_000);
  t.teardown(async () => {
    if (up.exitCode === null) up.kill('SIGTERM');
    await upDone;
  });
  const ready = await statusWait(dir, 30);
  t.equal(ready.code, 0, `the up is Connected: ${ready.err}`);

  // The run held 3 s before it runs (a loaded machine): status sees the up Connected first.
  const slow = await slowPreload(dir, 3000);
  const run = cli(netnsArgs, ['--import', slow]);
  const runDone = collect(run, 30_000);
  const wait = await statusWait(dir, 60);
  t.equal((await runDone).code, 1, 'the netns run fails');
  t.equal(wait.code, 1, `status --wait does not report the up's Connected: ${wait.out}`);
  t.match(wait.err, named(dir, run.pid!), 'it names the netns run that failed');
  t.notMatch(wait.err, new RegExp(`pid ${up.pid}\\b`), 'not the up');

  // The record stays, older than the next status: the up's Connected is the answer.
  await new Promise((r) => setTimeout(r, 2500));
  const next = await statusWait(dir, 10);
  t.equal(next.code, 0, `a later status --wait: Connected (${next.err})`);
  t.ok(existsSync(join(dir, `netns-${run.pid}-failed.json`)), 'with the record still there');
});
