/**
 * `gsa-emu netns` where the harness cannot run: one line on stderr, exit code 1, naming
 * what is missing and what to do about it, as `up --tun` does (not a bare "needs root").
 * Without root: run as nobody (setpriv) when this is root, else as this user. Without `ip`:
 * root with a PATH that has no `ip` (skipped elsewhere). Nothing starts in either case.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const IS_ROOT = process.getuid?.() === 0;
const noDist = existsSync(CLI) ? false : 'dist is missing (npx tsc -p tsconfig.build.json)';
const notLinux = process.platform === 'linux' ? false : 'the harness is Linux-only';

/** `gsa-emu netns -- true` in a plain environment (`env -i`: no tap hooks); stderr, code. */
function run(state: string, path: string, asNobody: boolean): { err: string; code: number | null } {
  const argv = [
    'env',
    '-i',
    `PATH=${path}`,
    `HOME=${state}`,
    process.execPath,
    CLI,
    'netns',
    '--state-dir',
    state,
    '--',
    'true',
  ];
  const r = asNobody
    ? spawnSync(
        'setpriv',
        ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', ...argv],
        { encoding: 'utf8', timeout: 30_000 },
      )
    : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  return { err: r.stderr, code: r.status };
}

t.test(
  'without root: says to run it with sudo',
  {
    skip:
      noDist ||
      notLinux ||
      (IS_ROOT && spawnSync('setpriv', ['--version']).status !== 0
        ? 'setpriv (util-linux) is missing to drop root'
        : false),
  },
  async (t) => {
    const state = await mkdtemp(join(tmpdir(), 'gsa-netns-noroot-'));
    t.teardown(() => rm(state, { recursive: true, force: true }));
    const r = run(state, process.env.PATH ?? '/usr/bin:/bin', IS_ROOT);
    t.equal(r.code, 1, 'exit code 1');
    t.equal(
      r.err,
      'gsa-emu: TUN mode is unavailable: needs root (creating namespaces and TUN devices): run it with sudo\n',
    );
  },
);

t.test(
  'without the ip command: says to install iproute2',
  {
    skip:
      noDist ||
      notLinux ||
      (!IS_ROOT ? 'needs root (the root check comes first)' : false) ||
      (!existsSync('/dev/net/tun') ? '/dev/net/tun is missing (checked before ip)' : false),
  },
  async (t) => {
    const state = await mkdtemp(join(tmpdir(), 'gsa-netns-noip-'));
    t.teardown(() => rm(state, { recursive: true, force: true }));
    // An empty folder as the whole PATH: no `ip` (node is run by its absolute path).
    const empty = await mkdtemp(join(tmpdir(), 'gsa-netns-path-'));
    t.teardown(() => rm(empty, { recursive: true, force: true }));
    const r = run(state, empty, false);
    t.equal(r.code, 1, 'exit code 1');
    t.equal(
      r.err,
      'gsa-emu: TUN mode is unavailable: the `ip` command (iproute2) is missing: install iproute2\n',
    );
    t.notOk(existsSync(join(state, 'logs')), 'nothing started');
  },
);
