/**
 * `removeDeadNetnsFiles`: what a `gsa-emu netns` run killed with SIGKILL leaves in the state
 * folder (`netns-<pid>.json`, `netns-<pid>.token`) goes when the next run starts; the files
 * of running runs, of this process and any other file stay. No root needed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { removeDeadNetnsFiles } from '../../src/cli/world.js';
import { writeClientState } from '../../src/client/admin-client.js';

const dir = await mkdtemp(join(tmpdir(), 'gsa-netns-dead-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** The pid of a process that has exited (reaped). */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

const state = (pid: number, procStart?: string) => ({
  pid,
  startedAt: new Date().toISOString(),
  admin: '127.0.0.1:1',
  socks: null,
  http: null,
  pac: null,
  edge: 'https://127.0.0.1:2',
  logs: join(dir, 'logs'),
  adminToken: 'x'.repeat(32),
  ...(procStart !== undefined ? { procStart } : {}),
});

t.test('dead runs go, live ones stay', async (t) => {
  const dead = deadPid();
  const tokenOnly = deadPid();
  // The parent of this test runs, but did not write this file: a reused pid.
  const reused = process.ppid;
  writeClientState(dir, state(dead), join(dir, `netns-${dead}.json`));
  await writeFile(join(dir, `netns-${tokenOnly}.token`), 'y\n');
  writeClientState(dir, state(reused, 'not-its-start-id'), join(dir, `netns-${reused}.json`));
  // Running: this process (its own files), the parent (a token being written, no state yet).
  writeClientState(dir, state(process.pid), join(dir, `netns-${process.pid}.json`));
  await writeFile(join(dir, `netns-${process.ppid}.token`), 'z\n');
  await writeFile(join(dir, `netns-${dead}-notes.txt`), 'not a state file\n');
  await writeFile(join(dir, 'client.json'), '{}\n');
  const removed = removeDeadNetnsFiles(dir).sort();
  const expected = [`netns-${dead}.json`, `netns-${dead}.token`, `netns-${tokenOnly}.token`];
  if (process.platform === 'linux') expected.push(`netns-${reused}.json`);
  t.same(removed, expected.sort(), "the dead runs' state and token files");
  const left = (await readdir(dir)).sort();
  t.same(
    left,
    [
      'client.json',
      `netns-${dead}-notes.txt`,
      `netns-${process.pid}.json`,
      `netns-${process.pid}.token`,
      ...(process.platform === 'linux' ? [] : [`netns-${reused}.json`]),
      `netns-${process.ppid}.token`,
    ].sort(),
  );
});

t.test('a missing folder: nothing to do', async (t) => {
  t.same(removeDeadNetnsFiles(join(dir, 'nope')), []);
});
