/**
 * How the user runs gsa-emu from a shell, for the commands gsa-emu suggests. Here, not in
 * cli/, so client/ (the admin client's and the status notes' hints) may use it too.
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { shellWord } from './shell-word.js';
import { defaultStateDir } from './state-dir.js';

/**
 * How the user runs gsa-emu from a shell: `gsa-emu` when it is on their PATH (installed
 * globally), else `npx gsa-emu` (a checkout, or a project's dependency: npm puts
 * node_modules/.bin on the PATH of `npm start` and `npx`, not on the user's). The commands
 * gsa-emu suggests (`up`'s banner, `status --wait`'s fixes, the status notes, the admin
 * client's "start one with ...") start with it.
 */
export function cliCommand(
  path: string = process.env.PATH ?? '',
  platform: string = process.platform,
): string {
  const names = platform === 'win32' ? ['gsa-emu.cmd', 'gsa-emu.exe'] : ['gsa-emu'];
  for (const d of path.split(platform === 'win32' ? ';' : ':')) {
    if (!d || /[\\/]node_modules[\\/]\.bin[\\/]?$/.test(d)) continue;
    for (const n of names) {
      try {
        accessSync(join(d, n), fsConstants.X_OK);
        return 'gsa-emu';
      } catch {}
    }
  }
  return 'npx gsa-emu';
}

/**
 * ` --state-dir <dir>` for the commands gsa-emu suggests, unless `dir` is `~/.gsa-emu` (a
 * folder from $GSA_EMU_STATE_DIR is named too: the shell they are typed in may not have it).
 */
export function stateDirArg(dir: string, platform: string = process.platform): string {
  if (dir === defaultStateDir()) return '';
  return ` --state-dir ${shellWord(dir, platform)}`;
}
