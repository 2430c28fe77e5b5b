/** Locating the package root (for data files) and its version, from src/ or dist/. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The folder holding gsa-emu's package.json (works from src/ under tests and from dist/). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'data'))) {
      root = dir;
      return dir;
    }
    dir = dirname(dir);
  }
  throw new Error('gsa-emu: cannot find the package root (package.json next to data/)');
}

export function dataPath(...parts: string[]): string {
  return join(packageRoot(), 'data', ...parts);
}

let version: string | undefined;

/** gsa-emu's version (package.json), read once. */
export function packageVersion(): string {
  if (version !== undefined) return version;
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
    version: string;
  };
  version = pkg.version;
  return version;
}
