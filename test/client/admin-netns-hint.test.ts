/**
 * A command that cannot reach the admin API from another network namespace than the run
 * that wrote the state file (the command `gsa-emu netns` runs, a container) is told so,
 * instead of "is gsa-emu up running?". The state file records the writer's namespace.
 * Nothing listens: the admin address is a closed port on 127.0.0.1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  adminCall,
  adminTarget,
  readClientState,
  writeClientState,
} from '../../src/client/admin-client.js';
import { ownNetNamespace } from '../../src/util/pid-lock.js';
import { closedPort } from '../util/free-port.js';
import { stateFile } from './state-file.js';

const here = ownNetNamespace();

/** A state file of `pid` whose admin API is `admin` (no proxies). */
const clientState = (dir: string, pid: number, admin: string) =>
  stateFile(pid, admin, { logs: dir, adminToken: 'x' });

t.test(
  'the state file records the writer namespace',
  { skip: here === null ? 'no /proc/self/ns/net here' : false },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-admin-ns-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const file = writeClientState(dir, clientState(dir, process.pid, '127.0.0.1:1'));
    const s = readClientState(file);
    t.equal(s !== null && s !== 'garbled' ? s.netns : undefined, here, 'netns is this process');
  },
);

t.test('unreachable from another namespace: the message says so', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-admin-ns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await closedPort();
  const write = (netns: string | undefined) =>
    writeClientState(dir, {
      // Another writer (alive: the test runner): its fields are taken as given.
      ...clientState(dir, process.ppid, `127.0.0.1:${port}`),
      ...(netns !== undefined ? { netns } : {}),
    });
  const call = () =>
    adminCall(adminTarget(dir), 'GET', '/status', undefined, { timeoutMs: 2000 }).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
  if (here !== null) {
    write('net:[1]');
    const e = await call();
    t.equal(e?.code, 'GSA_ERR_ADMIN_UNREACHABLE');
    t.match(e?.message, /another network namespace \(net:\[\d+\]\) than the gsa-emu that wrote/);
    t.match(e?.message, /from another shell on the host/);
    write(here);
    const same = await call();
    t.match(same?.message, /is "gsa-emu up" running\?/, 'same namespace: the usual hint');
    t.notMatch(same?.message, /namespace/);
  }
  write(undefined);
  const old = await call();
  t.match(old?.message, /is "gsa-emu up" running\?/, 'no namespace recorded: the usual hint');
});
