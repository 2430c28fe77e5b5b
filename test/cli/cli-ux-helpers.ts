/**
 * Shared setup of test/cli/cli-ux*.test.ts: spawning dist/cli/main.js as a user or a CI job
 * runs it, with every process bounded in time and killed at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { collect, type Run } from '../util/ts-child.js';
import { until } from '../util/wait.js';

export const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
export const skip = existsSync(mainJs)
  ? false
  : 'dist/cli/main.js is missing: run `npm run build` first';

/** A temporary folder for this test file (removed at its end), and fresh state dirs in it. */
export async function tempRoot(t: Test) {
  const root = await mkdtemp(join(tmpdir(), 'gsa-cli-ux-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  let n = 0;
  return { root, newDir: () => join(root, `d${++n}`) };
}

/** Runs the CLI to its end (killed after `ms`). */
export const cli = (args: string[], ms = 20_000): Promise<Run> =>
  collect(spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), ms);

/** Node's report of an unhandled 'error' event: a crash with a stack trace. */
export const CRASH = /Unhandled 'error' event|\n\s+at .+:\d+:\d+\)?\n/;

/** A long-running `up`: the child, its output so far, and its end (bounded). */
export function startUp(t: Test, args: string[], ms = 60_000) {
  const child = spawn(process.execPath, [mainJs, 'up', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const seen = { out: '' };
  child.stdout!.on('data', (d) => {
    seen.out += d;
  });
  const done = collect(child, ms);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done;
  });
  return { child, seen, done };
}

/**
 * `up` with only the HTTP proxy (on a free port), `--no-tty`, ended after `seconds` (40) at
 * most, in `dir`, plus `extra` flags; resolves once it is ready, with the proxy's address.
 */
export async function startHttpOnlyUp(t: Test, dir: string, extra: string[] = [], seconds = 40) {
  const args = ['--state-dir', dir, '--socks-port', 'off', '--http-port', '0', '--no-tty'];
  const run = startUp(
    t,
    [...args, '--exit-after', String(seconds), ...extra],
    Math.max(60_000, (seconds + 5) * 1000),
  );
  t.ok(await until(() => run.seen.out.includes('Ctrl+C to stop.'), 20_000), 'up is ready');
  const state = JSON.parse(readFileSync(join(dir, 'client.json'), 'utf8')) as { http: string };
  return { ...run, http: state.http };
}

export const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

/** GET `url` through the HTTP proxy at `proxy` (host:port): the status code or the error. */
export function viaHttpProxy(
  proxy: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<number | string> {
  const i = proxy.lastIndexOf(':');
  return new Promise((resolve) => {
    const req = request(
      {
        host: proxy.slice(0, i),
        port: Number(proxy.slice(i + 1)),
        path: url,
        headers: { host: new URL(url).host, ...headers },
        timeout: 8000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', (e) => resolve(e.message));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(e.message));
    req.end();
  });
}

/** A port free on 127.0.0.1 right now. */
export { freePort } from '../util/free-port.js';

/** Runs the CLI with its stdout closed at once (`gsa-emu ... | head -0`). */
export function cliClosedStdout(args: string[], ms = 20_000): Promise<Run> {
  const c = spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  c.stdout!.destroy();
  return collect(c, ms);
}

/** `up --once` on free ports with the state folder `dir`, then `extra` (to its end). */
export const upOnce = (dir: string, extra: string[] = []): Promise<Run> =>
  cli(['up', '--once', '--state-dir', dir, '--socks-port', '0', '--http-port', '0', ...extra]);

/** `up --once` with each of `values` after `flag` (seconds): a usage error that says why. */
export async function refusesSeconds(
  t: Test,
  newDir: () => string,
  flag: string,
  values: string[],
): Promise<void> {
  for (const v of values) {
    const r = await upOnce(newDir(), [flag, v]);
    t.equal(r.code, 2, `"${v}": exit 2`);
    t.match(r.err, `${flag} "${v}" is not a number of seconds`, `"${v}": says why`);
  }
}

/**
 * `server` (an upstream of the test's own) listening on 127.0.0.1, any port; at teardown its
 * connections are destroyed and it is closed. Resolves with its port.
 */
export async function listenUpstream(t: Test, server: Server): Promise<number> {
  const held = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    held.add(s);
    s.on('close', () => held.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return (server.address() as { port: number }).port;
}

/**
 * `gsa-emu edge --port 0 --no-tls --state-dir <stateDir>`, then `args`: stopped at the end
 * of `t` (killed after `ms`). Resolves with what it printed once that matches `ready` (and
 * the match, and `output()`: all it printed so far); rejects if it exits first. Options:
 * `tls` leaves out `--no-tls`; `prefix` runs node under a command (`ip netns exec <ns>`).
 */
export function startEdgeProcess(
  t: Test,
  stateDir: string,
  args: string[],
  ready: RegExp,
  ms: number,
  opts: { tls?: boolean; prefix?: string[] } = {},
): Promise<{ m: RegExpExecArray; out: string; output: () => string }> {
  const [cmd, ...pre] = [...(opts.prefix ?? []), process.execPath];
  const child = spawn(
    cmd!,
    [
      ...pre,
      mainJs,
      'edge',
      '--port',
      '0',
      ...(opts.tls ? [] : ['--no-tls']),
      '--state-dir',
      stateDir,
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const kill = setTimeout(() => child.kill('SIGKILL'), ms);
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) resolve({ m, out, output: () => out });
    });
    void exited.then((code) => reject(new Error(`edge exited ${code}: ${err}`)));
  });
}
