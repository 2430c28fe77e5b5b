/**
 * The benchmarks' settings (bench/settings.ts): a value a benchmark cannot use is refused
 * with the variable's name instead of a run of NaN or negative figures; every npm bench
 * script stops when the build fails; and a benchmark interrupted by SIGINT stops the
 * processes it started. No benchmark runs.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  benchCommand,
  choiceSetting,
  flagSetting,
  intListSetting,
  intSetting,
  regexSetting,
  selectRows,
  setSetting,
  writeQuickResults,
} from '../../bench/settings.js';

t.test('whole numbers: defaults, valid values, and refusals naming the variable', async (t) => {
  t.equal(intSetting({}, 'RUNS', 3), 3);
  t.equal(intSetting({ RUNS: '' }, 'RUNS', 3), 3);
  t.equal(intSetting({ RUNS: '5' }, 'RUNS', 3), 5);
  t.equal(intSetting({ IDLE: '0' }, 'IDLE', 10, 0), 0);
  for (const bad of ['abc', '0', '-5', '1.5', '2x', 'NaN']) {
    t.throws(
      () => intSetting({ RUNS: bad }, 'RUNS', 3),
      { name: 'BenchSettingError' },
      `RUNS=${bad}`,
    );
  }
  t.throws(
    () => intSetting({ CONNS: '-5' }, 'CONNS', 1000),
    /CONNS=-5: expected a whole number >= 1/,
  );
  t.same(intListSetting({}, 'SIZES', [100, 1000]), [100, 1000]);
  t.same(intListSetting({ SIZES: '100,1000' }, 'SIZES', [1]), [100, 1000]);
  for (const bad of ['abc', '100,', '0', '100,-5']) {
    t.throws(
      () => intListSetting({ SIZES: bad }, 'SIZES', [1]),
      { name: 'BenchSettingError' },
      bad,
    );
  }
});

t.test(
  'switches: 1 is on, unset/empty/0 off, anything else refused (not read as off)',
  async (t) => {
    t.equal(flagSetting({}, 'QUICK'), false);
    t.equal(flagSetting({ QUICK: '' }, 'QUICK'), false);
    t.equal(flagSetting({ QUICK: '0' }, 'QUICK'), false);
    t.equal(flagSetting({ QUICK: '1' }, 'QUICK'), true);
    for (const bad of ['yes', 'true', 'on', '2', 'QUICK']) {
      t.throws(
        () => flagSetting({ QUICK: bad }, 'QUICK'),
        new RegExp(`QUICK=${bad}: expected 1 \\(on\\) or 0 \\(off\\), or unset`),
        `QUICK=${bad}`,
      );
    }
  },
);

t.test('the heading names the command with the settings given, shell-quoted', async (t) => {
  t.equal(benchCommand('bench:proxy', ['QUICK', 'RUNS'], {}), 'npm run bench:proxy');
  t.equal(
    benchCommand('bench:proxy', ['QUICK', 'RUNS', 'CONNS'], { RUNS: '2', QUICK: '1', CONNS: '' }),
    'QUICK=1 RUNS=2 npm run bench:proxy',
  );
  t.equal(
    benchCommand('bench:tunnel', ['CHILD_ARGS'], { CHILD_ARGS: "--max-old-space-size=64 --x='y'" }),
    `CHILD_ARGS='--max-old-space-size=64 --x='\\''y'\\''' npm run bench:tunnel`,
  );
  t.equal(
    benchCommand('bench:proxy', ['RUNS'], { RUNS: '2', ONLY: 'x' }),
    'RUNS=2 npm run bench:proxy',
  );
});

t.test('PHASES, CLIENT and ONLY accept only what the benchmark knows', async (t) => {
  const phases = ['single', 'multi', 'conns'] as const;
  t.same([...setSetting({}, 'PHASES', phases)], ['single', 'multi', 'conns']);
  t.same([...setSetting({ PHASES: 'conns, single' }, 'PHASES', phases)], ['conns', 'single']);
  t.throws(() => setSetting({ PHASES: 'bogus' }, 'PHASES', phases), /PHASES=bogus: unknown bogus/);
  t.throws(() => setSetting({ PHASES: ',' }, 'PHASES', phases), { name: 'BenchSettingError' });
  t.equal(choiceSetting({}, 'CLIENT', ['curl']), undefined);
  t.equal(choiceSetting({ CLIENT: 'curl' }, 'CLIENT', ['curl']), 'curl');
  t.throws(() => choiceSetting({ CLIENT: 'wget' }, 'CLIENT', ['curl']), /CLIENT=wget/);
  t.equal(regexSetting({}, 'ONLY'), null);
  t.ok(regexSetting({ ONLY: 'tunneled \\(ws\\)' }, 'ONLY')!.test('gsa-emu SOCKS, tunneled (ws)'));
  t.throws(() => regexSetting({ ONLY: '(' }, 'ONLY'), /ONLY=\(: not a regular expression/);
  const rows = ['direct TCP', 'tunnel (ws)', 'tunnel (wss)'];
  t.same(
    selectRows(rows, (r) => r, /ws\)/),
    ['tunnel (ws)'],
  );
  t.same(
    selectRows(rows, (r) => r, null),
    rows,
  );
  t.throws(
    () => selectRows(rows, (r) => r, /zzz/),
    /ONLY=zzz matches no row; the rows are: direct TCP; tunnel \(ws\); tunnel \(wss\)/,
  );
});

t.test('every bench script stops when its build fails (&&, not ;)', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const benches = Object.entries(pkg.scripts as Record<string, string>).filter(([k]) =>
    k.startsWith('bench:'),
  );
  t.ok(benches.length >= 4);
  for (const [name, cmd] of benches) {
    t.match(cmd, /^tsc -p tsconfig\.bench\.json && node /, name);
    t.notMatch(cmd, /;/, name);
  }
});

t.test('SIGINT stops the processes a benchmark started and runs its exit hooks', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsa-bench-settings-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mark = join(dir, 'hook-ran');
  const mod = new URL('../../bench/settings.ts', import.meta.url).href;
  const script = `
    import { spawn } from 'node:child_process';
    import { writeFileSync } from 'node:fs';
    const { stopOnExit, onExit } = await import(${JSON.stringify(mod)});
    const c = stopOnExit(spawn('sleep', ['60'], { stdio: 'ignore' }));
    onExit(() => writeFileSync(${JSON.stringify(mark)}, 'x'));
    process.stdout.write(String(c.pid) + '\\n');
    setInterval(() => {}, 1000);
  `;
  const bench = spawn(
    process.execPath,
    [...process.execArgv, '--input-type=module', '-e', script],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.teardown(() => {
    if (bench.exitCode === null) bench.kill('SIGKILL');
  });
  const [line] = (await once(bench.stdout, 'data')) as [Buffer];
  const pid = Number(line.toString().trim());
  t.ok(pid > 0, 'the child started');
  bench.kill('SIGINT');
  const [code] = (await once(bench, 'exit')) as [number | null];
  t.equal(code, 130, 'exit code 128 + SIGINT');
  let alive = true;
  for (let i = 0; i < 40 && alive; i++) {
    try {
      process.kill(pid, 0);
      await new Promise((r) => setTimeout(r, 50));
    } catch {
      alive = false;
    }
  }
  if (alive) process.kill(pid, 'SIGKILL');
  t.notOk(alive, 'the child is gone');
  t.ok(existsSync(mark), 'the exit hook ran');
});

/** Polls until `pid` is gone (true) or `ms` have passed (false). */
async function gone(pid: number, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

t.test('SIGTERM to `npm run bench:*` (its shell exits) stops the benchmark too', async (t) => {
  // npm runs `sh -c 'tsc ... && node ...'` and passes a SIGTERM to that shell, which exits
  // without signalling node: the benchmark must notice that its parent is gone.
  const dir = mkdtempSync(join(tmpdir(), 'gsa-bench-parent-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mark = join(dir, 'hook-ran');
  const mod = new URL('../../bench/settings.ts', import.meta.url).href;
  const script = `
    import { spawn } from 'node:child_process';
    import { writeFileSync } from 'node:fs';
    const { interruptible, stopOnExit, onExit } = await import(${JSON.stringify(mod)});
    interruptible();
    const c = stopOnExit(spawn('sleep', ['60'], { stdio: 'ignore' }));
    onExit(() => writeFileSync(${JSON.stringify(mark)}, 'x'));
    process.stdout.write(process.pid + ' ' + process.ppid + ' ' + c.pid + '\\n');
    setInterval(() => {}, 1000);
  `;
  const shell = spawn(
    'sh',
    [
      '-c',
      'true && "$0" "$@"',
      process.execPath,
      ...process.execArgv,
      '--input-type=module',
      '-e',
      script,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_lifecycle_event: 'bench:x' } },
  );
  let err = '';
  shell.stderr.on('data', (d) => {
    err += d;
  });
  const [line] = (await once(shell.stdout, 'data')) as [Buffer];
  const [bench, parent, child] = line.toString().trim().split(' ').map(Number) as [
    number,
    number,
    number,
  ];
  t.teardown(() => {
    for (const pid of [bench, child]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  });
  t.equal(parent, shell.pid, "the benchmark is the shell's child, as under npm");
  shell.kill('SIGTERM');
  await once(shell, 'exit');
  t.ok(await gone(bench, 5000), 'the benchmark stops when its shell is gone');
  t.ok(await gone(child, 2000), 'and stops the process it started');
  t.ok(existsSync(mark), 'and runs its exit hooks');
  t.match(err, /npm run bench:x was stopped \(its shell exited, pid \d+\)/);
});

t.test('--help prints the usage and exits 0; without it nothing happens', async (t) => {
  const mod = new URL('../../bench/settings.ts', import.meta.url).href;
  const run = async (args: string[]) => {
    const script = `
      const { helpRequested } = await import(${JSON.stringify(mod)});
      helpRequested('npm run bench:x: usage', ['node', 'x.js', ...${JSON.stringify(args)}]);
      process.stdout.write('ran');
    `;
    const c = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    const [code] = (await once(c, 'close')) as [number | null];
    return { code, out };
  };
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.out, /^npm run bench:x: usage\n/);
  t.match(help.out, /docs\/benchmarks\.md/);
  t.notMatch(help.out, /ran/, 'the benchmark does not run');
  t.match(await run(['-h']), { code: 0, out: /usage/ });
  t.same(await run(['--size', '100']), { code: 0, out: 'ran' });
});

t.test('a QUICK run writes its figures beside the recorded ones, and says so', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gsa-bench-quick-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const said: string[] = [];
  const rel = writeQuickResults(root, 'classifier', { quick: true, n: 1 }, (l) => said.push(l));
  t.equal(rel, 'bench/results/classifier.quick.tmp.json');
  t.same(JSON.parse(readFileSync(join(root, rel), 'utf8')), { quick: true, n: 1 });
  t.notOk(existsSync(join(root, 'bench/results/classifier.json')), 'not the recorded file');
  t.notOk(existsSync(join(root, 'docs/benchmarks.md')), 'nor the docs');
  t.equal(said.length, 1);
  t.match(said[0], /QUICK=1: figures written to bench\/results\/classifier\.quick\.tmp\.json/);
  t.match(
    said[0],
    /bench\/results\/classifier\.json, docs\/benchmarks\.md\) are left as they were/,
  );
  // Git-ignored, so a quick run leaves `git status` clean.
  const ignore = readFileSync(new URL('../../.gitignore', import.meta.url), 'utf8');
  t.match(ignore, /^bench\/results\/\*\.tmp\.json$/m, '.gitignore covers it');
});

t.test('every bench with QUICK hands a quick run to writeQuickResults', async (t) => {
  // Source check (no benchmark runs here): each bench that reads QUICK and records results
  // calls writeQuickResults under `if (QUICK)` before writing bench/results/<bench>.json.
  for (const bench of ['classifier', 'tunnel', 'proxy']) {
    const src = readFileSync(new URL(`../../bench/${bench}.ts`, import.meta.url), 'utf8');
    const quick = src.indexOf(`writeQuickResults(root, '${bench}'`);
    t.ok(quick > 0, `${bench}: calls writeQuickResults`);
    t.match(src.slice(Math.max(0, quick - 200), quick), /if \(QUICK\) \{/, `${bench}: if QUICK`);
  }
});
