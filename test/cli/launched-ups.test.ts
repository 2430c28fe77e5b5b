/**
 * launched-ups.ts: which `gsa-emu up` processes were launched with this one for a state
 * folder. The command-line part everywhere; the /proc part on Linux, with stand-in
 * processes named like the CLI (a `main.js` that only sleeps), all stopped by the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import t, { type Test } from 'tap';
import { register as registerEdge } from '../../src/cli/commands/edge.js';
import { register as registerNetns } from '../../src/cli/commands/netns.js';
import { register as registerUp } from '../../src/cli/commands/up.js';
import {
  commandStateDir,
  EDGE_VALUE_OPTIONS,
  launchedUps,
  NETNS_VALUE_OPTIONS,
  UP_VALUE_OPTIONS,
} from '../../src/cli/launched-ups.js';

t.test(
  'commandStateDir: the folder a command line`s up uses, as stateDir() computes it',
  async (t) => {
    const env = { HOME: '/home/u' };
    t.equal(commandStateDir(['node', '/x/dist/cli/main.js', 'up'], env, '/w'), '/home/u/.gsa-emu');
    t.equal(
      commandStateDir(['node', '/x/main.js', 'up', '--state-dir', 'd'], env, '/w'),
      '/w/d',
      'relative to its working folder',
    );
    t.equal(commandStateDir(['node', '/x/main.js', 'up', '--state-dir=/s'], env, '/w'), '/s');
    t.equal(
      commandStateDir(
        ['node', '/usr/bin/gsa-emu', 'up'],
        { ...env, GSA_EMU_STATE_DIR: '/e' },
        '/w',
      ),
      '/e',
      '$GSA_EMU_STATE_DIR after the flag',
    );
    t.equal(
      commandStateDir(
        ['node', '/x/main.js', 'up', '--state-dir', '/f'],
        { GSA_EMU_STATE_DIR: '/e' },
        '/',
      ),
      '/f',
      'the flag wins',
    );
    t.equal(
      commandStateDir(['node', 'npx-cli.js', 'gsa-emu', 'up', '--no-tty'], env, '/w'),
      '/home/u/.gsa-emu',
      'npx gsa-emu up',
    );
    t.equal(
      commandStateDir(['node', '/x/main.js', 'up', '--', '--state-dir', '/no'], env, '/w'),
      '/home/u/.gsa-emu',
      'not after --',
    );
    t.equal(commandStateDir(['node', '/x/main.js', 'status', '--state-dir', '/s'], env, '/'), null);
    t.equal(commandStateDir(['node', '/x/other.js', 'up'], env, '/'), null, 'not the CLI');
    t.equal(commandStateDir(['gsa-emu'], env, '/'), null, 'the script is not argv[0]');
    t.equal(commandStateDir(['node', '/x/main.js', 'up'], {}, '/'), null, 'no HOME: unknown');
    t.equal(
      commandStateDir(['node', '/x/main.js', 'edge', '--state-dir', '/g'], env, '/', 'edge'),
      '/g',
      'edge',
    );
    t.equal(
      commandStateDir(['node', '/x/main.js', 'up'], env, '/', 'edge'),
      null,
      'up is not edge',
    );
    t.equal(
      commandStateDir(
        ['node', '/x/main.js', 'netns', '--state-dir', '/n', '--', 'x', '--state-dir', '/no'],
        env,
        '/',
        'netns',
      ),
      '/n',
      "netns: its options, not its command's",
    );
    const netnsDir = (...args: string[]) =>
      commandStateDir(['node', '/x/main.js', 'netns', ...args], env, '/w', 'netns');
    t.equal(
      netnsDir('curl', '--state-dir', '/no', 'http://a.test/'),
      '/home/u/.gsa-emu',
      'netns without --: the options end at its command',
    );
    t.equal(
      netnsDir('--log-level', 'debug', '--state-dir', 's', 'sh', '-c', 'x --state-dir /no'),
      '/w/s',
      'netns without --: a value option takes the next word',
    );
    t.equal(
      netnsDir('-q', '--add-host', 'a=127.0.0.1', 'env', '--state-dir=/no'),
      '/home/u/.gsa-emu',
      'netns without --: flags without a value do not end the options',
    );
    t.equal(netnsDir('--state-dir=/n', 'curl'), '/n', 'netns: --state-dir=');
  },
);

t.test('commandStateDir: up and edge skip the values of their other options', async (t) => {
  const env = { HOME: '/home/u' };
  const upDir = (...args: string[]) =>
    commandStateDir(['node', '/x/main.js', 'up', ...args], env, '/w');
  const edgeDir = (...args: string[]) =>
    commandStateDir(['node', '/x/main.js', 'edge', ...args], env, '/w', 'edge');
  t.equal(
    upDir('--add-host', '--state-dir=/no', '--tun'),
    '/home/u/.gsa-emu',
    'up: --add-host takes the next word, whatever it looks like',
  );
  t.equal(
    upDir('--password', '--state-dir', '--tun'),
    '/home/u/.gsa-emu',
    'up: a password that looks like the flag is a password',
  );
  t.equal(
    upDir('--password', '--state-dir', '--state-dir', 'd'),
    '/w/d',
    'up: the flag after the password is read',
  );
  t.equal(upDir('--tun', '--state-dir=/s', '--once'), '/s', 'up: flags without a value');
  t.equal(
    upDir('--tenant', 't.json', 'extra', '--state-dir', '/s'),
    '/s',
    'up: a stray word does not end the options',
  );
  t.equal(
    edgeDir('--hostname', '--state-dir', '--port', '0'),
    '/home/u/.gsa-emu',
    'edge: a --hostname that looks like the flag',
  );
  t.equal(
    edgeDir('--tenant', 'x', '--state-dir=/e'),
    '/e',
    'edge: the flag after another option and its value',
  );
});

/** The long and short names of `command`'s options that take a value, as registered. */
function valueOptions(register: (p: Command) => void, name: string, t: Test): string[] {
  const program = new Command().enablePositionalOptions(); // as main.ts has it
  register(program);
  const command = program.commands.find((c) => c.name() === name);
  if (!command) throw new Error(`no ${name} command`);
  const valued = command.options.filter((o) => o.required || o.optional);
  // commander takes the next word as a required value whatever it looks like; an optional
  // one only when it does not look like an option: commandStateDir skips it always.
  t.strictSame(
    valued.filter((o) => !o.required).map((o) => o.flags),
    [],
    `${name}: no option with an optional value`,
  );
  return valued.flatMap((o) => [o.long, o.short].filter((n): n is string => !!n)).sort();
}

t.test('NETNS_VALUE_OPTIONS: the options of `gsa-emu netns` that take a value', async (t) => {
  t.strictSame([...NETNS_VALUE_OPTIONS].sort(), valueOptions(registerNetns, 'netns', t));
});

t.test('UP_VALUE_OPTIONS: the options of `gsa-emu up` that take a value', async (t) => {
  t.strictSame([...UP_VALUE_OPTIONS].sort(), valueOptions(registerUp, 'up', t));
});

t.test('EDGE_VALUE_OPTIONS: the options of `gsa-emu edge` that take a value', async (t) => {
  t.strictSame([...EDGE_VALUE_OPTIONS].sort(), valueOptions(registerEdge, 'edge', t));
});

const linux = process.platform === 'linux';
t.test(
  'launchedUps: sees `up`s of the folder started with this process, not others',
  { skip: linux ? false : `/proc is Linux's; this is ${process.platform}` },
  async (t) => {
    const base = await mkdtemp(join(tmpdir(), 'gsa-launched-'));
    const bin = join(base, 'bin');
    await mkdir(bin);
    // Named like the CLI's entry; it only waits to be stopped (bounded: 30 s).
    const main = join(bin, 'main.js');
    await writeFile(main, 'setTimeout(() => {}, 30_000);\n');
    const d = join(base, 'state');
    const other = join(base, 'other');
    await mkdir(d);
    await mkdir(other);
    const kids: ChildProcess[] = [];
    // Processes that are no children of ours: the node that `timeout` starts (killing
    // `timeout` with SIGKILL leaves it running).
    const grandkids: number[] = [];
    const killAll = (): void => {
      for (const k of kids) k.kill('SIGKILL');
      for (const pid of grandkids.splice(0)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    };
    t.teardown(async () => {
      killAll();
      await rm(base, { recursive: true, force: true });
    });
    const start = (args: string[], env: NodeJS.ProcessEnv = {}, cwd = base): number => {
      const k = spawn(process.execPath, [main, ...args], {
        stdio: 'ignore',
        cwd,
        env: { PATH: process.env.PATH, HOME: base, ...env },
      });
      kids.push(k);
      return k.pid!;
    };
    const a = start(['up', '--state-dir', d]);
    const b = start(['up', '--state-dir', 'state']); // relative to its cwd
    const c = start(['up'], { GSA_EMU_STATE_DIR: d });
    const x = start(['up', '--state-dir', other]);
    const y = start(['status', '--state-dir', d]);
    const z = start(['up'], {}, base); // HOME/.gsa-emu
    // Their command lines are there once they have run node (spawn returns after exec).
    const got = launchedUps(d)!;
    t.same([...got].sort(), [a, b, c].sort(), 'the three ups of the folder');
    t.notOk(
      got.includes(x) || got.includes(y) || got.includes(z),
      'not another folder, not status',
    );
    t.same(
      [...launchedUps(d, b)!].sort(),
      [a, c].sort(),
      'the folder`s client (except) is left out',
    );
    t.same(launchedUps(join(base, '.gsa-emu')), [z], 'the default folder, from its HOME');
    // A wrapper names the script in its command line too: only the node it starts counts.
    const w = spawn('timeout', ['30', process.execPath, main, 'up', '--state-dir', other], {
      stdio: 'ignore',
      cwd: base,
      env: { PATH: process.env.PATH, HOME: base },
    });
    kids.push(w);
    let wrapped: number[] = [];
    for (let i = 0; i < 100 && wrapped.length < 2; i++) {
      wrapped = launchedUps(other) ?? [];
      await new Promise((r) => setTimeout(r, 20));
    }
    t.equal(wrapped.length, 2, 'the earlier up of that folder and the wrapped node');
    t.ok(wrapped.includes(x), 'the earlier one');
    t.notOk(wrapped.includes(w.pid!), 'not `timeout`, the wrapper');
    grandkids.push(...wrapped.filter((p) => p !== x));
    killAll();
    await Promise.all(
      kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(0) : k.once('exit', r)))),
    );
    t.same(launchedUps(d), [], 'gone once they have exited');
    let left: number[] | null = [];
    for (let i = 0; i < 100; i++) {
      left = launchedUps(other);
      if (left?.length === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.same(left, [], 'the wrapped node too: nothing outlives the test');
  },
);
