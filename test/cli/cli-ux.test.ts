/**
 * The command-line experience of gsa-emu (dist/cli/main.js, spawned as a user or a CI job
 * runs it): output to a closed pipe, the banner's suggestions (admin API off, one proxy
 * off), port values, stopping during startup, the hints and checks of --state-dir,
 * --admin, --edge-ca, explain --off, profiles validate. Loopback only; every process
 * started is bounded in time and killed at the end; state folders are temporary.
 *
 * Needs `npm run build` (skipped without dist/cli/main.js).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { readEdgeCa } from '../../src/cli/world.js';
import { loadOrCreateTls } from '../../src/tunnel/tls.js';
import { cliCommand } from '../../src/util/cli-command.js';
import { collect, type Run } from '../util/ts-child.js';
import { until } from '../util/wait.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

const root = await mkdtemp(join(tmpdir(), 'gsa-cli-ux-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
let n = 0;
const newDir = () => join(root, `d${++n}`);

/** Runs the CLI to its end (killed after `ms`). */
const cli = (args: string[], ms = 20_000): Promise<Run> =>
  collect(spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), ms);

/** Node's report of an unhandled 'error' event: a crash with a stack trace. */
const CRASH = /Unhandled 'error' event|\n\s+at .+:\d+:\d+\)?\n/;

/** A long-running `up`: the child, its output so far, and its end (bounded). */
function startUp(t: Test, args: string[], ms = 60_000) {
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

const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

/** GET `url` through the HTTP proxy at `proxy` (host:port): the status code or the error. */
function viaHttpProxy(proxy: string, url: string): Promise<number | string> {
  const i = proxy.lastIndexOf(':');
  return new Promise((resolve) => {
    const req = request(
      {
        host: proxy.slice(0, i),
        port: Number(proxy.slice(i + 1)),
        path: url,
        headers: { host: new URL(url).host },
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
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Runs the CLI with its stdout closed at once (`gsa-emu ... | head -0`). */
function cliClosedStdout(args: string[], ms = 20_000): Promise<Run> {
  const c = spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  c.stdout!.destroy();
  return collect(c, ms);
}

// `gsa-emu up | head -3` (or `| grep -m1 SOCKS5`, a script reading the banner): once the
// reader is gone, the next line up writes (the first flow's, non-TTY) is EPIPE. up neither
// crashes (a stack trace, state files left behind) nor stops: it runs on until stopped.
t.test(
  'up whose stdout reader went away: no crash, runs on, no stale state',
  { skip },
  async (t) => {
    const dir = newDir();
    const { child, seen, done } = startUp(t, [
      '--state-dir',
      dir,
      '--socks-port',
      '0',
      '--http-port',
      '0',
      '--no-tty',
      '--exit-after',
      '50',
    ]);
    const stateFile = join(dir, 'client.json');
    t.ok(
      await until(() => existsSync(stateFile) && seen.out.includes('Ctrl+C to stop.'), 20_000),
      'up is ready',
    );
    const http = (JSON.parse(readFileSync(stateFile, 'utf8')) as { http: string }).http;
    child.stdout!.destroy(); // like `| head -3` exiting after the banner
    t.equal(await viaHttpProxy(http, 'http://news.test/'), 200, 'the flow in progress is answered');
    t.equal(await viaHttpProxy(http, 'http://news.test/'), 200, 'and the next one');
    await until(() => !running(child), 1000);
    t.ok(running(child), 'up runs on without its reader');
    t.ok(existsSync(stateFile), 'its state is intact');
    // A short command against it, its own stdout closed: `gsa-emu flows --json | head -1`.
    const flows = await cliClosedStdout(['flows', '-n', '1000', '--json', '--state-dir', dir]);
    t.equal(flows.code, 0, 'flows | head: exit 0');
    t.notMatch(flows.err, CRASH, 'flows | head: no stack trace');
    const stop = await cli(['stop', '--state-dir', dir]);
    t.equal(stop.code, 0, 'gsa-emu stop stops it');
    const r = await done;
    t.equal(r.code, 0, 'up exits 0');
    t.notMatch(r.err, CRASH, 'no crash with a stack trace');
    t.notOk(existsSync(stateFile), 'no stale client.json');
    t.notOk(existsSync(join(dir, 'client.token')), 'no stale client.token');
    t.notOk(existsSync(join(dir, 'up.lock')), 'no stale up.lock');
  },
);

// `gsa-emu explain X | head -0`, `profiles show --json | head -1`, `--help | head -1`: the
// command finishes quietly, exit 0, no stack trace.
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

// `up --admin-port off`: the banner suggests no `toggle`, `status`, `flows` (each would fail,
// "runs without an admin API"); the curl examples stay.
t.test('up --admin-port off: the banner suggests no command that needs it', { skip }, async (t) => {
  const dir = newDir();
  const r = await cli([
    'up',
    '--once',
    '--state-dir',
    dir,
    '--socks-port',
    '0',
    '--http-port',
    '0',
    '--admin-port',
    'off',
  ]);
  t.equal(r.code, 0);
  t.match(r.out, /^admin API +off$/m);
  t.match(r.out, /^ {2}curl --socks5-hostname /m, 'the curl examples');
  const suggested = r.out
    .split('\n')
    .filter((l) => /gsa-emu (status|flows|toggle|onboard|explain)\b/.test(l));
  t.same(suggested, [], 'no status / flows / toggle suggestion without an admin API');
});

// An empty port value (`--socks-port "$SOCKS_PORT"` with the variable unset, or
// `socksPort: ""` in --config) was taken as 0, any free port; so were " ", 0x438, 1e4.
t.test('a port value that is not digits is a usage error', { skip }, async (t) => {
  const dir = newDir();
  for (const flag of ['--socks-port', '--http-port', '--pac-port', '--admin-port']) {
    const others = ['--socks-port', '--http-port']
      .filter((f) => f !== flag)
      .flatMap((f) => [f, '0']);
    const r = await cli(['up', '--once', '--state-dir', dir, ...others, flag, '']);
    t.equal(r.code, 2, `${flag} "": exit 2`);
    t.match(r.err, /is not a port number/, `${flag} "": says why`);
  }
  for (const v of [' ', '0x438', '1e4', '65536', '-1', '80.5']) {
    const r = await cli([
      'up',
      '--once',
      '--state-dir',
      dir,
      '--http-port',
      '0',
      '--socks-port',
      v,
    ]);
    t.equal(r.code, 2, `--socks-port "${v}": exit 2`);
    t.match(r.err, `--socks-port "${v}" is not a port number`);
  }
  t.notOk(existsSync(join(dir, 'logs')), 'nothing started');
  const cfg = join(root, 'empty-port.yaml');
  await writeFile(cfg, `stateDir: ${JSON.stringify(dir)}\nsocksPort: ""\nhttpPort: 0\n`);
  const r = await cli(['up', '--once', '--config', cfg]);
  t.equal(r.code, 1, 'socksPort: "" in --config: GSA_ERR_CONFIG, exit 1');
  t.match(r.err, /socksPort/, 'names the key');
  for (const v of ['', '0x438', '1e4']) {
    const e = await cli(['edge', '--state-dir', dir, '--port', v], 5000);
    t.equal(e.signal, null, `edge --port "${v}": refused, not started (killed after 5 s)`);
    t.equal(e.code, 2, `edge --port "${v}": exit 2`);
    t.match(e.err, `--port "${v}" is not a port number`);
  }
});

// The same port given to two listeners was "the port is in use (by another gsa-emu, or
// another program)", exit 1; it is this command line's own other flag.
t.test('two flags with the same port: said so, as a usage error', { skip }, async (t) => {
  const p = String(await freePort());
  for (const [a, b] of [
    ['--socks-port', '--http-port'],
    ['--http-port', '--pac-port'],
    ['--socks-port', '--admin-port'],
  ]) {
    const others = ['--socks-port', '--http-port']
      .filter((f) => f !== a && f !== b)
      .flatMap((f) => [f, '0']);
    const r = await cli(['up', '--once', '--state-dir', newDir(), ...others, a!, p, b!, p]);
    t.equal(r.code, 2, `${a} ${b}: exit 2, the command line cannot run`);
    t.notMatch(r.err, /by another gsa-emu, or another program/, 'does not blame another program');
    t.match(r.err, `${a} and ${b} are both ${p}`, 'names both flags');
  }
});

// up stopped while it starts (Ctrl+C, `gsa-emu stop`, SIGTERM before it is ready): no
// banner inviting Ctrl+C, but "stopped. logs: ..." as after a run (README).
t.test('up stopped while starting says where the logs are', { skip }, async (t) => {
  const dir = newDir();
  const { child, done } = startUp(t, [
    '--state-dir',
    dir,
    '--socks-port',
    '0',
    '--http-port',
    '0',
    '--no-tty',
  ]);
  // The log is opened early in startWorld, before the edge, the demo and the client start.
  t.ok(await until(() => existsSync(join(dir, 'logs', 'client.log')), 20_000), 'starting');
  child.kill('SIGTERM');
  const r = await done;
  t.equal(r.code, 0, 'exit 0');
  t.match(r.out, /stopped\. logs: .*client\.log/, 'says where the logs are');
  t.notMatch(r.out, /Ctrl\+C to stop\./, 'does not invite Ctrl+C while stopping');
  t.notOk(existsSync(join(dir, 'client.json')), 'no state file left');
  t.notOk(existsSync(join(dir, 'up.lock')), 'no lock left');
});

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

// `--edge-ca` was never checked: ignored without --edge, a non-PEM file accepted (failing
// later as "unable to verify the first certificate").
t.test('up --edge-ca: only with --edge, and a PEM certificate', { skip }, async (t) => {
  const up = (extra: string[]) =>
    cli([
      'up',
      '--once',
      '--state-dir',
      newDir(),
      '--socks-port',
      '0',
      '--http-port',
      '0',
      ...extra,
    ]);
  const pem = join(root, 'ca.pem');
  const demoCaPem = (await loadOrCreateTls(join(root, 'tls'))).ca;
  await writeFile(pem, demoCaPem);
  const without = await up(['--edge-ca', pem]);
  t.equal(without.code, 2, 'without --edge: exit 2');
  t.match(without.err, /--edge-ca goes with --edge/, 'names the flag');
  const edge = ['--edge', 'https://127.0.0.1:1'];
  const missing = await up([...edge, '--edge-ca', join(root, 'no-such-ca.pem')]);
  t.equal(missing.code, 2, 'a missing file: exit 2');
  t.match(missing.err, /--edge-ca ".*no-such-ca\.pem": cannot read it/);
  const notPem = join(root, 'not-a-ca.txt');
  await writeFile(notPem, 'hello\n');
  const bad = await up([...edge, '--edge-ca', notPem]);
  t.equal(bad.code, 2, 'not PEM: exit 2');
  t.match(bad.err, /--edge-ca ".*not-a-ca\.txt" is not a PEM certificate/);
  const garbled = join(root, 'garbled.pem');
  await writeFile(garbled, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const g = await up([...edge, '--edge-ca', garbled]);
  t.equal(g.code, 2, 'a garbled certificate: exit 2');
  t.match(g.err, /is not a PEM certificate/);
  t.equal(readEdgeCa(pem), demoCaPem, 'a PEM certificate is taken as it is');
});

// `up --http-port off` (SOCKS5 only) or `--socks-port off`: the banner had no `try:` block,
// though every example works through the remaining proxy.
t.test('up with one proxy off still shows how to try it', { skip }, async (t) => {
  const dir = newDir();
  const socksOnly = await cli([
    'up',
    '--once',
    '--state-dir',
    dir,
    '--socks-port',
    '0',
    '--http-port',
    'off',
  ]);
  t.equal(socksOnly.code, 0);
  t.match(socksOnly.out, /^try/m, 'a try block');
  t.match(
    socksOnly.out,
    /curl --socks5-hostname 127\.0\.0\.1:\d+ http:\/\/intranet\.contoso\.test\//,
  );
  t.match(
    socksOnly.out,
    /curl --socks5-hostname 127\.0\.0\.1:\d+ --cacert \S+ https:\/\/outlook\.office365\.com\//,
    "the HTTP proxy's tries through SOCKS5",
  );
  t.notMatch(socksOnly.out, /curl -x /, 'none through the HTTP proxy');
  t.match(socksOnly.out, /gsa-emu status --state-dir/, 'the status / flows line');
  const httpOnly = await cli([
    'up',
    '--once',
    '--state-dir',
    dir,
    '--socks-port',
    'off',
    '--http-port',
    '0',
  ]);
  t.equal(httpOnly.code, 0);
  t.match(httpOnly.out, /curl -x http:\/\/127\.0\.0\.1:\d+ http:\/\/intranet\.contoso\.test\//);
  t.notMatch(httpOnly.out, /--socks5-hostname/, 'none through SOCKS5');
  t.match(httpOnly.out, /casino\.test\/ +# .*blocked at the edge \(403\)/);
});

// `up --state-dir <a file>` was "ENOTDIR: not a directory, mkdir '<file>/logs'".
t.test('up --state-dir naming a file says so', { skip }, async (t) => {
  const file = join(root, 'a-file');
  await writeFile(file, 'x');
  for (const [dir, what] of [
    [file, 'it is a file'],
    [join(file, 'sub'), `${file} is a file`],
  ] as const) {
    const r = await cli([
      'up',
      '--once',
      '--state-dir',
      dir,
      '--socks-port',
      '0',
      '--http-port',
      '0',
    ]);
    t.equal(r.code, 1);
    t.match(r.err, `gsa-emu: the state folder ${dir} is not a directory (${what})`);
    t.match(r.err, /--state-dir/, 'names the flag');
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
    for (const args of [
      ['--off', 'internet', 'private', host],
      ['--off', 'private,internet', host],
      ['--off', 'Private', '--off', 'internet', host],
      [host, '--off', 'internet,private'],
    ]) {
      const e = await json(args);
      t.equal(e?.target, 'intranet.contoso.test:80/tcp', `${args.join(' ')}: the target`);
      t.same(e?.decision, old?.decision, `${args.join(' ')}: as the old form`);
    }
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
