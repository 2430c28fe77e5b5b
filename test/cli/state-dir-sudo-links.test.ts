/**
 * Under `sudo gsa-emu ...` (root, SUDO_UID set), prepareStateDir gives the state folder to
 * the invoking user when "the folder or one above it is theirs" (sudoHandOverTarget). That
 * test stats each ancestor *following symbolic links*, and handOverStateDir's lstat only
 * refuses a link as the *last* component. So a user who may run gsa-emu under sudo makes
 * `~/link -> /etc` and runs `sudo gsa-emu up --state-dir ~/link/sudoers.d`: the ancestor
 * `~` is theirs, the folder (really /etc/sudoers.d, root, 0750) passes checkPrivateDir (root
 * owns it), and root chowns /etc/sudoers.d to the user: root for them.
 *
 * Expected: a folder that is not the user's and that gsa-emu did not create is never given
 * away (decide on the real path, lstat every level, or only chown what this run made).
 * Runs only as root (it needs chown).
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, statSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { prepareStateDir } from '../../src/util/state-dir.js';

const root = typeof process.getuid === 'function' && process.getuid() === 0;

/** `sudo` by uid 4242 (root is the process): SUDO_UID/SUDO_GID for the test's length. */
function asSudoUser(t: Test): void {
  const saved = { uid: process.env.SUDO_UID, gid: process.env.SUDO_GID };
  process.env.SUDO_UID = '4242';
  process.env.SUDO_GID = '4242';
  t.teardown(() => {
    if (saved.uid === undefined) delete process.env.SUDO_UID;
    else process.env.SUDO_UID = saved.uid;
    if (saved.gid === undefined) delete process.env.SUDO_GID;
    else process.env.SUDO_GID = saved.gid;
  });
}

/** A scratch folder others may traverse (removed at the end) with uid 4242's home, `alice`. */
async function aliceHome(t: Test): Promise<{ base: string; home: string }> {
  const base = await mkdtemp(join(tmpdir(), 'gsa-sudo-links-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  chmodSync(base, 0o755);
  const home = join(base, 'alice');
  mkdirSync(home, { mode: 0o700 });
  chownSync(home, 4242, 4242);
  return { base, home };
}

t.test(
  'sudo hand-over does not chown a root folder reached through a symlink in the path',
  { skip: root ? false : 'needs root (simulates sudo: gives folders to uid 4242)' },
  async (t) => {
    const { base, home } = await aliceHome(t);
    // Stands for /etc: root's, with a root-owned folder (stands for /etc/sudoers.d).
    const sys = join(base, 'etc');
    mkdirSync(sys, { mode: 0o755 });
    const victim = join(sys, 'sudoers.d');
    mkdirSync(victim, { mode: 0o750 });
    symlinkSync(sys, join(home, 'link'));

    asSudoUser(t);

    try {
      prepareStateDir(join(home, 'link', 'sudoers.d')).close();
    } catch {
      // Refusing the folder is a fine fix too.
    }
    t.equal(statSync(victim).uid, 0, 'the root folder reached through ~/link stays root');
    t.equal(statSync(sys).uid, 0, 'its parent stays root');
  },
);

t.test(
  "a root folder mounted (or otherwise root-owned) inside the user's home is not given away",
  { skip: root ? false : 'needs root (simulates sudo: gives folders to uid 4242)' },
  async (t) => {
    const { home } = await aliceHome(t);
    const rootDir = join(home, 'mnt');
    mkdirSync(rootDir, { mode: 0o755 });
    asSudoUser(t);
    prepareStateDir(rootDir).close();
    t.equal(lstatSync(rootDir).uid, 0, 'the existing root folder stays root');
    // A state folder made for the user under their home is theirs, with its logs.
    const fresh = join(home, 'state');
    prepareStateDir(fresh).close();
    t.equal(lstatSync(fresh).uid, 4242);
    t.equal(lstatSync(join(fresh, 'logs')).uid, 4242);
  },
);
