/**
 * A run's state file that this user may not read (0600, another user's: the command of a
 * root `gsa-emu netns` that switched to a CI user) is said to be unreadable, not taken for
 * missing ("no running client found ... start one with gsa-emu up"). As root (which reads
 * every file) the built CLI runs as nobody (65534); otherwise the file is made mode 000.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { adminTarget, writeClientState } from '../../src/client/admin-client.js';
import { mainJs } from '../e2e/tun-cli-helpers.js';
import { collect } from '../util/ts-child.js';
import { stateFile } from './state-file.js';

const root = process.getuid?.() === 0;
const skip =
  process.platform === 'win32'
    ? 'POSIX file modes'
    : root && !existsSync(mainJs)
      ? 'dist/cli/main.js is missing: run `npm run build` first'
      : false;

t.test('an unreadable netns-<pid>.json is not "missing"', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-unreadable-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const file = writeClientState(
    dir,
    stateFile(process.pid, '127.0.0.1:1', { adminToken: 'x' }),
    join(dir, `netns-${process.pid}.json`),
  );
  let message: string;
  if (root) {
    const r = await collect(
      spawn(process.execPath, [mainJs, 'status', '--state-dir', dir], {
        uid: 65534,
        gid: 65534,
        // Not tap's hooks (NODE_OPTIONS --import): they write under .tap/, which nobody may not.
        env: { ...process.env, NODE_OPTIONS: undefined },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      20_000,
    );
    t.equal(r.code, 1, 'exit 1');
    message = r.err;
  } else {
    chmodSync(file, 0o000);
    t.teardown(() => chmodSync(file, 0o600));
    try {
      adminTarget(dir);
      message = 'no error';
    } catch (e) {
      message = (e as Error).message;
    }
  }
  t.match(message, `${file} cannot be read by this user`, 'says the file is unreadable');
  t.match(message, /run this command as that user/);
  t.notMatch(message, /is missing/, 'not "missing"');
});
