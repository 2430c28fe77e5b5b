/**
 * `npx gsa-emu ...` (what `up`'s banner suggests in a checkout) runs package.json's bin,
 * dist/cli/main.js, as a program: the build must leave it executable. tsc writes new files
 * without the x bit, so a fresh clone's `npm ci` gave "sh: 1: gsa-emu: Permission denied".
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const root = join(import.meta.dirname, '..', '..');
const bin = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin['gsa-emu'] as string;
const file = join(root, bin);

t.test(
  "the package's bin is executable after the build",
  {
    skip:
      process.platform === 'win32'
        ? 'Windows has no executable bit (npm writes .cmd shims)'
        : existsSync(file)
          ? false
          : `${bin} is missing: run \`npm run build\` first`,
  },
  async (t) => {
    t.match(readFileSync(file, 'utf8'), /^#!\/usr\/bin\/env node\n/, 'it starts with a shebang');
    t.doesNotThrow(() => accessSync(file, constants.X_OK), `${bin} is executable`);
  },
);
