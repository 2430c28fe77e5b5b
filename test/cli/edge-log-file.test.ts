/**
 * `gsa-emu edge --log-file F` where F cannot be written (its folder cannot be made, or F is a
 * folder): a usage error naming the flag, before the edge starts. It used to start and keep
 * its traffic records in memory only, or blame the state folder. Needs `npm run build`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cli, skip, tempRoot } from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

t.test('an unwritable --log-file is a usage error naming it', { skip }, async (t) => {
  const cases: Array<[string, RegExp]> = [[root, /EISDIR/]];
  if (process.platform === 'linux') cases.push(['/proc/gsa-emu-no-such/x.jsonl', /ENOENT/]);
  for (const [file, why] of cases) {
    const dir = newDir();
    const r = await cli(['edge', '--state-dir', dir, '--port', '0', '--log-file', file]);
    t.equal(r.code, 2, `${file}: exit 2`);
    t.match(r.err, new RegExp(`--log-file ${file.replace(/[/.]/g, '\\$&')}: cannot write it`));
    t.match(r.err, why);
    t.notMatch(r.err, /state folder/, 'not blamed on the state folder');
    t.notOk(existsSync(join(dir, 'edge.lock')), 'no lock left behind');
  }
});
