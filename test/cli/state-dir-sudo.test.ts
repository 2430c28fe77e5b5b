/**
 * `sudo gsa-emu up` and the invoking user's state folder (issue 4 review, laptop mode: "no
 * root"). Where sudo keeps HOME (`sudo -E`, env_keep, macOS), the default state folder is
 * the user's `~/.gsa-emu`. Before the fix root made it, logs/, the CA and the keys there,
 * all root's, and the user's next plain `up` stopped with a bare `EACCES ... mkdir
 * '~/.gsa-emu/logs'`. Now:
 * - run as root by sudo (SUDO_UID, SUDO_GID) on a folder of that user, what gsa-emu creates
 *   in the state folder is given to the user (so `sudo gsa-emu up --tun` stays usable, and
 *   the user's `gsa-emu status` can read the running client's client.json);
 * - the user's next plain `up` runs;
 * - a non-root `up` on a state folder root still owns (left by an older version) says whose
 *   it is and how to give it back (`sudo chown -R <user> <dir>`), or to use --state-dir.
 *
 * Runs only as root: sudo is simulated (SUDO_UID, SUDO_GID and HOME of uid 65534), and the
 * user's own runs are child processes with uid 65534.
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { up } from '../../src/cli/commands/up.js';
import { writeStartFailure } from '../../src/client/admin-client.js';
import { collect, tsEvalArgs } from '../util/ts-child.js';
import { sink, startUp } from '../util/up-in-process.js';

const isRoot = process.platform !== 'win32' && process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (simulates sudo)';
const UID = 65534;

/** A home of uid 65534 in a scratch folder others can traverse. */
async function userHome(t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'gsa-sudo-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  chmodSync(root, 0o755);
  const home = join(root, 'home');
  mkdirSync(home);
  chownSync(home, UID, UID);
  return home;
}

/** Runs the rest of `t` as `sudo` by uid 65534 with HOME kept. */
function asSudo(t: Test, home: string): void {
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of ['HOME', 'SUDO_UID', 'SUDO_GID', 'SUDO_USER', 'GSA_EMU_STATE_DIR']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  process.env.HOME = home;
  process.env.SUDO_UID = String(UID);
  process.env.SUDO_GID = String(UID);
  process.env.SUDO_USER = 'nobody';
  delete process.env.GSA_EMU_STATE_DIR;
}

/** Every path under `dir` (itself included) with its owner. */
function owners(dir: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    out.push([p, st.uid]);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(dir);
  return out;
}

/** `gsa-emu up --once` as uid 65534 with HOME=home, in a child. */
function upAsUser(home: string, stateDir?: string) {
  const upUrl = new URL('../../src/cli/commands/up.js', import.meta.url).href;
  const script = `
    import { PassThrough } from 'node:stream';
    import { up } from ${JSON.stringify(upUrl)};
    const out = new PassThrough();
    out.resume();
    try {
      await up({ socksPort: '0', httpPort: '0', once: true, tty: false, processLookup: false${
        stateDir ? `, stateDir: ${JSON.stringify(stateDir)}` : ''
      } }, out);
      process.stdout.write('UP OK\\n');
      process.exit(0);
    } catch (e) {
      process.stdout.write('UP FAILED: ' + e.message + '\\n');
      process.exit(1);
    }
  `;
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const k of ['SUDO_UID', 'SUDO_GID', 'SUDO_USER', 'SUDO_COMMAND', 'GSA_EMU_STATE_DIR'])
    delete env[k];
  // Without tap's process-info hook (its spawn wrapper puts it in NODE_OPTIONS): it writes
  // under the checkout, which is not this user's.
  return collect(
    spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ...tsEvalArgs(script)], {
      uid: UID,
      gid: UID,
      cwd: tmpdir(),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    60_000,
  );
}

t.test('sudo with the user HOME: the state dir is not left owned by root', { skip }, async (t) => {
  const home = await userHome(t);
  asSudo(t, home);
  let error: Error | null = null;
  try {
    await up({ socksPort: '0', httpPort: '0', once: true, tty: false }, sink());
  } catch (e) {
    error = e as Error;
  }
  t.equal(error, null, 'sudo up ran (not refused: `sudo gsa-emu up --tun` stays usable)');
  const dir = join(home, '.gsa-emu');
  for (const p of [dir, join(dir, 'logs'), join(dir, 'logs', 'client.log')]) {
    t.equal(statSync(p).uid, UID, `${p} belongs to the sudo user`);
  }
  t.ok(existsSync(join(dir, 'demo-tls')), 'the demo CA was made');
  const roots = owners(dir).filter(([, uid]) => uid !== UID);
  t.same(roots, [], 'nothing in the state folder is left to root (CA, keys, logs)');

  // The user's next plain up (not root): runs.
  const r = await upAsUser(home);
  t.equal(r.code, 0, `the user's plain up runs: ${r.out}${r.err}`);
  t.match(r.out, /UP OK/);
});

t.test(
  "sudo up: the running client's client.json is the user's (gsa-emu status of the user reads it)",
  { skip },
  async (t) => {
    const home = await userHome(t);
    asSudo(t, home);
    const u = startUp({
      socksPort: '0',
      httpPort: '0',
      exitAfter: '3',
      tty: false,
      processLookup: false,
    });
    await u.waitFor('Ctrl+C to stop.');
    const file = join(home, '.gsa-emu', 'client.json');
    let uid = -1;
    for (let i = 0; i < 40 && uid !== UID; i++) {
      await new Promise((r) => setTimeout(r, 25));
      uid = existsSync(file) ? statSync(file).uid : -1;
    }
    t.equal(uid, UID, 'client.json belongs to the sudo user while up runs');
    await u.run;
  },
);

t.test(
  'a state folder root made (an older sudo run): the user is told whose it is and the fix',
  { skip },
  async (t) => {
    const home = await userHome(t);
    const dir = join(home, '.gsa-emu');
    mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
    const r = await upAsUser(home);
    t.equal(r.code, 1, 'up fails');
    t.match(r.out, dir, 'names the state folder');
    t.match(r.out, /belongs to root \(uid 0\)/, 'says whose it is');
    t.match(r.out, `sudo chown -R nobody ${dir}`, 'and how to give it back');
    t.match(r.out, /--state-dir/, 'or to use another one');
    t.notMatch(r.out, /^UP FAILED: EACCES/m, 'not a bare EACCES');
  },
);

t.test(
  "sudo: a start failure's record is the user's, and never written through their link",
  { skip },
  async (t) => {
    const home = await userHome(t);
    asSudo(t, home);
    const dir = join(home, '.gsa-emu');
    const failedUp = () =>
      up({ logLevel: 'bogus', once: true, tty: false }, sink()).then(
        () => 'ran',
        (e: Error) => e.message,
      );
    t.match(await failedUp(), /--log-level "bogus"/, 'up fails');
    t.equal(statSync(join(dir, 'up-failed.json')).uid, UID, "up-failed.json is the user's");
    writeStartFailure(dir, 'no tenant', { run: 'netns' });
    t.equal(
      statSync(join(dir, `netns-${process.pid}-failed.json`)).uid,
      UID,
      "a netns run's record too",
    );

    // The user links the record to a file of root's: root's next failure leaves it alone.
    const victim = join(home, '..', 'victim');
    writeFileSync(victim, 'precious\n', { mode: 0o600 });
    rmSync(join(dir, 'up-failed.json'));
    symlinkSync(victim, join(dir, 'up-failed.json'));
    await failedUp();
    t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the link target is untouched');
    t.equal(statSync(victim).uid, 0, "and still root's");
  },
);
