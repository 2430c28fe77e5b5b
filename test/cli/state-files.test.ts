/**
 * `up` and `netns` sharing a state directory: `up` holds `up.lock` (a second `up` is
 * refused with GSA_ERR_BUSY naming the first; a dead owner's lock is taken over), `netns`
 * uses per-run file names, and `gsa-emu status` finds a running netns when no `up` runs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { up } from '../../src/cli/commands/up.js';
import { runFiles, startWorld } from '../../src/cli/world.js';
import { adminUrl, writeClientState } from '../../src/client/admin-client.js';
import { GsaError } from '../../src/errors.js';
import { acquirePidLock } from '../../src/util/pid-lock.js';

const deadPid = (): number => {
  // A pid that certainly existed and is gone: a finished child.
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
};

t.test('file names: up keeps the default names, netns runs are per pid', async (t) => {
  t.same(runFiles('/s', 'up', 42), {
    stateFile: '/s/client.json',
    clientLog: '/s/logs/client.log',
    edgeLog: '/s/logs/edge-traffic.jsonl',
  });
  t.same(runFiles('/s', 'netns', 42), {
    stateFile: '/s/netns-42.json',
    clientLog: '/s/logs/netns-42-client.log',
    edgeLog: '/s/logs/netns-42-edge-traffic.jsonl',
  });
});

t.test('a second up on the same state dir is refused; a netns world runs next to it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-state-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = await startWorld({
    run: 'up',
    stateDir: dir,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
  });
  t.teardown(() => first.stop());
  first.writeState();
  const out = new PassThrough();
  await t.rejects(up({ stateDir: dir, socksPort: '0', httpPort: '0', once: true }, out), {
    code: 'GSA_ERR_BUSY',
    message: new RegExp(
      `state directory .* is in use by \`gsa-emu up\` \\(pid ${process.pid}, .*own --state-dir`,
    ),
  });
  t.ok(existsSync(join(dir, 'client.json')), "the refused run left the first one's state file");

  const ns = await startWorld({
    run: 'netns',
    stateDir: dir,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
  });
  ns.writeState();
  t.equal(ns.stateFile, join(dir, `netns-${process.pid}.json`));
  t.ok(existsSync(join(dir, 'client.json')), 'client.json untouched');
  t.equal(adminUrl(dir), `http://${first.client.addresses.admin}`, 'status finds up first');
  await first.stop();
  t.notOk(existsSync(join(dir, 'client.json')), 'up removed its state file');
  t.notOk(existsSync(join(dir, 'up.lock')), 'and its lock');
  t.equal(adminUrl(dir), `http://${ns.client.addresses.admin}`, 'then the running netns');
  await ns.stop();
  t.notOk(existsSync(ns.stateFile), 'netns removed its state file');
  t.throws(() => adminUrl(dir), { code: 'GSA_ERR_NOT_RUNNING' }, 'nothing runs');
});

t.test('pid lock: an empty lock file is busy for 2 s (being written), then stale', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'x.lock');
  writeFileSync(file, '');
  t.throws(() => acquirePidLock(file, 'up', 'X', 'hint'), { code: 'GSA_ERR_BUSY' }, 'busy');
  t.ok(existsSync(file), 'left alone');
  const old = new Date(Date.now() - 10_000);
  utimesSync(file, old, old);
  const release = acquirePidLock(file, 'up', 'X', 'hint');
  t.match(readFileSync(file, 'utf8'), `"pid":${process.pid}`, 'taken over once it is old');
  release();
});

t.test('pid lock: a dead owner is taken over (onStale runs), a live one refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'x.lock');
  const dead = deadPid();
  writeFileSync(file, JSON.stringify({ pid: dead, command: 'up', startedAt: 'then' }));
  const stale: number[] = [];
  const release = acquirePidLock(file, 'up', 'X', 'hint', (o) => stale.push(o.pid));
  t.same(stale, [dead], 'onStale saw the dead owner');
  const err = (() => {
    try {
      acquirePidLock(file, 'netns', 'X', 'stop it');
    } catch (e) {
      return e as GsaError;
    }
    return null;
  })();
  t.type(err, GsaError);
  t.equal(err?.code, 'GSA_ERR_BUSY');
  t.match(err?.message, /^X is in use by `gsa-emu up` \(pid \d+, since .*\): stop it$/);
  release();
  t.notOk(existsSync(file), 'released');
  // A netns state file of a dead process is ignored by status.
  writeClientState(
    dir,
    {
      pid: dead,
      startedAt: '',
      admin: '127.0.0.1:1',
      socks: null,
      http: null,
      pac: null,
      edge: '',
      logs: '',
    },
    join(dir, `netns-${dead}.json`),
  );
  t.throws(() => adminUrl(dir), { code: 'GSA_ERR_NOT_RUNNING' });
  // A client.json that is not JSON is named as such, not as missing.
  writeFileSync(join(dir, 'client.json'), 'garbage');
  t.throws(() => adminUrl(dir), {
    code: 'GSA_ERR_NOT_RUNNING',
    message: /client\.json is not a client state file \(not JSON\)/,
  });
  t.throws(() => adminUrl(dir, 'foo bar'), { code: 'GSA_ERR_USAGE', message: /--admin "foo bar"/ });
  t.equal(adminUrl(dir, '127.0.0.1:9'), 'http://127.0.0.1:9');
});
