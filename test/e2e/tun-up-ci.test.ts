/**
 * `gsa-emu up --tun` as a Linux CI job runs it, only inside namespaces this test creates
 * (never in the test's own): the "In CI" snippet of docs/tun.md works as written (the page
 * comes through GSA, `up` is stopped), and a bad `--tun-name` is a usage error naming the
 * option (exit 2), before anything starts.
 *
 * Needs root, /dev/net/tun, iproute2, curl, the built addon and `npm run build` (dist/);
 * skipped, saying what is missing, otherwise. Nothing leaves loopback or the namespaces
 * made here; every process started is bounded in time and ended at teardown; every
 * namespace made here is removed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { collect, type Run } from '../util/ts-child.js';
import { until } from '../util/wait.js';
import { alive, mainJs, ROOT, tempRoot, tunCliMissing } from './tun-cli-helpers.js';

// What is missing here (tap shows it on each skipped test), or false.
const skip = tunCliMissing() ?? false;

const { root, newDir } = await tempRoot(t, 'gsa-tun-up-ci-');

t.test('docs/tun.md "In CI": the up --tun snippet works as written', { skip }, async (t) => {
  // The snippet, with its namespace renamed, `gsa-emu` from this checkout and `sudo X`
  // run as `env X`: sudo executes X as a program, as env does (no shell builtins), and
  // this test already runs as root.
  const doc = await readFile(join(ROOT, 'docs', 'tun.md'), 'utf8');
  const block = /### In CI[\s\S]*?```sh\n([\s\S]*?)```/.exec(doc)?.[1];
  t.ok(block, 'the snippet is in docs/tun.md');
  if (!block) return;
  const nsName = `gsaci${process.pid}`;
  const dir = newDir();
  const bin = join(root, 'bin');
  spawnSync('mkdir', ['-p', bin]);
  // The shim records its pid (exec keeps it: the pid of `gsa-emu up`) for the checks.
  const pids = join(root, 'gsa-emu-pids');
  await writeFile(
    join(bin, 'gsa-emu'),
    `#!/bin/sh\n[ "$1" = up ] && echo $$ >> ${pids}\nexec ${process.execPath} ${mainJs} "$@"\n`,
  );
  const upPids = (): number[] =>
    existsSync(pids) ? readFileSync(pids, 'utf8').split(/\s+/).filter(Boolean).map(Number) : [];
  chmodSync(join(bin, 'gsa-emu'), 0o755);
  const script = block
    .replace(/#.*$/gm, '')
    .replace(/\bsudo /g, 'env ')
    .replace(/ ip netns (add|exec|del) ci\b/g, ` ip netns $1 ${nsName}`)
    .replace(/ ip -n ci /g, ` ip -n ${nsName} `);
  t.teardown(async () => {
    // An `up` the snippet left running.
    for (const pid of upPids()) {
      if (!alive(pid)) continue;
      process.kill(pid, 'SIGTERM');
      if (!(await until(() => !alive(pid), 10_000))) process.kill(pid, 'SIGKILL');
    }
    spawnSync('ip', ['netns', 'del', nsName]);
  });
  const sh = spawn('sh', ['-c', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, GSA_EMU_STATE_DIR: dir },
  });
  // Its end is the shell's exit: an `up` the snippet failed to stop holds its pipes open.
  const r = await collect(sh, 40_000, { atExit: true });
  t.equal(r.code, 0, `the snippet ran to its end: ${r.err}`);
  t.match(r.out, /from the GSA edge \(tunneled\)/, `curl got the page through GSA: ${r.err}`);
  const [upPid = 0] = upPids();
  t.ok(upPid > 0, 'the snippet started `gsa-emu up --tun`');
  t.ok(await until(() => !alive(upPid), 15_000), 'the snippet stopped `gsa-emu up --tun`');
  t.notOk(existsSync(`/var/run/netns/${nsName}`), 'and removed its namespace');
});

t.test(
  'up --tun --tun-name with a bad name: a usage error naming the option',
  { skip },
  async (t) => {
    const nsName = `gsatn${process.pid}`;
    spawnSync('ip', ['netns', 'add', nsName]);
    t.teardown(() => {
      spawnSync('ip', ['netns', 'del', nsName]);
    });
    spawnSync('ip', ['-n', nsName, 'link', 'set', 'lo', 'up']);
    const up = (name: string): Promise<Run> =>
      collect(
        spawn(
          'ip',
          [
            'netns',
            'exec',
            nsName,
            process.execPath,
            mainJs,
            'up',
            '--tun',
            '--no-tty',
            '--exit-after',
            '1',
            '--state-dir',
            newDir(),
            '--tun-name',
            name,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        ),
        30_000,
      );
    const cases: Array<[string, RegExp]> = [
      ['bad/name', /no '\/', ':' or whitespace/],
      ['a b', /no '\/', ':' or whitespace/],
      ['a:b', /no '\/', ':' or whitespace/],
      ['..', /not an interface name/],
      ['', /1 to 15 bytes/],
      ['gsa0123456789abc', /1 to 15 bytes \(not 16\)/],
      ['lo', /lo is an existing interface \(loopback\), not a TUN device/],
      // '%' other than one %d: the kernel's "Invalid argument", once everything had started.
      ['gsa%s', /'%' only as one %d/],
    ];
    for (const [name, why] of cases) {
      const r = await up(name);
      t.equal(r.code, 2, `"${name}": a usage error (exit 2)`);
      t.match(r.err, `--tun-name "${name}": `, `"${name}": the message names --tun-name`);
      t.match(r.err, why, `"${name}": and says what is wrong: ${r.err.trim()}`);
      t.notMatch(r.err, /TUN mode is unavailable/, `"${name}": not "TUN mode is unavailable"`);
    }
  },
);

t.test('up --tun where lo is down: says so, leaves no handle open', { skip }, async (t) => {
  // `ip netns add` leaves `lo` down: nothing listens on 127.0.0.1 there.
  const nsName = `gsalo${process.pid}`;
  spawnSync('ip', ['netns', 'add', nsName]);
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', nsName]);
  });
  const args = ['netns', 'exec', nsName, process.execPath, mainJs, 'up', '--tun', '--no-tty'];
  const dir = newDir();
  for (const round of ['first run', 'second run']) {
    const r = await collect(
      spawn('ip', [...args, '--exit-after', '20', '--state-dir', dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      40_000,
    );
    t.equal(r.code, 1, `${round}: exit 1`);
    t.match(r.err, /EADDRNOTAVAIL/, `${round}: the error`);
    t.match(r.err, /`ip link set lo up`/, `${round}: and its fix: ${r.err.trim()}`);
    t.notMatch(r.err, /handles still open/, `${round}: every socket it opened is closed`);
  }
});

t.test(
  'status from the host for an up --tun inside a namespace: where to run it, at once',
  { skip },
  async (t) => {
    const nsName = `gsans${process.pid}`;
    spawnSync('ip', ['netns', 'add', nsName]);
    spawnSync('ip', ['-n', nsName, 'link', 'set', 'lo', 'up']);
    const dir = newDir();
    const up = spawn(
      'ip',
      ['netns', 'exec', nsName, process.execPath, mainJs, 'up', '--tun', '--no-tty'].concat([
        '--exit-after',
        '60',
        '--state-dir',
        dir,
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const upDone = collect(up, 70_000);
    t.teardown(async () => {
      if (up.exitCode === null) up.kill('SIGTERM');
      await upDone;
      spawnSync('ip', ['netns', 'del', nsName]);
    });
    t.ok(await until(() => existsSync(join(dir, 'client.json')), 30_000), 'up --tun started');
    const began = Date.now();
    const r = await collect(
      spawn(process.execPath, [mainJs, 'status', '--state-dir', dir, '--wait', '40'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      50_000,
    );
    t.equal(r.code, 1);
    t.match(r.err, /another network namespace/);
    t.match(
      r.err,
      new RegExp(`run it in that namespace: \`ip netns exec ${nsName} `),
      r.err.trim(),
    );
    t.ok(
      Date.now() - began < 20_000,
      'it does not wait out its 40 s: the namespace will not change',
    );
  },
);
