/**
 * makeDirs: `mkdir -p` that returns. Node's recursive mkdir never returns where a level can
 * neither be created nor exists (/proc on Linux), which made `up --state-dir /proc/x` spin.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeDirs } from '../../src/util/state-dir.js';

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
    t.match(r.stderr, /^gsa-emu: ENOENT: no such file or directory, mkdir '\/proc\/gsa-emu-test'/);
  },
);
