/**
 * `gsa-emu stop --wait <s>` on an `up` that does not answer (stopped with SIGSTOP, as a
 * frozen process): stop gives up within --wait, not --wait plus the shutdown request's own
 * 3 s, and says it sent SIGTERM because the admin API did not take the request.
 *
 * The `up` listens on 127.0.0.1 only (ports chosen by the kernel); it is continued and
 * waited for (SIGKILL if it still runs) in the teardown.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stopUp } from '../../src/cli/commands/stop.js';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = !existsSync(mainJs)
  ? 'dist/cli/main.js is missing: run `npm run build` first'
  : process.platform === 'win32'
    ? 'SIGSTOP: not on Windows'
    : false;

t.test('stop --wait 1 on a frozen up: exit within the wait, naming why', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-stop-frozen-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const args = ['up', '--state-dir', dir, '--quiet', '--socks-port', '0', '--http-port', '0'];
  const child = spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const done = collect(child, 40_000);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(killer);
    }
  });
  for (let i = 0; i < 200 && !existsSync(join(dir, 'client.json')); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(existsSync(join(dir, 'client.json')), 'up is ready');
  child.kill('SIGSTOP');
  const started = Date.now();
  const err = await stopUp(dir, 1).catch((e: unknown) => e);
  const took = Date.now() - started;
  t.match(err, {
    code: 'GSA_ERR_NOT_STOPPED',
    message: new RegExp(
      `^"gsa-emu up" \\(pid ${child.pid}\\) did not exit within 1 s of SIGTERM \\(sent as its admin API at 127\\.0\\.0\\.1:\\d+ did not take the request`,
    ),
  });
  t.ok(took < 2500, `gave up within the wait (${took} ms)`);
  child.kill('SIGCONT');
  const r = await done;
  t.ok(r.code === 0 || r.signal === 'SIGTERM', 'the pending SIGTERM stops it once continued');
});
