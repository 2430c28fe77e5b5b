/**
 * `--platform <name>`: a name that is no built-in platform and no file is a usage error
 * (exit 2) on the command line, and a configuration error (exit 1) in a --config file.
 * Needs `npm run build` (skipped without dist/cli/main.js).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { cli, skip, tempRoot, upOnce } from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

// `--platform linux` exited 1 (GSA_ERR_CONFIG), as a bad file does, while every other bad
// flag value is a usage error (docs/usage.md: exit 2). In a --config file it stays a config
// error.
t.test(
  'an unknown --platform name is a usage error; in --config a config error',
  { skip },
  async (t) => {
    const dir = newDir();
    const runs = await Promise.all([
      cli(['explain', 'news.test', '--platform', 'linux']),
      upOnce(dir, ['--platform', 'linux']),
      cli(['explain', 'news.test', '--platform', 'Windows']),
    ]);
    for (const r of runs.slice(0, 2)) {
      t.equal(r.code, 2, 'exit 2');
      t.match(r.err, /unknown platform "linux" .*built in are android, ios, macos, windows/);
    }
    t.equal(runs[2]!.code, 0, 'a built-in name in any case');
    t.notOk(existsSync(join(dir, 'logs')), 'nothing started');
    const cfg = join(root, 'platform.yaml');
    await writeFile(
      cfg,
      `stateDir: ${JSON.stringify(dir)}\nplatform: linux\nsocksPort: 0\nhttpPort: 0\n`,
    );
    const r = await cli(['up', '--once', '--config', cfg]);
    t.equal(r.code, 1, 'platform: linux in --config: GSA_ERR_CONFIG, exit 1');
    t.match(r.err, /unknown platform "linux"/);
  },
);
