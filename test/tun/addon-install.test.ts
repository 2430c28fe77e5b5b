/**
 * docs/ARCHITECTURE.md (Capture, TUN): the addon "must build with node-gyp on `npm install`
 * where a compiler exists and must not break the install where none does". The install
 * script (scripts/build-addon.mjs) is run on a copy of the package layout (so the real
 * native/tun/build is never touched) where the build cannot succeed: a source that does not
 * compile, and no compiler, make or python on PATH. Either way it exits 0 and says that
 * SOCKS/HTTP capture still works. And where a C compiler and make exist but no C++ compiler
 * (a `gcc make` image without g++), the addon, C only, builds: gyp's Makefile would link
 * it with g++.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const skip = process.platform !== 'linux' ? 'the addon is built on Linux only' : false;

function packageCopy(t: { teardown(f: () => void): void }, source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gsa-addon-install-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'native', 'tun'), { recursive: true });
  copyFileSync(join(ROOT, 'scripts', 'build-addon.mjs'), join(dir, 'scripts', 'build-addon.mjs'));
  copyFileSync(
    join(ROOT, 'native', 'tun', 'binding.gyp'),
    join(dir, 'native', 'tun', 'binding.gyp'),
  );
  writeFileSync(join(dir, 'native', 'tun', 'tun.c'), source);
  return dir;
}

function install(dir: string, env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [join(dir, 'scripts', 'build-addon.mjs')], {
    cwd: dir,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

t.test('a source that does not compile: the install goes on', { skip }, async (t) => {
  const dir = packageCopy(t, 'this is not C;\n');
  const env = { ...process.env };
  delete env.GSA_EMU_VERBOSE_BUILD;
  const r = install(dir, env);
  t.equal(r.status, 0, 'exit 0');
  t.match(r.stderr, /the TUN addon could not be built .*SOCKS\/HTTP capture still works/);
});

t.test('no compiler, make or python on PATH: the install goes on', { skip }, async (t) => {
  const dir = packageCopy(t, 'int main(void) { return 0; }\n');
  const empty = join(dir, 'empty-path');
  mkdirSync(empty);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: empty };
  delete env.GSA_EMU_VERBOSE_BUILD;
  const r = install(dir, env);
  t.equal(r.status, 0, 'exit 0');
  t.match(`${r.stdout}${r.stderr}`, /SOCKS\/HTTP capture (still )?works/);
});

const PATH_DIRS = (process.env.PATH ?? '').split(delimiter).filter((p) => p !== '');
const onPath = (name: string) => PATH_DIRS.some((p) => existsSync(join(p, name)));
const needs = ['cc', 'make', 'python3'].filter((n) => !onPath(n));
const skipNoCxx = skip || (needs.length > 0 ? `needs ${needs.join(', ')} on PATH` : false);

t.test(
  'a C compiler and make, no C++ compiler: the addon builds',
  { skip: skipNoCxx },
  async (t) => {
    // PATH: every program of this PATH but the C++ compilers (g++, c++, x86_64-linux-gnu-g++,
    // clang++, ...), as symlinks in one folder.
    const dir = packageCopy(t, readFileSync(join(ROOT, 'native', 'tun', 'tun.c'), 'utf8'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const cxx = /(^|-)(g\+\+|c\+\+|clang\+\+)(-[\d.]+)?$/;
    for (const p of PATH_DIRS) {
      let names: string[];
      try {
        names = readdirSync(p);
      } catch {
        continue;
      }
      for (const name of names) {
        if (cxx.test(name) || existsSync(join(bin, name))) continue;
        symlinkSync(join(p, name), join(bin, name));
      }
    }
    t.notOk(existsSync(join(bin, 'g++')), 'no g++ on the PATH of the build');
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin };
    delete env.GSA_EMU_VERBOSE_BUILD;
    delete env.LINK;
    delete env.CXX;
    const r = install(dir, env);
    t.equal(r.status, 0, 'exit 0');
    t.match(r.stdout, /TUN addon built/, `built (${r.stderr.split('\n').slice(-4).join(' | ')})`);
    t.ok(existsSync(join(dir, 'native', 'tun', 'build', 'Release', 'tun.node')), 'tun.node');
  },
);
