/**
 * `gsa-emu status | flows | toggle | explain --running` and a stale `<state-dir>/client.json`,
 * and where the admin API's token comes from.
 *
 * `up` removes client.json at a clean exit only. After SIGKILL, a crash or closing the
 * terminal window on Windows it stays, naming a dead pid and an admin port that is free
 * again, or already another gsa-emu's (another `up` with its own --state-dir, a `netns`
 * run). A client.json whose writer is gone (its pid exited or is another process now) is
 * not used: a running netns of the same folder is, else GSA_ERR_NOT_RUNNING saying it is
 * stale. The other gsa-emu answering on the port refuses the stale file's token (401):
 * that too says "stale".
 *
 * With `--admin host:port` the token is the `--admin-token` file's, else the one of a
 * running state file with that address, else none (401, naming --admin-token).
 *
 * The clients listen on 127.0.0.1 and are closed by the test.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startWorld } from '../../src/cli/world.js';
import {
  adminCall,
  adminTarget,
  adminUrl,
  tokenFileOf,
  writeClientState,
} from '../../src/client/admin-client.js';
import { AdminApiError } from '../../src/errors.js';
import { stateFile } from '../client/state-file.js';

const deadPid = (): number => {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
};

const stateOf = (pid: number, admin: string, adminToken: string | null = null) =>
  stateFile(pid, admin, { adminToken });

async function folder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-stale-state-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A running client (a netns world: no lock) in its own state folder, its state file written. */
async function runningClient(t: Test) {
  const dir = await folder(t);
  const world = await startWorld({
    run: 'netns',
    stateDir: dir,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
    processLookup: false,
    edgeGraceMs: 50,
  });
  t.teardown(() => world.stop());
  world.writeState();
  return { dir, world, admin: world.client.addresses.admin! };
}

t.test('a client.json left by a dead up is not used', async (t) => {
  const dir = await folder(t);
  writeClientState(dir, stateOf(deadPid(), '127.0.0.1:40001'));
  let url: string | null = null;
  let error: unknown = null;
  try {
    url = adminUrl(dir);
  } catch (e) {
    error = e;
  }
  t.not(url, 'http://127.0.0.1:40001', "the dead up's admin address is not used");
  t.match(error, { code: 'GSA_ERR_NOT_RUNNING' }, 'no running client: GSA_ERR_NOT_RUNNING');
  t.match(
    (error as Error).message,
    /client\.json is stale \(the "gsa-emu up" that wrote it, pid \d+, is gone\)/,
  );
});

t.test('a stale client.json does not hide a running netns of the same state dir', async (t) => {
  const dir = await folder(t);
  writeClientState(dir, stateOf(deadPid(), '127.0.0.1:40001'));
  // A running netns (this process stands for it: its pid is alive).
  writeClientState(
    dir,
    stateOf(process.pid, '127.0.0.1:40002'),
    join(dir, `netns-${process.pid}.json`),
  );
  t.equal(adminUrl(dir), 'http://127.0.0.1:40002', "the running netns's admin API is used");
});

t.test('a client.json whose pid now belongs to a process started later is stale', async (t) => {
  const dir = await folder(t);
  // Written "an hour ago" by pid N; the process with pid N now (this one) started since.
  writeClientState(dir, {
    ...stateOf(process.pid, '127.0.0.1:40001'),
    startedAt: new Date(Date.now() - 3600_000).toISOString(),
    procStart: 'another-boot:1',
  });
  t.throws(() => adminUrl(dir), { code: 'GSA_ERR_NOT_RUNNING', message: /stale/ });
});

t.test('the state file and its token file are 0600 and hold the token', async (t) => {
  const { dir, world } = await runningClient(t);
  const state = JSON.parse(readFileSync(world.stateFile, 'utf8')) as { adminToken: string };
  t.equal(state.adminToken, world.client.admin!.token, 'the token in the state file');
  const tokenFile = tokenFileOf(world.stateFile);
  t.equal(tokenFile, join(dir, `netns-${process.pid}.token`));
  t.equal(readFileSync(tokenFile, 'utf8'), `${state.adminToken}\n`, 'and alone in its token file');
  if (process.platform !== 'win32') {
    t.equal(statSync(world.stateFile).mode & 0o777, 0o600);
    t.equal(statSync(tokenFile).mode & 0o777, 0o600);
  }
  t.same(adminTarget(dir), {
    url: `http://${world.client.addresses.admin}`,
    token: state.adminToken,
    from: world.stateFile,
  });
  const st = await adminCall<{ state: string }>(adminTarget(dir), 'GET', '/status');
  t.type(st.state, 'string', 'the commands get in with it');
  await world.stop();
  t.throws(() => readFileSync(tokenFile), { code: 'ENOENT' }, 'removed with the state file');
});

t.test('a stale client.json naming the port of another gsa-emu: 401, "stale"', async (t) => {
  const other = await runningClient(t);
  const dir = await folder(t);
  // Its writer runs (this process stands for it) but the port answers with another token:
  // as a client.json whose pid check passed by accident.
  writeClientState(dir, stateOf(process.pid, other.admin, 'not-the-token'));
  const err = await adminCall(adminTarget(dir), 'GET', '/status').catch((e: unknown) => e);
  t.match(err, {
    code: 'GSA_ERR_NOT_RUNNING',
    message: /refused the token of .*client\.json: that file is stale/,
  });
  const toggled = await adminCall(adminTarget(dir), 'POST', '/toggle', {
    channel: 'internet',
    on: false,
  }).catch((e: unknown) => e);
  t.match(toggled, { code: 'GSA_ERR_NOT_RUNNING' });
  t.equal(other.world.client.tiles.state().internet, true, "the other client's tile is unchanged");
});

t.test('--admin: the token of the state file with that address, or --admin-token', async (t) => {
  const { dir, world, admin } = await runningClient(t);
  const token = world.client.admin!.token!;
  const port = admin.split(':')[1];
  for (const flag of [admin, `http://${admin}`, `http://${admin}/`, `localhost:${port}`]) {
    t.same(
      adminTarget(dir, { admin: flag }),
      {
        url: flag.replace(/\/$/, '').replace(/^(?!http)/, 'http://'),
        token,
        from: world.stateFile,
      },
      `--admin ${flag}: the state file's token`,
    );
  }
  const elsewhere = await folder(t);
  const none = adminTarget(elsewhere, { admin });
  t.same(none, { url: `http://${admin}`, token: null, from: null }, 'no state file: no token');
  const refused = await adminCall(none, 'GET', '/status').catch((e: unknown) => e);
  t.ok(refused instanceof AdminApiError, 'an AdminApiError');
  t.match(refused, {
    code: 'GSA_ERR_ADMIN',
    status: 401,
    apiError: 'unauthorized',
    message: /wants its token: give --admin-token <file>/,
  });
  const file = join(elsewhere, 'token');
  writeFileSync(file, `${token}\n`);
  const given = adminTarget(elsewhere, { admin, adminToken: file });
  t.same(given, { url: `http://${admin}`, token, from: null, tokenFile: file }, '--admin-token');
  t.type((await adminCall<{ state: string }>(given, 'GET', '/status')).state, 'string', 'gets in');
  t.same(
    adminTarget(dir, { adminToken: file }),
    { url: `http://${admin}`, token, from: null, tokenFile: file },
    '--admin-token without --admin: the state file address, that token',
  );
  writeFileSync(file, '\n');
  t.throws(() => adminTarget(elsewhere, { admin, adminToken: file }), {
    code: 'GSA_ERR_USAGE',
    message: /--admin-token ".*" is empty/,
  });
  t.throws(() => adminTarget(elsewhere, { admin, adminToken: join(elsewhere, 'nope') }), {
    code: 'GSA_ERR_USAGE',
    message: /cannot read it/,
  });
});
