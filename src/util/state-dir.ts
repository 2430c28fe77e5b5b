/** Where gsa-emu keeps its state (CA, signing key, logs, the admin port): `--state-dir`,
 *  else `$GSA_EMU_STATE_DIR`, else `~/.gsa-emu`. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function stateDir(flag?: string): string {
  if (flag) return resolve(flag);
  if (process.env.GSA_EMU_STATE_DIR) return resolve(process.env.GSA_EMU_STATE_DIR);
  return join(homedir(), '.gsa-emu');
}
