/** Where gsa-emu keeps its state (CA, signing key, logs, the admin port): `--state-dir`,
 *  else `$GSA_EMU_STATE_DIR`, else `~/.gsa-emu`. */
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export function stateDir(flag?: string): string {
  if (flag) return resolve(flag);
  if (process.env.GSA_EMU_STATE_DIR) return resolve(process.env.GSA_EMU_STATE_DIR);
  return join(homedir(), '.gsa-emu');
}

/**
 * `mkdir -p`, one level at a time. Node's own recursive mkdir never returns when a level
 * cannot be created and does not exist (v20 on /proc: `--state-dir /proc/x` spun at 100%
 * CPU, deaf to SIGTERM); this throws that level's error (ENOENT, EACCES) instead.
 */
export function makeDirs(path: string, mode?: number): void {
  const missing: string[] = [];
  for (let p = resolve(path); !existsSync(p); p = dirname(p)) {
    missing.push(p);
    if (dirname(p) === p) break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, mode === undefined ? undefined : { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
