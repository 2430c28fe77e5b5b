#!/usr/bin/env node
// Builds the optional TUN addon (native/tun) with node-gyp during `npm install`.
// Never fails the install: where no compiler or headers exist, SOCKS/HTTP mode still
// works and `gsa-emu up --tun` says exactly what is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
  console.warn(
    'gsa-emu: node-gyp not found; TUN addon not built (SOCKS/HTTP capture still works).',
  );
  process.exit(0);
}
// Use this Node's own headers when they are installed next to it (distribution packages,
// official tarballs): no download, so the build also works offline.
function localNodeDir() {
  if (process.env.npm_config_nodedir) return null; // the user chose one; node-gyp reads it
  const prefix = join(dirname(process.execPath), '..');
  const header = join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(header) || !existsSync(join(prefix, 'include', 'node', 'common.gypi'))) {
    return null;
  }
  const text = readFileSync(header, 'utf8');
  const v = ['MAJOR', 'MINOR', 'PATCH'].map(
    (k) => new RegExp(`#define NODE_${k}_VERSION (\\d+)`).exec(text)?.[1],
  );
  return `v${v.join('.')}` === process.version ? prefix : null;
}

const args = [gyp, 'rebuild'];
const nodedir = localNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
// node-gyp's output (some 80 lines of `gyp info`) is shown only when the build fails, or
// with GSA_EMU_VERBOSE_BUILD=1.
const verbose = process.env.GSA_EMU_VERBOSE_BUILD === '1';
// The addon is C only, but gyp's Makefile links with the C++ compiler (LINK defaults to
// CXX): link with the C compiler, so gcc (or cc) and make are enough, without g++.
const env = { ...process.env };
if (!env.LINK) env.LINK = env.CC || 'cc';
const r = spawnSync(process.execPath, args, {
  cwd: dir,
  env,
  stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
});
if (r.status === 0) {
  console.log('gsa-emu: TUN addon built (native/tun).');
} else {
  if (!verbose) process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  console.warn(
    'gsa-emu: the TUN addon could not be built (needs python3, make and a C compiler: cc or gcc);' +
      ' SOCKS/HTTP capture still works. Run `npm rebuild gsa-emu` after installing them.',
  );
}
process.exit(0);
