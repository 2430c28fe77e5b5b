/**
 * `gsa-emu up` and a state folder other users can reach (issue 4 review, laptop mode: "any
 * user"). The folder holds logs naming every destination and keys, and gsa-emu writes files
 * there; so (POSIX; Windows ACLs differ):
 * - a state folder (or its `logs/`) another user owns or that group/others may write is
 *   refused before anything is written there, `up-failed.json` included: the error names
 *   the folder, its owner and mode, and the fix (chmod 700, or another --state-dir);
 * - the state folder is 0700 whichever way it is first made (a successful `up`, or one that
 *   fails on a bad flag);
 * - the logs are 0600 and never written through a symbolic link.
 * Seen before the fix: another user's 0777 folder with `up-failed.json -> victim` made a
 * failing `up` overwrite the victim; logs/client.log was 0644.
 */
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { up } from '../../src/cli/commands/up.js';
import { sink } from '../util/up-in-process.js';

const posix = process.platform !== 'win32';
const isRoot = posix && process.getuid?.() === 0;

async function scratch(t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'gsa-statedir-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return root;
}

/** A fresh directory holding a world-writable would-be state dir and a victim file. */
async function setup(t: Test) {
  const root = await scratch(t);
  const shared = join(root, 'client');
  mkdirSync(shared);
  chmodSync(shared, 0o777);
  const victim = join(root, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  return { shared, victim };
}

async function upError(o: Parameters<typeof up>[0]): Promise<Error | null> {
  try {
    await up({ socksPort: '0', httpPort: '0', once: true, tty: false, ...o }, sink());
    return null;
  } catch (e) {
    return e as Error;
  }
}

t.test('up refuses a world-writable state dir', { skip: !posix }, async (t) => {
  const { shared } = await setup(t);
  const error = await upError({ stateDir: shared });
  t.ok(error, 'up stops with an error naming the state dir');
  t.match((error as Error | null)?.message ?? '', shared);
  t.match(error, { code: 'GSA_ERR_CONFIG' });
  t.match(error?.message, /state folder is writable by group and others \(mode 0777/);
  t.match(error?.message, `chmod 700 ${shared}`, 'the fix');
  t.same(
    readdirSync(shared),
    [],
    'nothing written there (no logs/, no up.lock, no up-failed.json)',
  );
});

t.test(
  'a failed up does not write through a symlink planted in a world-writable state dir',
  {
    skip: !posix,
  },
  async (t) => {
    const { shared, victim } = await setup(t);
    symlinkSync(victim, join(shared, 'up-failed.json'));
    await up({ logLevel: 'bogus', once: true, tty: false, stateDir: shared }, sink()).catch(
      () => {},
    );
    t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink target is untouched');
  },
);

t.test(
  'an up that fails first creates the state dir 0700, as a successful one does',
  {
    skip: !posix,
  },
  async (t) => {
    const root = await scratch(t);
    const dir = join(root, 'new-state');
    const umask = process.umask(0o022);
    t.teardown(() => process.umask(umask));
    await up({ logLevel: 'bogus', once: true, tty: false, stateDir: dir }, sink()).catch(() => {});
    t.equal((statSync(dir).mode & 0o777).toString(8), '700', 'mode 0700');
  },
);

t.test('a successful up: the folders 0700, the logs 0600', { skip: !posix }, async (t) => {
  const root = await scratch(t);
  const dir = join(root, 'state');
  const umask = process.umask(0o022);
  t.teardown(() => process.umask(umask));
  t.equal(await upError({ stateDir: dir, processLookup: false }), null, 'up ran');
  t.equal((statSync(dir).mode & 0o777).toString(8), '700', 'state folder 0700');
  t.equal((statSync(join(dir, 'logs')).mode & 0o777).toString(8), '700', 'logs/ 0700');
  for (const f of ['client.log', 'edge-traffic.jsonl']) {
    t.equal((statSync(join(dir, 'logs', f)).mode & 0o777).toString(8), '600', `logs/${f} 0600`);
  }
});

t.test('an older 0644 client.log is made 0600', { skip: !posix }, async (t) => {
  const root = await scratch(t);
  const dir = join(root, 'state');
  mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'logs', 'client.log'), '', { mode: 0o644 });
  chmodSync(join(dir, 'logs', 'client.log'), 0o644);
  t.equal(await upError({ stateDir: dir, processLookup: false }), null, 'up ran');
  t.equal((statSync(join(dir, 'logs', 'client.log')).mode & 0o777).toString(8), '600');
});

t.test('up refuses a logs/ that group or others may write', { skip: !posix }, async (t) => {
  const root = await scratch(t);
  const dir = join(root, 'state');
  mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  chmodSync(join(dir, 'logs'), 0o777);
  const error = await upError({ stateDir: dir });
  t.match(error, { code: 'GSA_ERR_CONFIG' });
  t.match(error?.message, join(dir, 'logs'), 'names logs/');
  t.match(error?.message, /logs folder is writable by group and others/);
});

t.test(
  'up refuses a logs/ of another user',
  { skip: isRoot ? false : 'needs root (makes a folder of uid 65534)' },
  async (t) => {
    const root = await scratch(t);
    const dir = join(root, 'state');
    mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
    chownSync(join(dir, 'logs'), 65534, 65534);
    const error = await upError({ stateDir: dir });
    t.match(error, { code: 'GSA_ERR_CONFIG' });
    t.match(error?.message, join(dir, 'logs'));
    t.match(error?.message, /belongs to .*uid 65534/);
  },
);

t.test('up does not write its log through a symbolic link', { skip: !posix }, async (t) => {
  const root = await scratch(t);
  const dir = join(root, 'state');
  mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  const victim = join(root, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(dir, 'logs', 'client.log'));
  const error = await upError({ stateDir: dir });
  t.match(error, { code: 'GSA_ERR_CONFIG', message: /symbolic link/ });
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink target is untouched');
});
