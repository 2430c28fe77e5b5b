/**
 * `gsa-emu up` in the background, as a script or CI job runs it: `gsa-emu status --wait <s>`,
 * started together with `up`, returns once the client is Connected (with no client it fails
 * after the time given, saying what it last saw); `gsa-emu stop` stops it as Ctrl+C would
 * and waits for it to exit. `up` runs as a child on free loopback ports; the test stops it.
 */

import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from '../util/free-port.js';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

function cli(args: string[], timeoutMs: number) {
  return collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    timeoutMs,
  );
}

/** An empty state folder, removed when `t` ends. */
async function stateFolder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-wait-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test(
  'status --wait returns once a starting client is Connected; stop ends it',
  { skip },
  async (t) => {
    const dir = await stateFolder(t);
    const up = spawn(
      process.execPath,
      [
        mainJs,
        'up',
        '--state-dir',
        dir,
        '--socks-port',
        '0',
        '--http-port',
        '0',
        '--no-tty',
        '--no-process-lookup',
        '--exit-after',
        '60',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const upDone = collect(up, 70_000);
    t.teardown(async () => {
      up.kill('SIGINT');
      await upDone;
    });
    // Started at the same moment as `up`: client.json does not exist yet.
    const r = await cli(['status', '--wait', '30', '--state-dir', dir], 40_000);
    t.equal(r.code, 0, `exit code 0 (stderr: ${r.err.trim()})`);
    t.match(r.out, /^Global Secure Access: Connected/m);

    t.ok(existsSync(join(dir, 'client.json')), 'client.json while it runs');

    const stop = await cli(['stop', '--state-dir', dir], 30_000);
    t.equal(stop.code, 0, `stop: exit code 0 (stderr: ${stop.err.trim()})`);
    t.match(stop.out, /^stopped "gsa-emu up" \(pid \d+\); logs: /);
    // stop returns once the pid is gone; the child's end reaches this process at once.
    const ended = await Promise.race([
      upDone,
      new Promise<null>((r) => setTimeout(() => r(null), 3000)),
    ]);
    t.ok(ended, 'up had exited when stop returned');
    t.equal(ended?.code, 0, 'up exited with 0');
    t.match(ended?.out, /stopping\.\.\.\nstopped\. logs: /, 'its clean shutdown');
    t.notOk(existsSync(join(dir, 'client.json')), 'client.json removed');

    const again = await cli(['stop', '--state-dir', dir], 20_000);
    t.equal(again.code, 1, 'stop with nothing running: exit code 1');
    t.match(again.err, /^gsa-emu: no running "gsa-emu up" holds /);
  },
);

t.test('status --wait with no client fails in time and says why', { skip }, async (t) => {
  const dir = await stateFolder(t);
  const t0 = Date.now();
  const r = await cli(['status', '--wait', '0.6', '--state-dir', dir], 20_000);
  const took = Date.now() - t0;
  t.equal(r.code, 1, 'exit code 1');
  t.match(
    r.err,
    /^gsa-emu: no Connected client within 0\.6 s; last answer: no running client found/,
  );
  t.ok(took >= 600, `waited the time given (${took} ms)`);

  const bad = await cli(['status', '--wait', 'soon', '--state-dir', dir], 20_000);
  t.equal(bad.code, 2, 'a bad --wait is a usage error');
  t.match(bad.err, /--wait "soon" is not a number of seconds/);
});

t.test(
  'status --wait ends at once when the up launched with it fails to start',
  { skip },
  async (t) => {
    const dir = await stateFolder(t);
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
    const busy = (holder.address() as AddressInfo).port;

    // A failure older than this launch (a run before) is not this run's: it waits.
    writeFileSync(
      join(dir, 'up-failed.json'),
      JSON.stringify({ pid: 1, at: new Date(Date.now() - 60_000).toISOString(), message: 'old' }),
    );
    const stale = await cli(['status', '--wait', '0.6', '--state-dir', dir], 20_000);
    t.match(stale.err, /no Connected client within 0\.6 s/, 'an old failure is ignored');

    const t0 = Date.now();
    const waiting = cli(['status', '--wait', '30', '--state-dir', dir], 40_000);
    // `up` stops on the busy port it was given.
    const up = await cli(
      ['up', '--state-dir', dir, '--socks-port', String(busy), '--http-port', '0', '--no-tty'],
      30_000,
    );
    t.equal(up.code, 1, 'up failed to start');
    t.match(up.err, /the SOCKS5 proxy cannot listen/);
    const r = await waiting;
    t.equal(r.code, 1, 'status: exit code 1');
    t.match(
      r.err,
      /^gsa-emu: "gsa-emu up" \(pid \d+\) failed to start: the SOCKS5 proxy cannot listen on 127\.0\.0\.1:\d+: the port is in use/,
    );
    t.ok(Date.now() - t0 < 20_000, `did not wait the full 30 s (${Date.now() - t0} ms)`);
  },
);

t.test(
  'status --wait ends at once when up stops on a bad --config or bad flags',
  { skip },
  async (t) => {
    const bad = join(await stateFolder(t), 'up.yaml');
    writeFileSync(bad, 'socksPort: [1080\n');
    for (const [what, args, reason] of [
      ['a config file that is not YAML', ['--config', bad], /up\.yaml: 1 problem\s+not valid YAML/],
      ['flags that do not go together', ['--user', 'u'], /--user and --password go together/],
    ] as const) {
      // Its own folder: `status --wait` counts a failure from up to 2 s before its launch.
      const dir = await stateFolder(t);
      const t0 = Date.now();
      const waiting = cli(['status', '--wait', '30', '--state-dir', dir], 40_000);
      const up = await cli(['up', '--state-dir', dir, '--no-tty', ...args], 30_000);
      t.not(up.code, 0, `${what}: up failed`);
      const r = await waiting;
      t.equal(r.code, 1, `${what}: status exit code 1`);
      t.match(r.err, /"gsa-emu up" \(pid \d+\) failed to start: /, `${what}: says up failed`);
      t.match(r.err, reason, `${what}: with up's reason`);
      t.ok(Date.now() - t0 < 20_000, `${what}: did not wait the full 30 s (${Date.now() - t0} ms)`);
    }
  },
);

t.test(
  "a config file's processLookup: false holds (the flag's default does not override it)",
  { skip: skip || (existsSync('/usr/bin/curl') ? false : 'needs /usr/bin/curl') },
  async (t) => {
    const dir = await stateFolder(t);
    const socksPort = await freePort();
    const cfg = join(dir, 'up.json');
    writeFileSync(cfg, JSON.stringify({ socksPort, httpPort: 0, processLookup: false }));
    const up = spawn(
      process.execPath,
      [mainJs, 'up', '--state-dir', dir, '--config', cfg, '--no-tty', '--exit-after', '60'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const upDone = collect(up, 70_000);
    t.teardown(async () => {
      up.kill('SIGINT');
      await upDone;
    });
    const ready = await cli(['status', '--wait', '30', '--state-dir', dir], 40_000);
    t.equal(ready.code, 0, `up is ready (stderr: ${ready.err.trim()})`);
    const curl = await collect(
      spawn(
        '/usr/bin/curl',
        [
          '-s',
          '-m',
          '10',
          '--socks5-hostname',
          `127.0.0.1:${socksPort}`,
          'http://intranet.contoso.test/',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      20_000,
    );
    t.match(curl.out, /gsa-emu demo: http:\/\/intranet\.contoso\.test\//, 'curl went through');
    const flows = await cli(['flows', '--json', '--state-dir', dir], 20_000);
    const list = JSON.parse(flows.out) as Array<{ capture: string; process: string | null }>;
    const socks = list.filter((f) => f.capture === 'socks');
    t.equal(socks.length, 1, 'one SOCKS flow');
    t.equal(socks[0]?.process, null, 'no process looked up');
  },
);
