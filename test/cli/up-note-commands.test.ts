/**
 * Commands that `up`'s state line and `status` notes suggest must reach this `up`: with a
 * state folder other than ~/.gsa-emu (`--state-dir "$(mktemp -d)"`, as the README
 * suggests) they carry `--state-dir <dir>`, as the banner's `try:` lines do. Copied as
 * printed, they asked ~/.gsa-emu and failed with "no running client found".
 *
 * Needs `npm run build`.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { skip, tempRoot, upOnce } from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

t.test('the not-onboarded state line names the state folder', { skip }, async (t) => {
  const cc = join(root, 'no-onboard.json');
  await writeFile(cc, JSON.stringify({ EnableGSA: 2, SilentOnboard: 'no' }));
  const dir = newDir();
  const r = await upOnce(dir, ['--client-config', cc]);
  t.equal(r.code, 0, 'up --once runs');
  const first = r.out.split('\n')[0] ?? '';
  t.match(first, /gsa-emu onboard/, `the state line suggests onboard: ${first}`);
  t.ok(first.includes(`gsa-emu onboard --state-dir ${dir}`), 'with --state-dir <dir>');
});
