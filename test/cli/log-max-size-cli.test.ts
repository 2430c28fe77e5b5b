/**
 * `--log-max-size` on the command line (`gsa-emu up`, `gsa-emu edge`): a bad value is a
 * usage error (exit 2) before anything starts. The in-process checks are in
 * log-rotation.test.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

t.test('a bad --log-max-size exits 2 and says why', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsa-log-max-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const cmd of ['up', 'edge']) {
    const state = join(dir, cmd);
    const r = await collect(
      spawn(process.execPath, [mainJs, cmd, '--state-dir', state, '--log-max-size', '1e3'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      20_000,
    ).catch((e) => ({ code: -1, err: String(e), out: '' }));
    t.equal(r.code, 2, `${cmd}: exit 2`);
    t.match(r.err, /--log-max-size "1e3" is not a number of MiB from 0 to 1048576/, cmd);
    t.notOk(existsSync(join(state, 'logs')), `${cmd}: nothing started`);
  }
});
