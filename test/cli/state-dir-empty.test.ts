/**
 * An empty `--state-dir` (a script's `--state-dir "$STATE"` with STATE unset) was taken as
 * no flag: `up` ran in, and `stop`, `status` and `flows` acted on, the user's own
 * ~/.gsa-emu. It is a usage error (exit 2) naming the flag, and nothing is written in the
 * home folder; the `--config` key `stateDir: ""` is GSA_ERR_CONFIG. Needs `npm run build`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { collect } from '../util/ts-child.js';
import { mainJs, skip, tempRoot } from './cli-ux-helpers.js';

const { root } = await tempRoot(t);
const home = join(root, 'home');
await mkdir(home, { recursive: true });

/** The CLI with a home of its own and no $GSA_EMU_STATE_DIR: the default is home/.gsa-emu. */
function cliAt(args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.GSA_EMU_STATE_DIR;
  return collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env }),
    20_000,
  );
}

const commands: string[][] = [
  ['up', '--once', '--socks-port', '0', '--http-port', '0', '--no-tty', '--state-dir', ''],
  ['stop', '--state-dir', ''],
  ['status', '--state-dir', ''],
  ['flows', '--state-dir', ''],
];

for (const args of commands) {
  t.test(`${args[0]} --state-dir "": usage error, not ~/.gsa-emu`, { skip }, async (t) => {
    const r = await cliAt(args);
    t.equal(r.code, 2, 'exit 2 (usage)');
    t.match(r.err, /--state-dir is empty/);
    t.notMatch(r.err, /\.gsa-emu\/(up\.lock|client\.json)/, 'does not name the default folder');
    t.notOk(existsSync(join(home, '.gsa-emu')), 'nothing made in the home folder');
  });
}

t.test('--config key stateDir "": GSA_ERR_CONFIG naming the key', { skip }, async (t) => {
  const file = join(root, 'empty-state-dir.json');
  await writeFile(file, JSON.stringify({ stateDir: '', socksPort: 0, httpPort: 0 }));
  const r = await cliAt(['up', '--once', '--no-tty', '--config', file]);
  t.equal(r.code, 1, 'exit 1');
  t.match(r.err, /stateDir: is empty/);
  t.notOk(existsSync(join(home, '.gsa-emu', 'device-id')), 'no state made in the home folder');
});
