/**
 * The command-line experience of `gsa-emu up` (dist/cli/main.js, spawned as a user or a CI
 * job runs it): output to a closed pipe, the banner's suggestions (admin API off, one proxy
 * off), two flags with one port, stopping during startup, --edge-ca, --state-dir naming a
 * file. Loopback only; every process started is bounded in time and killed at the end;
 * state folders are temporary. The other commands: cli-ux-commands.test.ts.
 *
 * Needs `npm run build` (skipped without dist/cli/main.js).
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { readEdgeCa } from '../../src/cli/world.js';
import { loadOrCreateTls } from '../../src/tunnel/tls.js';
import { until } from '../util/wait.js';
import {
  CRASH,
  cli,
  cliClosedStdout,
  freePort,
  running,
  skip,
  startUp,
  tempRoot,
  upOnce,
  viaHttpProxy,
} from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

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

// `up --admin-port off`: the banner suggests no `toggle`, `status`, `flows` (each would fail,
// "runs without an admin API"); the curl examples stay.
t.test('up --admin-port off: the banner suggests no command that needs it', { skip }, async (t) => {
  const dir = newDir();
  const r = await upOnce(dir, ['--admin-port', 'off']);
  t.equal(r.code, 0);
  t.match(r.out, /^admin API +off$/m);
  t.match(r.out, /^ {2}curl --socks5-hostname /m, 'the curl examples');
  const suggested = r.out
    .split('\n')
    .filter((l) => /gsa-emu (status|flows|toggle|onboard|explain)\b/.test(l));
  t.same(suggested, [], 'no status / flows / toggle suggestion without an admin API');
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

// `--edge-ca` was never checked: ignored without --edge, a non-PEM file accepted (failing
// later as "unable to verify the first certificate").
t.test('up --edge-ca: only with --edge, and a PEM certificate', { skip }, async (t) => {
  const up = (extra: string[]) => upOnce(newDir(), extra);
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
    const r = await upOnce(dir);
    t.equal(r.code, 1);
    t.match(r.err, `gsa-emu: the state folder ${dir} is not a directory (${what})`);
    t.match(r.err, /--state-dir/, 'names the flag');
  }
});
