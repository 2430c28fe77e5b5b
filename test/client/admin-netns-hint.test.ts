/**
 * A command that cannot reach the admin API from another network namespace than the run
 * that wrote the state file (the command `gsa-emu netns` runs, a container) is told so,
 * instead of "is gsa-emu up running?". The state file records the writer's namespace.
 * Nothing listens: the admin address is a closed port on 127.0.0.1.
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  adminCall,
  adminTarget,
  namespaceName,
  OtherNamespaceError,
  readClientState,
  writeClientState,
} from '../../src/client/admin-client.js';
import { acquirePidLock, ownNetNamespace } from '../../src/util/pid-lock.js';
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
    // client.json: an `up` in another namespace (`ip netns exec ci gsa-emu up --tun`).
    t.match(e?.message, /: run it in that namespace$/);
    t.ok(e instanceof OtherNamespaceError, 'status --wait ends at once on it');
    write(here);
    const same = await call();
    t.match(same?.message, /is "gsa-emu up" running\?/, 'same namespace: the usual hint');
    t.notMatch(same?.message, /namespace/);
  }
  write(undefined);
  const old = await call();
  t.match(old?.message, /is "gsa-emu up" running\?/, 'no namespace recorded: the usual hint');
});

t.test('a gsa-emu netns run: asked from inside it, told to ask from the host', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-admin-ns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await closedPort();
  const pid = process.ppid;
  writeClientState(
    dir,
    { ...clientState(dir, pid, `127.0.0.1:${port}`), netns: 'net:[1]' },
    join(dir, `netns-${pid}.json`),
  );
  const e = await adminCall(adminTarget(dir), 'GET', '/status', undefined, {
    timeoutMs: 2000,
  }).then(
    () => null,
    (e: Error) => e,
  );
  t.ok(e instanceof OtherNamespaceError);
  t.match(
    e?.message,
    /run it from another shell on the host \(the namespace `gsa-emu netns` was started from\)/,
  );
});

t.test('a gsa-emu netns run started in a named namespace: ip netns exec names it', async (t) => {
  // `ip netns exec ci gsa-emu netns -- ...` asked from the host (a third namespace, neither
  // the run's nor ci): not "from another shell on the host ..., not inside the run".
  const dir = await mkdtemp(join(tmpdir(), 'gsa-netns-names-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'ci'), '');
  const there = `net:[${statSync(join(dir, 'ci')).ino}]`;
  const ns = { here: 'net:[1]', there };
  const run = new OtherNamespaceError('why', join(dir, 'netns-42.json'), ns, [dir]);
  t.match(
    run.message,
    /: run it in the namespace `gsa-emu netns` was started from: `ip netns exec ci .*gsa-emu \.\.\.`$/,
  );
  t.notMatch(run.message, /not inside the run/);
  const up = new OtherNamespaceError('why', join(dir, 'client.json'), ns, [dir]);
  t.match(up.message, /: run it in that namespace: `ip netns exec ci .*gsa-emu \.\.\.`$/);
  // Unnamed (the host's namespace): from another shell there.
  const host = new OtherNamespaceError(
    'why',
    join(dir, 'netns-42.json'),
    {
      here: 'net:[1]',
      there: 'net:[2]',
    },
    [dir],
  );
  t.match(host.message, /run it from another shell on the host .*, not inside the run$/);
});

t.test(
  'a gsa-emu netns run asked from inside it: it serves its admin API there too',
  { skip: here === null ? 'no /proc/self/ns/net here' : false },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-admin-ns-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const port = await closedPort();
    const pid = process.ppid;
    // The run's host namespace is another (net:[1]); this process stands in for its command,
    // in the run's namespace (adminAlsoIn). An `up` of the folder on the host (net:[1]) and a
    // newer netns run are live too: the run this command is inside answers.
    writeClientState(dir, {
      ...clientState(dir, process.pid, '127.0.0.1:41003'),
      netns: 'net:[1]',
    });
    writeClientState(
      dir,
      { ...clientState(dir, pid, `127.0.0.1:${port}`), netns: 'net:[1]', adminAlsoIn: [here!] },
      join(dir, `netns-${pid}.json`),
    );
    await new Promise((r) => setTimeout(r, 20));
    writeClientState(
      dir,
      { ...clientState(dir, process.pid, '127.0.0.1:41004'), netns: 'net:[2]' },
      join(dir, `netns-${process.pid}.json`),
    );
    const target = adminTarget(dir);
    t.equal(target.url, `http://127.0.0.1:${port}`, 'the run whose namespace this is');
    t.equal(target.note, undefined, 'no "several runs" note: there is no choice to make');
    const e = await adminCall(target, 'GET', '/status', undefined, { timeoutMs: 2000 }).then(
      () => null,
      (e: Error) => e,
    );
    t.notOk(e instanceof OtherNamespaceError, 'reachable from here: not the other-namespace error');
    t.match(e?.message, /ECONNREFUSED/, 'nothing listens: the plain connection error');
    // The same run without the namespace in its state file: the other-namespace error.
    writeClientState(
      dir,
      { ...clientState(dir, pid, `127.0.0.1:${port}`), netns: 'net:[1]' },
      join(dir, `netns-${pid}.json`),
    );
    const e2 = await adminCall(
      adminTarget(dir, { admin: `127.0.0.1:${port}` }),
      'GET',
      '/status',
      undefined,
      {
        timeoutMs: 2000,
      },
    ).then(
      () => null,
      (e: Error) => e,
    );
    t.ok(e2 instanceof OtherNamespaceError);
    // An `up` started in this namespace (reachable from here: the command started it) is
    // the folder's client again, before the run.
    writeClientState(
      dir,
      { ...clientState(dir, pid, `127.0.0.1:${port}`), netns: 'net:[1]', adminAlsoIn: [here!] },
      join(dir, `netns-${pid}.json`),
    );
    writeClientState(dir, { ...clientState(dir, process.pid, '127.0.0.1:41003') });
    t.equal(adminTarget(dir).url, 'http://127.0.0.1:41003', 'an up in this namespace answers');
  },
);

t.test('an up still starting comes before a netns run of the folder', async (t) => {
  // `up &` then `status --wait` on a folder a `gsa-emu netns` run uses too: the answer is
  // that the up is starting (status --wait waits for it), not the netns run's status.
  const dir = await mkdtemp(join(tmpdir(), 'gsa-admin-ns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pid = process.ppid;
  writeClientState(dir, clientState(dir, pid, '127.0.0.1:41005'), join(dir, `netns-${pid}.json`));
  t.equal(adminTarget(dir).url, 'http://127.0.0.1:41005', 'no up: the netns run');
  // This process stands in for the starting up: it holds up.lock, no client.json yet.
  const release = acquirePidLock(join(dir, 'up.lock'), 'up', 'up', '');
  t.teardown(release);
  t.throws(() => adminTarget(dir), /holds .* but is still starting/);
});

t.test('namespaceName: the name ip netns gives a namespace, by its inode', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-netns-names-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // Stand-ins for /run/netns/<name> (bind mounts of the namespace: their inode is its).
  await writeFile(join(dir, 'ci'), '');
  await writeFile(join(dir, 'other'), '');
  const ino = statSync(join(dir, 'ci')).ino;
  t.equal(namespaceName(`net:[${ino}]`, [join(dir, 'missing'), dir]), 'ci');
  t.equal(namespaceName('net:[1]', [dir]), null, 'no such namespace');
  t.equal(namespaceName('garbage', [dir]), null);
});

t.test(
  'several gsa-emu netns runs: the newest answers, and the note names the others',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-admin-ns-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // Two live writers: the test runner's parent and this process.
    const older = process.ppid;
    writeClientState(
      dir,
      clientState(dir, older, '127.0.0.1:41001'),
      join(dir, `netns-${older}.json`),
    );
    await new Promise((r) => setTimeout(r, 20));
    writeClientState(
      dir,
      clientState(dir, process.pid, '127.0.0.1:41002'),
      join(dir, `netns-${process.pid}.json`),
    );
    const target = adminTarget(dir);
    t.equal(target.url, 'http://127.0.0.1:41002', 'the newest');
    t.match(
      target.note,
      new RegExp(
        `2 "gsa-emu netns" runs use .*: this is the newest, pid ${process.pid}; to ask another, give its --admin: pid ${older} \\(--admin 127\\.0\\.0\\.1:41001\\)`,
      ),
    );
    // With --admin of the other, its token comes from its state file.
    t.equal(adminTarget(dir, { admin: '127.0.0.1:41001' }).token, 'x');
    // One run: no note.
    await rm(join(dir, `netns-${older}.json`));
    t.equal(adminTarget(dir).note, undefined);
  },
);
