/**
 * `up`'s try line for the single-label demo name `fs1` with Private Access off (or the
 * Global Secure Access tile off) said "bypassed: Private Access is off (single-label name:
 * Private DNS, fs1.corp.contoso.test)", but without Private DNS nothing resolves `fs1`: the
 * command fails (SOCKS reply 0x04, "cannot resolve fs1" in the flow table). The line says
 * so; with Private Access on it is unchanged.
 *
 * Everything listens on 127.0.0.1 and stops with `up`; the demo names resolve to loopback.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { startUp } from '../util/up-in-process.js';
import { line } from './banner-helpers.js';

const execFileP = promisify(execFile);
const CURL = '/usr/bin/curl';

async function folder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-up-fs1-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `up` with these client keys, its banner once printed, and its end. */
async function upWithKeys(t: Test, keys: Record<string, unknown>, once: boolean) {
  const dir = await folder(t);
  const cc = join(dir, 'cc.json');
  await writeFile(cc, JSON.stringify(keys));
  const u = startUp({
    socksPort: '0',
    httpPort: '0',
    ...(once ? { once: true } : { exitAfter: '5' }),
    tty: false,
    processLookup: false,
    stateDir: join(dir, 'state'),
    clientConfig: cc,
  });
  await u.waitFor(once ? 'npx gsa-emu' : 'Ctrl+C to stop.', 600);
  return { banner: u.text, run: u.run };
}

const fs1Line = (text: string): string => line(text, 'fs1');

t.test('Private Access off: the fs1 line says the request fails, and it does', async (t) => {
  const { banner, run } = await upWithKeys(
    t,
    { SilentOnboard: true, EnableGSA: 2, EnableGSAPrivateChannel: 1, EnableGSAInternetChannel: 2 },
    false,
  );
  const line = fs1Line(banner);
  t.match(line, /# fails: cannot resolve fs1 \(bypassed: Private Access is off/);
  t.notMatch(banner, /# bypassed: Private Access is off \(single-label/);
  if (existsSync(CURL)) {
    const args = line.replace(/#.*/, '').trim().split(/\s+/).slice(1);
    const failed = await execFileP(CURL, ['-sS', '--max-time', '5', ...args]).then(
      () => false,
      () => true,
    );
    t.ok(failed, 'curl fails, as the line says');
  }
  await run;
});

t.test('Global Secure Access tile off: fails too', async (t) => {
  const { banner, run } = await upWithKeys(
    t,
    { SilentOnboard: true, EnableGSA: 1, EnableGSAPrivateChannel: 2, EnableGSAInternetChannel: 2 },
    true,
  );
  t.match(fs1Line(banner), /# fails: cannot resolve fs1 \(bypassed: Global Secure Access is off/);
  await run;
});

t.test('the default configuration: tunneled through Private DNS, as before', async (t) => {
  const { banner, run } = await upWithKeys(
    t,
    { SilentOnboard: true, EnableGSA: 2, EnableGSAPrivateChannel: 2, EnableGSAInternetChannel: 2 },
    true,
  );
  t.match(
    fs1Line(banner),
    /# Private Access, tunneled \(single-label name: Private DNS, fs1\.corp\.contoso\.test\)$/,
  );
  t.notMatch(banner, /fails: cannot resolve/);
  await run;
});
