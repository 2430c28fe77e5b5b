#!/usr/bin/env node
// Builds the optional TUN addon (native/tun) with node-gyp during `npm install`.
// Never fails the install: where no compiler or headers exist, SOCKS/HTTP mode still
// works and `gsa-emu up --tun` says exactly what is missing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'native', 'tun');
if (process.platform !== 'linux') {
  console.log('gsa-emu: TUN addon skipped (Linux only); SOCKS/HTTP capture works everywhere.');
  process.exit(0);
}
if (!existsSync(join(dir, 'binding.gyp'))) process.exit(0);

function findNodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp;
  }
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {}
  const npmDir = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  const bundled = join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(bundled) ? bundled : null;
}

const gyp = findNodeGyp();
if (!gyp) {
  console.warn('gsa-emu: node-gyp not found; TUN addon not built (SOCKS/HTTP capture still works).');
  process.exit(0);
}
const r = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: dir, stdio: 'inherit' });
if (r.status !== 0) {
  console.warn(
    'gsa-emu: the TUN addon could not be built (needs python3, make and a C compiler);' +
      ' SOCKS/HTTP capture still works. Run `npm rebuild gsa-emu` after installing them.',
  );
}
process.exit(0);
