/**
 * `gsa-emu edge` holds `<state-dir>/edge.lock`, and `gsa-emu stop --edge` stops the edge
 * holding it (SIGTERM) and waits for it to exit.
 *
 * The problem it solves: a script that starts the edge through a wrapper (`npx gsa-emu edge
 * ... &`) and ends it with `kill $!` kills only the wrapper; the edge runs on (its parent
 * now init) with its port bound, and the next job's edge fails with "port in use". Here the
 * wrapper is `sh -c 'node dist/cli/main.js edge ...; ...'`.
 *
 * Edges run as children on loopback ports (`--port 0`, `--no-tls`); every one is stopped by
 * the test (SIGKILL in the teardown if a check failed first).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stopEdge } from '../../src/cli/commands/stop.js';
import { pidAlive, readPidLock } from '../../src/util/pid-lock.js';
import { collect, type Run } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
const posix = process.platform !== 'win32';
const skipPosix = skip || (posix ? false : 'POSIX signals, sh and ps');

function cli(args: string[], timeoutMs = 20_000): Promise<Run> {
  return collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    timeoutMs,
  );
}

/** An empty state folder, removed when `t` ends. */
async function stateFolder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-stop-edge-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Kills `pid` with SIGKILL when `t` ends, if it still runs. */
function killAtEnd(t: Test, pid: number): void {
  t.teardown(() => {
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  });
}

interface Edge {
  child: ChildProcess;
  /** The edge's pid: the child's, or (`wrapper`) the wrapper's child's. */
  pid: number;
  /** The edge's URL, from its banner. */
  url: string;
  port: number;
  /** Its output so far. */
  out: () => string;
  /** Resolves with its output and how it ended, once its pipes are closed. */
  done: Promise<Run>;
  /** Resolves with the signal that ended the child (the wrapper), at its exit. */
  exited: Promise<NodeJS.Signals | null>;
}

/**
 * Starts `gsa-emu edge` on `dir` (through `sh -c` with `wrapper`) and waits for its banner.
 * Stopped when `t` ends.
 */
async function runEdge(t: Test, dir: string, o: { wrapper?: boolean } = {}): Promise<Edge> {
  const args = [mainJs, 'edge', '--port', '0', '--no-tls', '--state-dir', dir];
  const child = o.wrapper
    ? // A wrapper that waits for its child, as npm does (not `exec`).
      spawn(
        'sh',
        ['-c', '"$0" "$@"; echo "wrapper: the edge exited ($?)"', process.execPath, ...args],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
  const done = collect(child, 60_000);
  let pid = child.pid!;
  t.teardown(async () => {
    // The edge first: the wrapper's pipes stay open while the edge runs.
    if (pid !== child.pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    child.kill('SIGKILL');
    await done;
  });
  for (let i = 0; i < 300 && !/listening on \S+/.test(out) && child.exitCode === null; i++)
    await new Promise((r) => setTimeout(r, 50));
  const url = /listening on (\S+)/.exec(out)?.[1];
  if (!url) throw new Error(`the edge did not start: ${out} ${(await done).err}`);
  if (o.wrapper) pid = childrenOf(child.pid!)[0] ?? pid;
  return {
    pid,
    child,
    url,
    port: Number(new URL(url).port),
    out: () => out,
    done,
    exited,
  };
}

/** Whether 127.0.0.1:`port` can be listened on (nothing holds it). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** The pids of the children of `ppid` (ps: Linux, macOS, the BSDs). */
function childrenOf(ppid: number): number[] {
  const r = spawnSync('ps', ['-A', '-o', 'pid=,ppid='], { encoding: 'utf8', timeout: 5000 });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter(([, pp]) => pp === ppid)
    .map(([pid]) => pid);
}

t.test(
  'a second edge on the same state folder is refused, naming the first',
  { skip },
  async (t) => {
    const dir = await stateFolder(t);
    const first = await runEdge(t, dir);
    const lock = readPidLock(join(dir, 'edge.lock'));
    t.equal(lock?.pid, first.child.pid, 'the edge holds <state-dir>/edge.lock');
    t.equal(lock?.command, 'edge');

    // Without the lock it would start (another free port) and run until killed.
    const second = await cli(['edge', '--port', '0', '--no-tls', '--state-dir', dir], 10_000);
    t.equal(second.code, 1, `the second edge: exit code 1 (signal ${second.signal})`);
    t.match(
      second.err,
      new RegExp(
        `^gsa-emu: the state directory .* is in use by \`gsa-emu edge\` \\(pid ${first.child.pid}, since [^)]+\\): stop it first \\(\`gsa-emu stop --edge\`\\)`,
      ),
    );
    t.notMatch(second.out, /listening on/, 'it never listened');
    t.equal(readPidLock(join(dir, 'edge.lock'))?.pid, first.child.pid, 'the lock stays the first');

    first.child.kill('SIGTERM');
    const r = await first.done;
    t.equal(r.code, 0, 'SIGTERM: the clean shutdown, exit 0');
    t.match(r.out, /edge stopped; traffic log: /);
    t.notOk(existsSync(join(dir, 'edge.lock')), 'lock released on SIGTERM');
  },
);

t.test(
  'the lock is released on SIGINT, SIGHUP and a failed start',
  { skip: skipPosix },
  async (t) => {
    const dir = await stateFolder(t);
    for (const sig of ['SIGINT', 'SIGHUP'] as const) {
      const edge = await runEdge(t, dir);
      t.ok(existsSync(join(dir, 'edge.lock')), `${sig}: the lock while it runs`);
      edge.child.kill(sig);
      const r = await edge.done;
      t.equal(r.code, 0, `${sig}: exit 0 (signal ${r.signal})`);
      t.match(r.out, /edge stopped; traffic log: /, `${sig}: its clean shutdown`);
      t.notOk(existsSync(join(dir, 'edge.lock')), `${sig}: lock released`);
    }
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
    const busy = (holder.address() as AddressInfo).port;
    const r = await cli(['edge', '--port', String(busy), '--no-tls', '--state-dir', dir]);
    t.equal(r.code, 1, 'a port in use: exit 1');
    t.match(r.err, /choose another port with --port/);
    t.notOk(existsSync(join(dir, 'edge.lock')), 'no lock left by the failed start');
  },
);

t.test(
  'stop --edge stops an edge whose wrapper alone was killed, and frees its port',
  { skip: skipPosix },
  async (t) => {
    const dir = await stateFolder(t);
    const edge = await runEdge(t, dir, { wrapper: true });
    const wrapper = edge.child.pid!;
    const pid = edge.pid;
    t.not(pid, wrapper, `the edge (pid ${pid}) runs as a child of the wrapper (pid ${wrapper})`);

    // The problem: `kill $!` reaches the wrapper only.
    edge.child.kill('SIGTERM');
    // (Its pipes stay open: the edge holds them.)
    t.equal(await edge.exited, 'SIGTERM', 'the wrapper is gone');
    t.ok(pidAlive(pid), 'the edge runs on');
    t.notOk(await portFree(edge.port), 'its port is still bound');
    t.equal((await fetch(`${edge.url}/health`)).status, 200, 'and it still answers');

    const r = await cli(['stop', '--edge', '--state-dir', dir], 30_000);
    t.equal(r.code, 0, `stop --edge: exit 0 (stderr: ${r.err.trim()})`);
    t.equal(r.out, `stopped "gsa-emu edge" (pid ${pid})\n`);
    t.notOk(pidAlive(pid), 'the edge had exited when stop returned');
    t.ok(await portFree(edge.port), 'its port is free');
    t.notOk(existsSync(join(dir, 'edge.lock')), 'its lock is removed');
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL'); // (stop failed: let its pipes close)
    t.match((await edge.done).out, /edge stopped; traffic log: /, 'it shut down cleanly (SIGTERM)');

    const again = await cli(['stop', '--edge', '--state-dir', dir]);
    t.equal(again.code, 1, 'nothing left to stop: exit 1');
  },
);

t.test('stop --edge with nothing running: exit 1, saying so', { skip }, async (t) => {
  const dir = await stateFolder(t);
  const r = await cli(['stop', '--edge', '--state-dir', dir]);
  t.equal(r.code, 1, `exit 1 (stderr: ${r.err.trim()})`);
  t.equal(r.err, `gsa-emu: no running "gsa-emu edge" holds ${join(dir, 'edge.lock')}\n`);
  t.equal(r.out, '');
});

t.test(
  'a stale edge.lock: stop --edge removes it, the next edge takes it over',
  { skip: skipPosix },
  async (t) => {
    const dir = await stateFolder(t);
    const lockFile = join(dir, 'edge.lock');
    // An edge killed without its shutdown leaves its lock.
    const killed = await runEdge(t, dir);
    killed.child.kill('SIGKILL');
    await killed.done;
    t.ok(existsSync(lockFile), 'SIGKILL leaves the lock');
    const r = await cli(['stop', '--edge', '--state-dir', dir]);
    t.equal(r.code, 1, 'exit 1');
    t.equal(
      r.err,
      `gsa-emu: no running "gsa-emu edge" holds ${lockFile}: it was left by pid ${killed.child.pid}, which has exited (removed the stale lock)\n`,
    );
    t.notOk(existsSync(lockFile), 'the stale lock is removed');

    // A lock whose pid an unrelated process now has: not signalled, removed.
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    killAtEnd(t, other.pid!);
    await new Promise((res) => other.once('spawn', res));
    const stale = () =>
      writeFileSync(
        lockFile,
        `${JSON.stringify({ pid: other.pid, command: 'edge', startedAt: new Date(Date.now() - 3600_000).toISOString() })}\n`,
      );
    stale();
    const err = await stopEdge(dir, 2).catch((e: unknown) => e);
    t.match(err, {
      code: 'GSA_ERR_NOT_RUNNING',
      message: /left by pid \d+, which is now another process \(removed the stale lock\)/,
    });
    await new Promise((r) => setTimeout(r, 200));
    t.ok(pidAlive(other.pid!), 'the unrelated process was not signalled');
    t.notOk(existsSync(lockFile), 'removed');

    // An edge starting on a stale lock takes it over.
    stale();
    const edge = await runEdge(t, dir);
    t.equal(readPidLock(lockFile)?.pid, edge.child.pid, 'the new edge holds the lock');
    const s = await cli(['stop', '--edge', '--state-dir', dir, '--wait', '10']);
    t.equal(s.code, 0, `stop --edge: exit 0 (stderr: ${s.err.trim()})`);
    t.equal((await edge.done).code, 0, 'the edge exited 0');
  },
);

t.test('stop --edge on Windows: no signal without --force', { skip: skipPosix }, async (t) => {
  const dir = await stateFolder(t);
  const standIn = spawn('sleep', ['30'], { stdio: 'ignore' });
  killAtEnd(t, standIn.pid!);
  await new Promise((res) => standIn.once('spawn', res));
  const pid = standIn.pid!;
  writeFileSync(
    join(dir, 'edge.lock'),
    `${JSON.stringify({ pid, command: 'edge', startedAt: new Date().toISOString() })}\n`,
  );
  // Windows simulated: process.platform, and process.kill recording the signals to pid.
  const platform = Object.getOwnPropertyDescriptor(process, 'platform')!;
  const realKill = process.kill;
  const sent: Array<string | number> = [];
  Object.defineProperty(process, 'platform', { ...platform, value: 'win32' });
  process.kill = ((p: number, sig?: string | number) => {
    if (sig !== 0 && p === pid) {
      sent.push(sig ?? 'SIGTERM');
      return true;
    }
    return realKill.call(process, p, sig);
  }) as typeof process.kill;
  t.teardown(() => {
    Object.defineProperty(process, 'platform', platform);
    process.kill = realKill;
  });
  const err = await stopEdge(dir, 0.5).catch((e: unknown) => e);
  t.same(sent, [], 'no signal (Windows: TerminateProcess)');
  t.match(err, {
    code: 'GSA_ERR_NOT_STOPPED',
    message: /cannot ask "gsa-emu edge" \(pid \d+\) to shut down: .*Ctrl\+C .*--force/,
  });
  // The recorded SIGTERM does not end the stand-in: stop times out waiting for it.
  const forced = await stopEdge(dir, 0.5, { force: true }).catch((e: unknown) => e);
  t.same(sent, ['SIGTERM'], '--force: TerminateProcess');
  t.match(forced, {
    code: 'GSA_ERR_NOT_STOPPED',
    message: /"gsa-emu edge" .* within 0\.5 s of SIGTERM/,
  });
});
