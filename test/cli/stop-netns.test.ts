/**
 * `gsa-emu stop` where no `up` runs but `gsa-emu netns` runs use the folder: from inside a
 * run (its command, where GSA_EMU_STATE_DIR names the folder) it says that it runs inside
 * that run, which stop does not end; from the host it names the runs. It used to say only
 * that no `up` holds up.lock. The runs are state files of this process (alive); nothing
 * listens and nothing is signalled.
 *
 * And an `up` of the folder whose admin API is in another namespace (stop run by the
 * command of a netns run): SIGTERM, saying so in a few words, not the "run it in that
 * namespace" of the status commands. The `up` is a `sleep 30` child of this test.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stopUp } from '../../src/cli/commands/stop.js';
import { writeClientState } from '../../src/client/admin-client.js';
import { ownNetNamespace } from '../../src/util/pid-lock.js';
import { stateFile } from '../client/state-file.js';
import { closedPort } from '../util/free-port.js';

const here = ownNetNamespace();

async function stopMessage(dir: string): Promise<{ code?: string; message: string }> {
  return stopUp(dir, 1).then(
    () => ({ message: 'stopped something' }),
    (e: Error & { code?: string }) => e,
  );
}

t.test('no up, a netns run of the folder: stop says what ends it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-stop-netns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, `netns-${process.pid}.json`);
  const none = await stopMessage(dir);
  t.equal(none.code, 'GSA_ERR_NOT_RUNNING');
  t.notMatch(none.message, /gsa-emu netns/, 'no run: the plain message');

  writeClientState(dir, stateFile(process.pid, '127.0.0.1:1', { netns: 'net:[1]' }), file);
  const host = await stopMessage(dir);
  t.equal(host.code, 'GSA_ERR_NOT_RUNNING');
  t.match(host.message, /no running "gsa-emu up" holds .*up\.lock/);
  t.match(
    host.message,
    new RegExp(
      `"gsa-emu netns" \\(pid ${process.pid}\\) uses that folder: .* ends when its command exits`,
    ),
    'from the host: the run is named',
  );

  if (here === null) return;
  writeClientState(
    dir,
    stateFile(process.pid, '127.0.0.1:1', { netns: 'net:[1]', adminAlsoIn: [here] }),
    file,
  );
  const inside = await stopMessage(dir);
  t.equal(inside.code, 'GSA_ERR_NOT_RUNNING');
  t.match(
    inside.message,
    new RegExp(`this command runs inside the "gsa-emu netns" run \\(pid ${process.pid}\\)`),
    'from inside the run: said so',
  );
});

t.test(
  'an up whose admin API is in another namespace: SIGTERM, and the reason says that',
  { skip: here === null ? 'no /proc/self/ns/net here' : false },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-stop-otherns-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const up = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.teardown(() => {
      if (up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
    });
    const exited = new Promise((r) => up.once('exit', (_c, sig) => r(sig)));
    await new Promise((r) => up.once('spawn', r));
    const pid = up.pid!;
    writeFileSync(
      join(dir, 'up.lock'),
      `${JSON.stringify({ pid, command: 'up', startedAt: new Date().toISOString() })}\n`,
    );
    const port = await closedPort();
    writeClientState(
      dir,
      stateFile(pid, `127.0.0.1:${port}`, { adminToken: 'x', netns: 'net:[1]' }),
    );
    const r = await stopUp(dir, 5);
    t.match(r, { pid, via: 'SIGTERM', why: /is in another network namespace than this command$/ });
    t.notMatch(r.why, /run it in that namespace/, 'not told to run it elsewhere: it was stopped');
    t.equal(await exited, 'SIGTERM', 'it got SIGTERM');
  },
);
