/**
 * The command-line experience of gsa-emu's short commands (dist/cli/main.js, spawned as a
 * user or a CI job runs them): a closed stdout, port values, the hints and checks of
 * --state-dir and --admin, explain --off, profiles validate. Loopback only; every process
 * started is bounded in time and killed at the end; state folders are temporary.
 *
 * Needs `npm run build` (skipped without dist/cli/main.js).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { cliCommand } from '../../src/util/cli-command.js';
import { cli, cliClosedStdout, skip, tempRoot } from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

// `gsa-emu explain X | head -0`, `profiles show --json | head -1`, `--help | head -1`: the
// command finishes quietly, exit 0, no stack trace.

/**
 * The limit of CLIs started side by side, which end in about a second each when right: on
 * a loaded 2-core machine six of them took 13 s, past the 20 s default (a flaky failure).
 */
const SIDE_BY_SIDE_MS = 60_000;

t.test('a command whose stdout is closed: quiet, exit 0', { skip }, async (t) => {
  for (const args of [['explain', 'news.test'], ['profiles', 'show', '--json'], ['--help']]) {
    const r = await cliClosedStdout(args);
    t.equal(r.code, 0, `${args.join(' ')}: exit 0`);
    t.equal(r.err, '', `${args.join(' ')}: nothing on stderr`);
  }
  // A failure keeps its exit code and its message.
  const r = await cliClosedStdout(['explain', 'host:x']);
  t.equal(r.code, 2, 'a usage error: exit 2');
  t.match(r.err, /^gsa-emu: .*port "x"/, 'said on stderr');
});

// An empty port value (`--socks-port "$SOCKS_PORT"` with the variable unset, or
// `socksPort: ""` in --config) was taken as 0, any free port; so were " ", 0x438, 1e4.
t.test('a port value that is not digits is a usage error', { skip }, async (t) => {
  const dir = newDir();
  // Each is refused before anything starts: run side by side.
  const flags = ['--socks-port', '--http-port', '--pac-port', '--admin-port'];
  const empty = await Promise.all(
    flags.map((flag) => {
      const others = ['--socks-port', '--http-port']
        .filter((f) => f !== flag)
        .flatMap((f) => [f, '0']);
      return cli(['up', '--once', '--state-dir', dir, ...others, flag, ''], SIDE_BY_SIDE_MS);
    }),
  );
  flags.forEach((flag, i) => {
    t.equal(empty[i]!.code, 2, `${flag} "": exit 2`);
    t.match(empty[i]!.err, /is not a port number/, `${flag} "": says why`);
  });
  const values = [' ', '0x438', '1e4', '65536', '-1', '80.5'];
  const odd = await Promise.all(
    values.map((v) =>
      cli(
        ['up', '--once', '--state-dir', dir, '--http-port', '0', '--socks-port', v],
        SIDE_BY_SIDE_MS,
      ),
    ),
  );
  values.forEach((v, i) => {
    t.equal(odd[i]!.code, 2, `--socks-port "${v}": exit 2`);
    t.match(odd[i]!.err, `--socks-port "${v}" is not a port number`);
  });
  t.notOk(existsSync(join(dir, 'logs')), 'nothing started');
  const cfg = join(root, 'empty-port.yaml');
  await writeFile(cfg, `stateDir: ${JSON.stringify(dir)}\nsocksPort: ""\nhttpPort: 0\n`);
  // --state-dir too: a config file up cannot read leaves its failed-start record in the
  // default state folder otherwise (~/.gsa-emu/up-failed.json), outside the test's own.
  const r = await cli(['up', '--once', '--config', cfg, '--state-dir', dir]);
  t.equal(r.code, 1, 'socksPort: "" in --config: GSA_ERR_CONFIG, exit 1');
  t.match(r.err, /socksPort/, 'names the key');
  const edgeValues = ['', '0x438', '1e4'];
  const edges = await Promise.all(
    edgeValues.map((v) => cli(['edge', '--state-dir', dir, '--port', v], SIDE_BY_SIDE_MS)),
  );
  edgeValues.forEach((v, i) => {
    const e = edges[i]!;
    t.equal(e.signal, null, `edge --port "${v}": refused, not started (else killed after 60 s)`);
    t.equal(e.code, 2, `edge --port "${v}": exit 2`);
    t.match(e.err, `--port "${v}" is not a port number`);
  });
});

// `--exit-after ""` was taken as 0 (stop at once), `--limit 0x10` as 16, `--wait 1e0` as 1.
t.test(
  'a seconds or count value that is not decimal digits is a usage error',
  { skip },
  async (t) => {
    const dir = newDir();
    const runs = [
      ['up', '--once', '--socks-port', '0', '--http-port', '0', '--exit-after', ''],
      ['up', '--once', '--socks-port', '0', '--http-port', '0', '--profile-poll', '1e3'],
      ['flows', '--limit', '0x10'],
      ['status', '--wait', '1e0'],
      ['stop', '--wait', '0x10'],
    ];
    const rs = await Promise.all(
      runs.map((args) => cli([...args, '--state-dir', dir], SIDE_BY_SIDE_MS)),
    );
    runs.forEach((args, i) => {
      const [flag, v] = args.slice(-2);
      t.equal(rs[i]!.code, 2, `${args[0]} ${flag} "${v}": exit 2`);
      t.match(rs[i]!.err, `${flag} "${v}" is not a `, `${args[0]} ${flag} "${v}": says why`);
    });
    t.notOk(existsSync(join(dir, 'logs')), 'nothing started');
  },
);

// With no client running, status / flows / toggle suggest the `up` of the state folder
// they were given.
t.test('no running client: the suggested up names the state folder', { skip }, async (t) => {
  const dir = newDir();
  for (const args of [['status'], ['flows'], ['toggle', 'internet', 'off']]) {
    const r = await cli([...args, '--state-dir', dir]);
    t.equal(r.code, 1, `${args[0]}: exit 1`);
    t.match(
      r.err,
      `start one with "${cliCommand()} up --state-dir ${dir}", or pass --admin host:port`,
      `${args[0]}: names --state-dir`,
    );
  }
});

// `--admin 127.0.0.1` (no port) was taken as host:80 and dialled.
t.test('--admin without a port is a usage error', { skip }, async (t) => {
  for (const a of ['127.0.0.1', 'http://127.0.0.1', 'http://127.0.0.1/', '[::1]', 'localhost']) {
    const r = await cli(['status', '--admin', a, '--state-dir', newDir()]);
    t.equal(r.code, 2, `--admin ${a}: exit 2`);
    t.match(r.err, `--admin "${a}" is not host:port`);
  }
});

// `explain --off internet host`: the variadic --off took the target too ("missing required
// argument 'target'").
t.test(
  'explain --off: before or after the target, repeated or comma-separated',
  { skip },
  async (t) => {
    const json = async (args: string[]) => {
      const r = await cli(['explain', ...args, '--json']);
      t.equal(r.code, 0, `explain ${args.join(' ')}: exit 0`);
      return r.code === 0 ? (JSON.parse(r.out) as { target: string; decision: unknown }) : null;
    };
    const host = 'intranet.contoso.test:80';
    const on = await json([host]);
    const old = await json([host, '--off', 'private', 'internet']);
    t.not(JSON.stringify(old?.decision), JSON.stringify(on?.decision), '--off changes it');
    const forms = [
      ['--off', 'internet', 'private', host],
      ['--off', 'private,internet', host],
      ['--off', 'Private', '--off', 'internet', host],
      [host, '--off', 'internet,private'],
    ];
    const each = await Promise.all(forms.map((args) => json(args)));
    forms.forEach((args, i) => {
      t.equal(each[i]?.target, 'intranet.contoso.test:80/tcp', `${args.join(' ')}: the target`);
      t.same(each[i]?.decision, old?.decision, `${args.join(' ')}: as the old form`);
    });
    const ambiguous = await cli(['explain', '--off', 'internet', 'private']);
    t.equal(ambiguous.code, 2, 'only channel names: no target, exit 2');
    t.match(ambiguous.err, /missing required argument 'target'.*goes before --off/);
    const unknown = await cli(['explain', '--off', 'bogus', 'news.test']);
    t.equal(unknown.code, 2);
    t.match(unknown.err, /unknown channel "bogus"/);
    const help = await cli(['explain', '--help']);
    t.match(help.out, /Usage: gsa-emu explain \[options\] <target>/);
    t.match(help.out, /--off internet,private/);
  },
);

// `profiles validate` printed its failure on stdout, without the `gsa-emu:` prefix of every
// other error (docs/errors.md).
t.test('profiles validate: a failure is said as every error is', { skip }, async (t) => {
  const bad = join(root, 'bad-tenant.json');
  await writeFile(bad, '{"tenantId": 1, "forwardingProfiles": "x"}');
  const r = await cli(['profiles', 'validate', bad]);
  t.equal(r.code, 1, 'exit 1');
  t.equal(r.out, '', 'nothing on stdout');
  t.match(r.err, `gsa-emu: ${bad}: `, 'gsa-emu: <file>: on stderr');
  t.match(r.err, /forwardingProfiles: /, 'every problem');
});
