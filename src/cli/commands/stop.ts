/**
 * `gsa-emu stop`: stops the `gsa-emu up` that holds `<state-dir>/up.lock`, as Ctrl+C would
 * (SIGTERM: it closes the proxies, the tunnels and the edge, and removes client.json), and
 * waits until it has exited. For scripts that started `up` in the background, where the
 * shell's `kill %1` would only reach an `npx` wrapper.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { GsaError } from '../../errors.js';
import { pidAlive, readPidLock } from '../../util/pid-lock.js';
import { stateDir } from '../../util/state-dir.js';
import { waitSeconds } from '../common.js';

const POLL_MS = 100;

/** Sends SIGTERM to the `up` holding `<dir>/up.lock`; resolves with its pid once it has exited. */
export async function stopUp(dir: string, seconds: number): Promise<number> {
  const lock = readPidLock(join(dir, 'up.lock'));
  if (lock === null || !pidAlive(lock.pid)) {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `no running "gsa-emu up" holds ${join(dir, 'up.lock')}`,
    );
  }
  try {
    process.kill(lock.pid, 'SIGTERM');
  } catch (err) {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `cannot signal "gsa-emu up" (pid ${lock.pid}): ${(err as Error).message}`,
    );
  }
  const deadline = Date.now() + seconds * 1000;
  while (pidAlive(lock.pid)) {
    if (Date.now() >= deadline) {
      throw new GsaError(
        'GSA_ERR_NOT_STOPPED',
        `"gsa-emu up" (pid ${lock.pid}) did not exit within ${seconds} s of SIGTERM`,
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return lock.pid;
}

export function register(program: Command): void {
  program
    .command('stop')
    .description('stop the running "gsa-emu up" of a state folder and wait until it has exited')
    .option('--state-dir <dir>', 'state folder of the running client (default ~/.gsa-emu)')
    .option('--wait <seconds>', 'how long to wait for it to exit', '15')
    .action(async (o: { stateDir?: string; wait: string }) => {
      const dir = stateDir(o.stateDir);
      const pid = await stopUp(dir, waitSeconds(o.wait));
      process.stdout.write(`stopped "gsa-emu up" (pid ${pid}); logs: ${join(dir, 'logs')}\n`);
    });
}
