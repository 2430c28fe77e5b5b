/**
 * `removeDeadNetnsFiles`: what a `gsa-emu netns` run killed with SIGKILL leaves in the state
 * folder (`netns-<pid>.json`, `netns-<pid>.token`) goes when the next run starts; the files
 * of running runs, of this process and any other file stay. `pruneNetnsLogs`: the logs of
 * all but the newest ended runs go, so a reused state folder does not fill up. The
 * start-failure records of runs (`netns-<pid>-failed.json`) stay NETNS_FAILURE_KEEP_MS, so
 * that a run starting next to a failed one does not take its record from the `status
 * --wait` launched with it; readStartFailures reads them with `up`'s. No root needed.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  NETNS_FAILURE_KEEP_MS,
  NETNS_LOG_RUNS,
  pruneNetnsLogs,
  removeDeadNetnsFiles,
} from '../../src/cli/world.js';
import {
  readStartFailures,
  START_FAILURE_FILE,
  writeClientState,
} from '../../src/client/admin-client.js';

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

t.test('the logs of the newest ended runs stay, older ones go', async (t) => {
  const logs = join(dir, 'prune');
  await mkdir(logs);
  const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000);
  // Ended runs, newest first: run i was last written i+1 minutes ago.
  const ended = Array.from({ length: NETNS_LOG_RUNS + 3 }, () => deadPid());
  for (const [i, pid] of ended.entries()) {
    const files = [`netns-${pid}-client.log`, `netns-${pid}-edge-traffic.jsonl`];
    if (i === ended.length - 1) files.push(`netns-${pid}-client.log.1`);
    for (const f of files) {
      await writeFile(join(logs, f), 'x\n');
      await utimes(join(logs, f), at(i + 1), at(i + 1));
    }
  }
  // Running runs, however old their logs: this process and its parent.
  for (const pid of [process.pid, process.ppid]) {
    await writeFile(join(logs, `netns-${pid}-client.log`), 'x\n');
    await utimes(join(logs, `netns-${pid}-client.log`), at(999), at(999));
  }
  await writeFile(join(logs, 'client.log'), 'up\n');
  await utimes(join(logs, 'client.log'), at(999), at(999));
  await writeFile(join(logs, `netns-${ended[0]}-notes.txt`), 'not a log of a run\n');

  const removed = pruneNetnsLogs(logs).sort();
  const old = ended.slice(NETNS_LOG_RUNS);
  t.same(
    removed,
    [
      ...old.flatMap((pid) => [`netns-${pid}-client.log`, `netns-${pid}-edge-traffic.jsonl`]),
      `netns-${old[old.length - 1]}-client.log.1`,
    ].sort(),
    `the ${old.length} oldest ended runs' logs, rotated ones too`,
  );
  const left = new Set(await readdir(logs));
  for (const pid of ended.slice(0, NETNS_LOG_RUNS)) {
    t.ok(left.has(`netns-${pid}-client.log`), `run ${pid} kept`);
  }
  t.ok(left.has(`netns-${process.pid}-client.log`), 'this run kept');
  t.ok(left.has(`netns-${process.ppid}-client.log`), 'a running run kept');
  t.ok(left.has('client.log'), "up's log kept");
  t.ok(left.has(`netns-${ended[0]}-notes.txt`), 'another file kept');
  t.same(pruneNetnsLogs(logs), [], 'nothing more the second time');
  t.same(pruneNetnsLogs(join(dir, 'nope')), [], 'a missing folder: nothing to do');
});

t.test("start-failure records: kept a while after their run, read with up's", async (t) => {
  const d = join(dir, 'failed');
  await mkdir(d);
  const record = async (name: string, pid: number, at: Date, message = 'bad') => {
    await writeFile(join(d, name), `${JSON.stringify({ pid, at: at.toISOString(), message })}\n`);
    await utimes(join(d, name), at, at);
  };
  const old = new Date(Date.now() - NETNS_FAILURE_KEEP_MS - 60_000);
  const fresh = deadPid();
  const stale = deadPid();
  await record(`netns-${fresh}-failed.json`, fresh, new Date(Date.now() - 1000), 'fresh');
  await record(`netns-${stale}-failed.json`, stale, old);
  // Its pid runs (a reused one, or the run still stopping): kept.
  await record(`netns-${process.ppid}-failed.json`, process.ppid, old);
  // This process's pid: an earlier process's record.
  await record(`netns-${process.pid}-failed.json`, process.pid, new Date());
  await record(START_FAILURE_FILE, stale, new Date(Date.now() - 500), 'the up');
  t.same(
    removeDeadNetnsFiles(d).sort(),
    [`netns-${process.pid}-failed.json`, `netns-${stale}-failed.json`].sort(),
    'the old one of an ended run, and the one of this pid',
  );
  // A record whose pid is not the one of its name is not that run's.
  await record(`netns-${stale}-failed.json`, fresh, new Date());
  t.same(
    readStartFailures(d).map((f) => [f.run, f.pid, f.message]),
    [
      ['up', stale, 'the up'],
      ['netns', fresh, 'fresh'],
      ['netns', process.ppid, 'bad'],
    ],
    "up's and each run's, newest first",
  );
  t.same(readStartFailures(join(d, 'nope')), [], 'a missing folder: none');
});
