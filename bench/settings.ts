/**
 * The benchmarks' settings from the environment (RUNS, CONNS, PHASES, ONLY, CLIENT, SIZES,
 * BENCH_SECONDS, ...), checked before anything starts: a value that is not what the
 * benchmark can use stops it with a message naming the variable and exit code 2, instead of
 * a run of NaN or negative figures (test/bench/settings.test.ts).
 *
 * Every process a benchmark starts is stopped when it ends, fails or is interrupted
 * (`stopOnExit`).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** A setting the benchmark cannot use; `settingsOrExit` prints it and exits 2. */
export class BenchSettingError extends Error {
  override name = 'BenchSettingError';
}

type Env = Record<string, string | undefined>;

/** A whole number >= `min` (default 1), or `def` when the variable is unset or empty. */
export function intSetting(env: Env, name: string, def: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  if (!/^\s*\d+\s*$/.test(raw) || Number(raw) < min) {
    throw new BenchSettingError(`${name}=${raw}: expected a whole number >= ${min}`);
  }
  return Number(raw);
}

/**
 * An on/off switch (QUICK=1, CPU_REPORT=1, KEEP=1): `1` is on; unset, empty or `0` is off;
 * anything else (QUICK=yes, QUICK=true) is refused rather than silently read as off.
 */
export function flagSetting(env: Env, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '' || raw.trim() === '0') return false;
  if (raw.trim() === '1') return true;
  throw new BenchSettingError(`${name}=${raw}: expected 1 (on) or 0 (off), or unset`);
}

/** A comma-separated list of whole numbers >= `min` (SIZES=100,1000). */
export function intListSetting(env: Env, name: string, def: number[], min = 1): number[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  return raw.split(',').map((x) => {
    if (!/^\s*\d+\s*$/.test(x) || Number(x) < min) {
      throw new BenchSettingError(
        `${name}=${raw}: expected whole numbers >= ${min}, separated by commas`,
      );
    }
    return Number(x);
  });
}

/** A comma-separated subset of `allowed` (PHASES=single,conns); unset: all of them. */
export function setSetting(env: Env, name: string, allowed: readonly string[]): Set<string> {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return new Set(allowed);
  const items = raw
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const bad = items.filter((x) => !allowed.includes(x));
  if (items.length === 0 || bad.length > 0) {
    throw new BenchSettingError(
      `${name}=${raw}: ${bad.length ? `unknown ${bad.join(', ')}; ` : ''}expected one or more of ${allowed.join(', ')}, separated by commas`,
    );
  }
  return new Set(items);
}

/** One of `allowed`, or undefined when unset or empty (CLIENT=curl). */
export function choiceSetting<T extends string>(
  env: Env,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new BenchSettingError(`${name}=${raw}: expected ${allowed.join(' or ')} (or unset)`);
  }
  return raw as T;
}

/** A regular expression (ONLY='tunneled \(ws\)'), or null when unset or empty. */
export function regexSetting(env: Env, name: string): RegExp | null {
  const raw = env[name];
  if (raw === undefined || raw === '') return null;
  try {
    return new RegExp(raw);
  } catch (err) {
    throw new BenchSettingError(
      `${name}=${raw}: not a regular expression (${(err as Error).message})`,
    );
  }
}

/** The rows `only` selects, or an error naming every row when it selects none. */
export function selectRows<T>(
  rows: readonly T[],
  name: (row: T) => string,
  only: RegExp | null,
  variable = 'ONLY',
): T[] {
  if (!only) return [...rows];
  const picked = rows.filter((r) => only.test(name(r)));
  if (picked.length === 0) {
    throw new BenchSettingError(
      `${variable}=${only.source} matches no row; the rows are: ${rows.map(name).join('; ')}`,
    );
  }
  return picked;
}

/**
 * The command that reproduces this run, for the heading of what it writes: the settings of
 * `names` that are set (not empty), shell-quoted, then `npm run <script>`
 * (`QUICK=1 RUNS=2 npm run bench:proxy`).
 */
export function benchCommand(
  script: string,
  names: readonly string[],
  env: Env = process.env,
): string {
  const quote = (v: string) => (/^[\w.,:/+=@%-]+$/.test(v) ? v : `'${v.replaceAll("'", "'\\''")}'`);
  const set = names.flatMap((n) => {
    const v = env[n];
    return v === undefined || v === '' ? [] : [`${n}=${quote(v)}`];
  });
  return [...set, `npm run ${script}`].join(' ');
}

/**
 * A QUICK=1 run's figures (its `result`, as the full run would record it): written to
 * bench/results/<bench>.quick.tmp.json (git-ignored), never over the recorded figures
 * (bench/results/<bench>.json and the bench's section of docs/benchmarks.md, which only a
 * full run writes), and said so on stdout. Returns the file's path relative to `root`.
 */
export function writeQuickResults(
  root: string,
  bench: string,
  result: unknown,
  log: (line: string) => void = console.log,
): string {
  const rel = `bench/results/${bench}.quick.tmp.json`;
  const file = join(root, rel);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  log(
    `QUICK=1: figures written to ${rel}; the recorded ones (bench/results/${bench}.json, docs/benchmarks.md) are left as they were (a run without QUICK records them)`,
  );
  return rel;
}

/** Runs `read` (which reads the settings); on a BenchSettingError: message, exit code 2. */
export function settingsOrExit<T>(bench: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof BenchSettingError)) throw err;
    process.stderr.write(`${bench}: ${err.message} (docs/benchmarks.md lists the settings)\n`);
    process.exit(2);
  }
}

const tracked = new Set<ChildProcess>();
const exitHooks = new Set<() => void>();
let installed = false;

/**
 * Stop `child` (SIGTERM) when this process exits, however it exits: at the end, on an
 * error, or on Ctrl+C / SIGTERM / SIGHUP (which then exit 128 + the signal's number).
 * Returns the child.
 */
export function stopOnExit<C extends ChildProcess>(child: C): C {
  install();
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  return child;
}

/** Run `hook` (synchronous: namespaces, temporary folders) when this process exits. */
export function onExit(hook: () => void): () => void {
  install();
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

/**
 * Install the handlers of `stopOnExit` now (Ctrl+C, SIGTERM, SIGHUP, and `exitWithParent`),
 * before the benchmark starts anything: every benchmark calls it first.
 */
export function interruptible(): void {
  install();
}

/**
 * Under `npm run bench:*` the benchmark's parent is npm's shell (`sh -c 'tsc ... && node
 * ...'`). A SIGTERM to npm (`kill <npm's pid>`, a CI job's timeout, a supervisor) reaches
 * that shell, which exits without signalling the benchmark: it would run on, orphaned, and
 * write its figures. So, when started by npm for a bench script, check every `everyMs`
 * whether the parent is still the one it started with, and when it is not, say so and call
 * `onGone` (stop as for SIGHUP). Returns the timer (unref'd), or null when not under npm.
 */
export function exitWithParent(
  onGone: () => void,
  env: Env = process.env,
  everyMs = 500,
): NodeJS.Timeout | null {
  const script = env.npm_lifecycle_event;
  if (!script?.startsWith('bench:')) return null;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.stderr.write(
      `\nnpm run ${script} was stopped (its shell exited, pid ${parent}): stopping what the benchmark started\n`,
    );
    onGone();
  }, everyMs);
  timer.unref();
  return timer;
}

function install(): void {
  if (installed) return;
  installed = true;
  exitWithParent(() => process.exit(128 + SIGNALS.SIGHUP));
  process.on('exit', () => {
    for (const c of tracked) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    }
    for (const h of exitHooks) {
      try {
        h();
      } catch {}
    }
  });
  for (const [sig, n] of Object.entries(SIGNALS)) {
    process.on(sig, () => {
      process.stderr.write(`\ninterrupted (${sig}): stopping what the benchmark started\n`);
      process.exit(128 + n);
    });
  }
}

/**
 * `--help` or `-h` on the command line (`npm run bench:proxy -- --help`): print `usage` and
 * exit 0, before anything runs or is written.
 */
export function helpRequested(usage: string, argv: readonly string[] = process.argv): void {
  if (!argv.slice(2).some((a) => a === '--help' || a === '-h')) return;
  process.stdout.write(
    `${usage.trim()}\n\nAll settings, defaults and what each run writes: docs/benchmarks.md ("Running them").\n`,
  );
  process.exit(0);
}
