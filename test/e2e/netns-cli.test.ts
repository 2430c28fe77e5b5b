/**
 * `gsa-emu netns -- CMD` from the built CLI, as a CI job meets it: it says why the client
 * forwards nothing (the notes and `warning:` lines `up` prints), and a run killed with
 * SIGKILL leaves nothing to the next run: its namespace, the processes still running in
 * it and its state files (`netns-<pid>.json` / `.token`) are removed when the next run
 * starts.
 *
 * Needs root, /dev/net/tun, iproute2, curl, the built addon and `npm run build` (dist/);
 * skipped, saying what is missing, otherwise. Nothing leaves loopback or the namespaces
 * the runs make; every process started is bounded in time and ended at teardown.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { collect, type Run } from '../util/ts-child.js';
import { until } from '../util/wait.js';
import { alive, mainJs, tempRoot, tunCliMissing } from './tun-cli-helpers.js';

// What is missing here (tap shows it on each skipped test), or false.
const skip = tunCliMissing() ?? false;

const { root, newDir } = await tempRoot(t, 'gsa-netns-cli-');

/** `gsa-emu netns ARGS` to its end (killed after `ms`). */
const netns = (args: string[], ms = 40_000): Promise<Run> =>
  collect(
    spawn(process.execPath, [mainJs, 'netns', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    ms,
  );

/**
 * A long-running `gsa-emu netns ARGS`, SIGKILLed at teardown if still running. `exited`
 * resolves on its exit, not on the end of its output: a command it left behind may hold
 * the pipes open.
 */
function startNetns(
  t: Test,
  args: string[],
  wrap: string[] = [],
): { child: ChildProcess; exited: Promise<void> } {
  const argv = [process.execPath, mainJs, 'netns', ...args];
  const [cmd, ...rest] = [...wrap, ...argv] as [string, ...string[]];
  const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.resume();
  child.stderr!.resume();
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  t.teardown(async () => {
    clearTimeout(guard);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    child.stdout!.destroy();
    child.stderr!.destroy();
  });
  return { child, exited };
}

t.test(
  'netns says why the client forwards nothing (client config without SilentOnboard)',
  { skip },
  async (t) => {
    // As `gsa-emu up` with the same file: the state with its notes, and a warning that the
    // client is not Connected as the command starts (its flows are all bypassed).
    const cc = join(root, 'cc-no-silent-onboard.json');
    await writeFile(cc, JSON.stringify({ EnableGSAPrivateChannel: 0 }));
    const args = ['--client-config', cc, '--', 'curl', '-sS', '-m', '5', 'http://news.test/'];
    const r = await netns(['--state-dir', newDir(), ...args]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /direct from the client \(bypassed\)/, 'the flow was not forwarded');
    t.match(
      r.err,
      /gsa-emu: Initializing \(not onboarded \(SilentOnboard is not TRUE\): nothing is forwarded; [^\n]*\); running `curl /,
      'the state and why nothing is forwarded (the notes, as up prints them)',
    );
    t.match(
      r.err,
      /gsa-emu: warning: the client is not Connected \(Initializing\) as the command starts/,
      'a warning that the client is not Connected',
    );
    const quiet = await netns(['--quiet', '--state-dir', newDir(), ...args]);
    t.equal(quiet.code, 0, quiet.err);
    t.equal(quiet.err, '', '--quiet: nothing of its own, warnings included');
  },
);

t.test('a Connected client: no warning', { skip }, async (t) => {
  const r = await netns(['--state-dir', newDir(), '--', 'true']);
  t.equal(r.code, 0, r.err);
  t.match(r.err, /gsa-emu: Connected; running `true`/);
  t.notMatch(r.err, /warning:/);
});

t.test('without --: the command and its own options, as given', { skip }, async (t) => {
  // `-m` and `-c` are the command's: not netns options (it used to fail: unknown option).
  const r = await netns([
    '--quiet',
    '--state-dir',
    newDir(),
    'sh',
    '-c',
    'curl -sS -m 5 http://intranet.contoso.test/ && exit 7',
  ]);
  t.equal(r.code, 7, `the command ran and its exit code came back: ${r.err}`);
  t.match(r.out, /from the GSA edge \(tunneled\)/);
  const q = await netns(['--state-dir', newDir(), 'sh', '-c', 'exit 3', '--quiet']);
  t.equal(q.code, 3, "an option after the command is the command's");
  // The banner quotes the command as a shell would take it ('exit 3' is one argument).
  t.match(q.err, /running `sh -c 'exit 3' --quiet`/, 'so netns itself was not quiet');
});

// Under `ip netns exec OUTER` (a private mount namespace), the run's namespace name is
// bound there only: from the host it is an empty file, and `ip netns pids` found nothing, so
// the killed run's command kept running.
for (const underExec of [false, true]) {
  t.test(
    `after SIGKILL, the next run removes the stale namespace and ends what ran inside it${underExec ? ' (the run started under ip netns exec)' : ''}`,
    { skip },
    async (t) => killedRun(t, underExec),
  );
}

async function killedRun(t: Test, underExec: boolean): Promise<void> {
  const dir = newDir();
  const pidFile = join(root, `orphan-${underExec ? 'exec-' : ''}${process.pid}.pid`);
  let orphan = 0;
  t.teardown(() => {
    if (orphan > 0 && alive(orphan)) process.kill(orphan, 'SIGKILL');
  });
  const outer = `gsatest-outer-${process.pid}`;
  if (underExec) {
    spawnSync('ip', ['netns', 'del', outer]);
    t.equal(spawnSync('ip', ['netns', 'add', outer]).status, 0, `ip netns add ${outer}`);
    t.teardown(() => {
      spawnSync('ip', ['netns', 'del', outer]);
    });
    spawnSync('ip', ['-n', outer, 'link', 'set', 'lo', 'up']);
  }
  const { child, exited } = startNetns(
    t,
    ['--quiet', '--state-dir', dir, '--', 'sh', '-c', `echo $$ > ${pidFile}; exec sleep 120`],
    underExec ? ['ip', 'netns', 'exec', outer] : [],
  );
  t.ok(
    await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 20_000),
    'the command started',
  );
  orphan = Number(readFileSync(pidFile, 'utf8').trim());
  const ns = readdirSync('/var/run/netns').find((x) => x.startsWith(`gsaemu-${child.pid}-`));
  t.ok(ns, 'the run made its namespace');
  child.kill('SIGKILL');
  await exited;
  t.ok(alive(orphan), 'the killed run left its command running');
  const next = await netns(['--quiet', '--state-dir', dir, '--', 'true']);
  t.equal(next.code, 0, `the next run works: ${next.err}`);
  t.notOk(existsSync(`/var/run/netns/${ns}`), 'the stale namespace is removed');
  t.ok(
    await until(() => !alive(orphan), 3000),
    `the killed run's command (pid ${orphan}) is ended too, before its namespace is removed`,
  );
}

t.test(
  'after SIGKILL, the next run removes the dead run state file and token',
  { skip },
  async (t) => {
    const dir = newDir();
    // The command the killed run leaves behind is ended by the next run (previous test), or
    // at teardown.
    const pidFile = join(root, `orphan2-${process.pid}.pid`);
    t.teardown(() => {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
    });
    const { child, exited } = startNetns(t, [
      '--quiet',
      '--state-dir',
      dir,
      '--',
      'sh',
      '-c',
      `echo $$ > ${pidFile}; exec sleep 120`,
    ]);
    const state = join(dir, `netns-${child.pid}.json`);
    t.ok(
      await until(() => existsSync(state) && existsSync(pidFile), 20_000),
      'the run wrote its state file and started the command',
    );
    t.ok(existsSync(join(dir, `netns-${child.pid}.token`)), 'and its admin token');
    child.kill('SIGKILL');
    await exited;
    const next = await netns(['--quiet', '--state-dir', dir, '--', 'true']);
    t.equal(next.code, 0, next.err);
    t.same(
      readdirSync(dir).filter((f) => /^netns-\d+\.(json|token)$/.test(f)),
      [],
      'no netns-<dead pid>.json / .token (with an admin token) left in the state folder',
    );
  },
);
