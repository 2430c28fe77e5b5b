/**
 * makeDirs: `mkdir -p` that returns. Node's recursive mkdir never returns where a level can
 * neither be created nor exists (/proc on Linux), which made `up --state-dir /proc/x` spin.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';
import t, { type Test } from 'tap';
import {
  checkPrivateDir,
  makeDirs,
  openPrivateFile,
  stateDir,
  stateDirAccessError,
} from '../../src/util/state-dir.js';

t.test('creates every missing level, with the mode; an existing folder is fine', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-mkdirs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const deep = join(dir, 'a', 'b', 'c');
  makeDirs(deep, 0o700);
  t.ok(statSync(deep).isDirectory());
  t.equal(statSync(deep).mode & 0o777, 0o700 & ~process.umask());
  t.doesNotThrow(() => makeDirs(deep), 'again: nothing to do');
});

t.test(
  'a level that cannot be made is an error at once, not a spin',
  { skip: existsSync('/proc/self') ? false : 'needs /proc (Linux)' },
  async (t) => {
    t.throws(() => makeDirs('/proc/gsa-emu-test/logs'), { code: 'ENOENT' });
    // Through the CLI: `up` says why and exits, within the time.
    const main = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
    if (!existsSync(main)) return;
    const r = spawnSync(
      process.execPath,
      [main, 'up', '--state-dir', '/proc/gsa-emu-test', '--socks-port', '0', '--http-port', '0'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    t.equal(r.status, 1, `up exits 1 (signal ${r.signal})`);
    t.match(
      r.stderr,
      /^gsa-emu: cannot use the state folder \/proc\/gsa-emu-test: ENOENT on mkdir \/proc\/gsa-emu-test/,
    );
  },
);

/*
 * Issue 4 review (laptop mode: "any user"): the state folder is made 0700 and refused when
 * another user owns it or may write it (POSIX); files gsa-emu writes there are 0600 and never
 * written through a symbolic link. The default state folder is absolute even with HOME=.
 */

const posix = process.platform !== 'win32';
const isRoot = posix && process.getuid?.() === 0;

async function scratch(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-statedir-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('HOME= : the default state dir is still an absolute path', async (t) => {
  const saved = { HOME: process.env.HOME, STATE: process.env.GSA_EMU_STATE_DIR };
  t.teardown(() => {
    if (saved.HOME === undefined) delete process.env.HOME;
    else process.env.HOME = saved.HOME;
    if (saved.STATE !== undefined) process.env.GSA_EMU_STATE_DIR = saved.STATE;
  });
  delete process.env.GSA_EMU_STATE_DIR;
  process.env.HOME = '';
  const dir = stateDir();
  t.ok(isAbsolute(dir), `absolute, not "${dir}"`);
  t.equal(dir, join(userInfo().homedir, '.gsa-emu'), "the account's home");
  process.env.HOME = '/somewhere/else';
  t.equal(stateDir(), join('/somewhere/else', '.gsa-emu'), 'HOME wins when set');
});

t.test('makeDirs: levels it makes are 0700 by default', { skip: !posix }, async (t) => {
  const dir = await scratch(t);
  const umask = process.umask(0o022);
  t.teardown(() => process.umask(umask));
  makeDirs(join(dir, 'a', 'b'));
  t.equal((statSync(join(dir, 'a')).mode & 0o777).toString(8), '700');
  t.equal((statSync(join(dir, 'a', 'b')).mode & 0o777).toString(8), '700');
});

t.test(
  'makeDirs / checkPrivateDir refuse a folder others may write',
  { skip: !posix },
  async (t) => {
    const dir = await scratch(t);
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const err = t.throws(() => makeDirs(shared), { code: 'GSA_ERR_CONFIG' }) as Error;
    t.match(err.message, shared, 'names the folder');
    t.match(err.message, /mode 0777/, 'its mode');
    t.match(err.message, new RegExp(`owner ${userInfo().username} \\(uid ${process.getuid!()}\\)`));
    t.match(err.message, `chmod 700 ${shared}`, 'and the fix');
    t.match(err.message, /--state-dir/);
    chmodSync(shared, 0o775);
    t.throws(() => checkPrivateDir(shared, 'state folder'), /writable by its group/);
    chmodSync(shared, 0o755);
    t.doesNotThrow(() => checkPrivateDir(shared, 'state folder'), '0755 of mine: fine');
    // A level under a folder others may write, made by someone else meanwhile: refused too.
    const sticky = join(dir, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    t.throws(() => checkPrivateDir(sticky, 'state folder'), /writable by group and others/);
  },
);

t.test(
  "makeDirs accepts the system's sticky temp folder (a log file's folder), not as a state folder",
  {
    skip:
      posix && statSync('/tmp').uid === 0 && (statSync('/tmp').mode & 0o1000) !== 0
        ? false
        : 'no root-owned sticky /tmp',
  },
  async (t) => {
    t.doesNotThrow(() => makeDirs('/tmp'));
    t.throws(() => checkPrivateDir('/tmp', 'state folder'), { code: 'GSA_ERR_CONFIG' });
  },
);

t.test(
  'a folder of another user is refused, saying whose it is',
  { skip: isRoot ? false : 'needs root (makes a folder of uid 65534)' },
  async (t) => {
    const dir = await scratch(t);
    const theirs = join(dir, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 65534, 65534);
    const err = t.throws(() => makeDirs(theirs), { code: 'GSA_ERR_CONFIG' }) as Error;
    t.match(err.message, theirs);
    t.match(err.message, /belongs to .*uid 65534/);
    t.match(err.message, /--state-dir/);
  },
);

t.test('openPrivateFile: 0600, never through a symbolic link', { skip: !posix }, async (t) => {
  const dir = await scratch(t);
  const umask = process.umask(0o022);
  t.teardown(() => process.umask(umask));
  const f = join(dir, 'client.log');
  closeSync(openPrivateFile(f));
  t.equal((statSync(f).mode & 0o777).toString(8), '600', 'made 0600');
  const old = join(dir, 'old.log');
  writeFileSync(old, 'x\n', { mode: 0o644 });
  closeSync(openPrivateFile(old));
  t.equal((statSync(old).mode & 0o777).toString(8), '600', 'an older 0644 log is made 0600');
  t.equal(readFileSync(old, 'utf8'), 'x\n', 'appended to, not truncated');
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  const link = join(dir, 'link.log');
  symlinkSync(victim, link);
  t.throws(() => openPrivateFile(link), { code: 'GSA_ERR_CONFIG', message: /symbolic link/ });
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the target is untouched');
  t.equal((statSync(victim).mode & 0o777).toString(8), '644', 'and its mode too');
});

t.test(
  'a permission error in the state folder says whose the path is',
  { skip: !posix },
  async (t) => {
    const dir = await scratch(t);
    const e = Object.assign(new Error('EACCES: permission denied'), {
      code: 'EACCES',
      syscall: 'open',
      path: join(dir, 'logs', 'client.log'),
    });
    const err = stateDirAccessError(e, dir);
    t.ok(err, 'explained');
    t.match(err?.message, join(dir, 'logs', 'client.log'));
    t.match(err?.message, new RegExp(`${dir} belongs to .*uid ${process.getuid!()}`));
    t.equal(stateDirAccessError(e, '/elsewhere'), null, 'not a path of the state folder');
    t.equal(stateDirAccessError(new Error('x'), dir), null, 'not a permission error');
  },
);
