/**
 * Shared setup of the e2e tests that run the built CLI with TUN capture
 * (netns-cli.test.ts, tun-up-ci.test.ts): what is missing to run them, a temporary folder,
 * and a pid check.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { tunMissing } from '../tun/helpers.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const mainJs = join(ROOT, 'dist', 'cli', 'main.js');

/** Why these tests cannot run here (root, /dev/net/tun, the addon, curl, dist/), or null. */
export function tunCliMissing(): string | null {
  return (
    tunMissing() ??
    (spawnSync('curl', ['--version']).status === 0 ? null : 'curl is missing') ??
    (existsSync(mainJs) ? null : 'dist/cli/main.js is missing: run `npm run build` first')
  );
}

/** A temporary folder for the test file (removed at its end), and fresh state dirs in it. */
export async function tempRoot(t: Test, prefix: string) {
  const root = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  let n = 0;
  return { root, newDir: () => join(root, `d${++n}`) };
}

/** Whether a process with this pid exists. */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
