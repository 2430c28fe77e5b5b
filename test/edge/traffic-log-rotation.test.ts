/**
 * The edge's traffic log file is rotated by size (`maxFileBytes`, `--log-max-size`): past
 * the cap it is renamed `<file>.1` (replacing an older one) and a new 0600 file begun; each
 * record goes whole to one file and none is lost across a rotation; 0 never rotates. The
 * in-memory ring is not affected.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startEdge } from '../../src/edge/server.js';
import { type NetworkAccessTraffic, TrafficLog } from '../../src/edge/traffic-log.js';
import { trafficRecord } from './helpers.js';

function rec(i: number): NetworkAccessTraffic {
  return trafficRecord({ transactionId: `tx${String(i).padStart(4, '0')}` });
}

/** One record's line length in the file (every record here has the same). */
async function lineBytes(t: Test): Promise<number> {
  const dir = await tmp(t);
  const file = join(dir, 'one.jsonl');
  const log = new TrafficLog({ file });
  log.append(rec(0));
  await log.close();
  return statSync(file).size;
}

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-log-rot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The transaction ids of a file's lines, each line parsed whole (throws on a split one). */
async function ids(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  if (text !== '' && !text.endsWith('\n')) throw new Error(`${file} ends in a partial line`);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as NetworkAccessTraffic).transactionId);
}

const range = (from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => rec(from + i).transactionId);

t.test('rotates at the cap: whole lines in both files, none lost', async (t) => {
  const L = await lineBytes(t);
  const dir = await tmp(t);
  const file = join(dir, 'logs', 'edge-traffic.jsonl');
  // Ten records fit under the cap, the eleventh does not.
  const cap = Math.floor(10.5 * L);
  const log = new TrafficLog({ file, maxFileBytes: cap, capacity: 100 });
  for (let i = 0; i < 15; i++) log.append(rec(i));
  await log.close();
  const old = await ids(`${file}.1`);
  const cur = await ids(file);
  t.same(old, range(0, 10), 'the first ten in <file>.1');
  t.same(cur, range(10, 15), 'the rest in the new file');
  t.equal(old.length + cur.length, 15, 'every record, once');
  t.ok(statSync(`${file}.1`).size <= cap, '<file>.1 is within the cap');
  t.equal(log.size, 15, 'the in-memory ring keeps every record');
  t.equal(log.droppedLines, 0);
  t.equal(log.rotateErrors, 0);
  if (process.platform !== 'win32') {
    t.equal(statSync(file).mode & 0o777, 0o600, 'the new file is 0600');
    t.equal(statSync(`${file}.1`).mode & 0o777, 0o600, '<file>.1 stays 0600');
  }
});

t.test('a second rotation replaces <file>.1; no <file>.2', async (t) => {
  const L = await lineBytes(t);
  const dir = await tmp(t);
  const file = join(dir, 'traffic.jsonl');
  const log = new TrafficLog({ file, maxFileBytes: Math.floor(10.5 * L) });
  for (let i = 0; i < 25; i++) log.append(rec(i));
  await log.close();
  t.same(await ids(`${file}.1`), range(10, 20), 'the second ten in <file>.1');
  t.same(await ids(file), range(20, 25));
  t.same(readdirSync(dir).sort(), ['traffic.jsonl', 'traffic.jsonl.1']);
});

t.test('an existing file is counted: appending resumes toward the cap', async (t) => {
  const L = await lineBytes(t);
  const dir = await tmp(t);
  const file = join(dir, 'traffic.jsonl');
  const first = new TrafficLog({ file });
  for (let i = 0; i < 9; i++) first.append(rec(i));
  await first.close();
  const log = new TrafficLog({ file, maxFileBytes: Math.floor(10.5 * L) });
  for (let i = 100; i < 103; i++) log.append(rec(i));
  await log.close();
  t.same(await ids(`${file}.1`), [...range(0, 9), ...range(100, 101)], 'one more fit in it');
  t.same(await ids(file), range(101, 103));
});

t.test('0 (and no option) never rotates', async (t) => {
  const L = await lineBytes(t);
  for (const maxFileBytes of [0, undefined]) {
    const dir = await tmp(t);
    const file = join(dir, 'traffic.jsonl');
    const log = new TrafficLog({ file, ...(maxFileBytes !== undefined ? { maxFileBytes } : {}) });
    for (let i = 0; i < 30; i++) log.append(rec(i));
    await log.close();
    t.same(await ids(file), range(0, 30), `${maxFileBytes}: every record in the one file`);
    t.notOk(existsSync(`${file}.1`), `${maxFileBytes}: no <file>.1`);
    t.equal(statSync(file).size, 30 * L);
  }
});

t.test(
  'a symbolic link put in the log file`s place is not written through',
  {
    skip: process.platform === 'win32' ? 'POSIX symbolic links' : false,
  },
  async (t) => {
    const L = await lineBytes(t);
    const dir = await tmp(t);
    const file = join(dir, 'traffic.jsonl');
    const target = join(dir, 'victim');
    await writeFile(target, 'keep\n');
    const log = new TrafficLog({ file, maxFileBytes: Math.floor(2.5 * L) });
    log.append(rec(0));
    // Once it is open: the file removed, a link to another file in its place.
    await new Promise((r) => setTimeout(r, 50));
    await unlink(file);
    await symlink(target, file);
    for (let i = 1; i < 4; i++) log.append(rec(i));
    await log.close();
    t.equal(await readFile(target, 'utf8'), 'keep\n', 'the link target is untouched');
    t.ok(log.rotateErrors > 0, 'the rotation failed, and is counted');
    t.notOk(existsSync(`${file}.1`), 'the link is not renamed');
    t.equal(log.fileErrors, 0, 'records still go to the file already open');
  },
);

t.test('startEdge passes logMaxBytes to its traffic log', async (t) => {
  const L = await lineBytes(t);
  const dir = await tmp(t);
  const file = join(dir, 'edge-traffic.jsonl');
  const edge = await startEdge({
    stateDir: dir,
    tls: false,
    persistKey: false,
    logFile: file,
    logMaxBytes: Math.floor(10.5 * L),
  });
  for (let i = 0; i < 15; i++) edge.logs.append(rec(i));
  await edge.close({ graceMs: 0 });
  t.same(await ids(`${file}.1`), range(0, 10));
  t.same(await ids(file), range(10, 15));
});
