/**
 * `gsa-emu status` while an `up` holds the state folder but has not written client.json yet
 * (its edge is down: the state file comes after the client's first try). It must not say
 * "no running client found ... start one with gsa-emu up" (which would fail with
 * GSA_ERR_BUSY), but that the `up` is starting, and how to wait for it.
 *
 * The edge URL points at a closed port on 127.0.0.1; the `up` is stopped by the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../util/free-port.js';
import { collect } from '../util/ts-child.js';
import { until } from '../util/wait.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
const cli = (args: string[]): ChildProcess =>
  spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

t.test('status names the up that is still starting', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-starting-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const edge = `https://127.0.0.1:${await freePort()}`;
  const up = cli([
    'up',
    '--state-dir',
    dir,
    '--no-tty',
    '--socks-port',
    '0',
    '--http-port',
    '0',
    '--edge',
    edge,
  ]);
  const upDone = collect(up, 60_000);
  t.teardown(async () => {
    if (up.exitCode === null) up.kill('SIGTERM');
    await upDone;
  });
  t.ok(await until(() => existsSync(join(dir, 'up.lock')), 20_000), 'up took the folder');
  // Asked before client.json exists (the client waits up to 5 s for the edge first).
  if (existsSync(join(dir, 'client.json'))) {
    t.comment('client.json was already written: this machine was too slow to ask in time');
    return;
  }
  const st = await collect(cli(['status', '--state-dir', dir]), 20_000);
  // The up may write client.json while status starts (a loaded host: status took longer
  // than the client's 5 s wait); status then reports that running client, as it should.
  if (st.code === 0 && existsSync(join(dir, 'client.json'))) {
    t.comment(
      'client.json was written while status started: this machine was too slow to ask in time',
    );
    return;
  }
  t.equal(st.code, 1);
  t.match(st.err, new RegExp(`"gsa-emu up" \\(pid ${up.pid}\\) holds .* but is still starting`));
  t.match(st.err, /status --state-dir .* --wait 30/);
  t.notMatch(st.err, /start one with/);
});
