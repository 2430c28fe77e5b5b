/**
 * A state folder no `up` can make or write says so and names the flag: one under /proc
 * (ENOENT from mkdir, as a read-only file system gives EROFS) printed the raw "ENOENT: no
 * such file or directory, mkdir"; and `status --wait` on a file in place of the folder
 * waited out its whole time for an `up` that cannot run there. Needs `npm run build`.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { cli, skip, tempRoot } from './cli-ux-helpers.js';

const { root } = await tempRoot(t);

t.test(
  'up --state-dir under /proc: GSA_ERR_CONFIG naming the folder and the flag',
  { skip: skip || (process.platform !== 'linux' ? 'needs /proc (Linux)' : false) },
  async (t) => {
    const r = await cli(['up', '--once', '--state-dir', '/proc/gsa-emu-no-such-folder']);
    t.equal(r.code, 1, 'exit 1');
    t.match(r.err, /cannot use the state folder \/proc\/gsa-emu-no-such-folder: ENOENT on mkdir/);
    t.match(r.err, /give --state-dir \(or \$GSA_EMU_STATE_DIR\) a folder you can write/);
  },
);

t.test(
  'a state folder whose parent cannot be made: the same, for up and edge',
  { skip: skip || (process.platform !== 'linux' ? 'needs /proc (Linux)' : false) },
  async (t) => {
    const dir = '/proc/gsa-emu-no-such-folder/state';
    for (const args of [
      ['up', '--once', '--state-dir', dir],
      ['edge', '--port', '0', '--state-dir', dir],
    ]) {
      const r = await cli(args);
      t.equal(r.code, 1, `${args[0]}: exit 1`);
      t.match(
        r.err,
        /^gsa-emu: cannot use the state folder \/proc\/gsa-emu-no-such-folder\/state: ENOENT on mkdir \/proc\/gsa-emu-no-such-folder: give --state-dir/,
        `${args[0]}: names the folder, the level and the flag`,
      );
    }
  },
);

t.test('status --wait on a file in place of the folder fails at once', { skip }, async (t) => {
  const file = join(root, 'not-a-folder');
  await writeFile(file, 'x');
  const started = Date.now();
  const r = await cli(['status', '--state-dir', file, '--wait', '30']);
  t.equal(r.code, 1, 'exit 1');
  t.match(r.err, /is not a directory: no `gsa-emu up` can run there/);
  t.ok(Date.now() - started < 15_000, 'well before its 30 s');
});
