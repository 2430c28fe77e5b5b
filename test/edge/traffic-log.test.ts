import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { FilterSyntaxError, parseFilter } from '../../src/edge/odata-filter.js';
import { TRAFFIC_FIELDS, TrafficLog } from '../../src/edge/traffic-log.js';
import { ConfigError } from '../../src/errors.js';
import { trafficRecord } from './helpers.js';

const rec = trafficRecord;

t.test('ring is bounded and newest first', async (t) => {
  const log = new TrafficLog({ capacity: 5 });
  for (let i = 0; i < 12; i++) log.append(rec({ transactionId: `tx${i}` }));
  t.equal(log.size, 5);
  t.equal(log.total, 12);
  t.same(
    log.all().map((r) => r.transactionId),
    ['tx7', 'tx8', 'tx9', 'tx10', 'tx11'],
  );
  t.same(
    log.query({ top: 2 }).map((r) => r.transactionId),
    ['tx11', 'tx10'],
  );
  t.same(
    log.query({ where: (r) => r.transactionId.endsWith('8') }).map((r) => r.transactionId),
    ['tx8'],
  );
  await log.close();
});

t.test('file gets one JSON line per record, every field, in order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-edge-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'sub', 'traffic.jsonl');
  const log = new TrafficLog({ file });
  log.append(rec({ transactionId: 'a' }));
  log.append(rec({ transactionId: 'b', action: 'block', operationStatus: 'failure' }));
  await log.close();
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  t.equal(lines.length, 2);
  const parsed = JSON.parse(lines[1]!);
  t.same(Object.keys(parsed), TRAFFIC_FIELDS, 'every field, in the documented order');
  t.equal(parsed.action, 'block');
  // Appending again to the same file keeps the earlier lines.
  const log2 = new TrafficLog({ file });
  log2.append(rec({ transactionId: 'c' }));
  await log2.close();
  t.equal((await readFile(file, 'utf8')).trim().split('\n').length, 3);
});

t.test('waitFor resolves on a future record and times out', async (t) => {
  const log = new TrafficLog();
  const p = log.waitFor((r) => r.transactionId === 'later', 2000);
  setTimeout(() => log.append(rec({ transactionId: 'later' })), 10);
  t.equal((await p).transactionId, 'later');
  await t.rejects(log.waitFor(() => false, 20));
});

t.test('$filter: the supported subset', async (t) => {
  const rs = [
    rec({
      transactionId: '1',
      trafficType: 'internet',
      action: 'block',
      createdDateTime: '2026-05-01T10:00:00Z',
    }),
    rec({
      transactionId: '2',
      trafficType: 'internet',
      action: 'allow',
      createdDateTime: '2026-05-02T10:00:00Z',
    }),
    rec({
      transactionId: '3',
      trafficType: 'private',
      action: 'block',
      createdDateTime: '2026-05-03T10:00:00Z',
    }),
    rec({ transactionId: '4', trafficType: 'microsoft365', action: 'allow', destinationPort: 80 }),
  ];
  const ids = (f: string): string[] => rs.filter(parseFilter(f)).map((r) => r.transactionId);
  t.same(ids("trafficType eq 'internet'"), ['1', '2']);
  t.same(ids("action eq 'block'"), ['1', '3']);
  t.same(ids("trafficType eq 'internet' and action eq 'block'"), ['1']);
  t.same(ids('createdDateTime ge 2026-05-02T00:00:00Z'), ['2', '3']);
  t.same(ids("createdDateTime lt 2026-05-02 and trafficType ne 'private'"), ['1', '4']);
  t.same(ids("(action eq 'allow') and destinationPort eq 80"), ['4']);
  t.same(ids("TRAFFICTYPE eq 'x'".replace('TRAFFICTYPE', 'trafficType')), []);
  t.same(ids("trafficType eq 'INTERNET'"), ['1', '2'], 'values compare case-insensitively');
  t.same(ids("destinationFQDN eq 'it''s.test'"), [], 'quote escape');
  for (const bad of [
    '',
    'trafficType',
    'trafficType eq',
    'trafficType eq internet',
    "trafficType gt 'internet'",
    "nope eq 'x'",
    "trafficType eq 'internet' or action eq 'block'",
    "trafficType eq 'internet' action eq 'block'",
    "trafficType eq 'unterminated",
    'createdDateTime ge yesterday',
    'createdDateTime ge 2026-13-45T99:00:00Z',
    "(trafficType eq 'internet'",
    'destinationPort eq 1.2.3',
    '((((((((((((((((((trafficType eq 1))))))))))))))))))',
    "trafficType eq 'x' $ 1",
  ]) {
    t.throws(() => parseFilter(bad), FilterSyntaxError, JSON.stringify(bad));
  }
  t.ok(new FilterSyntaxError('x') instanceof ConfigError);
});

t.test('$filter fuzz: random input only ever gives FilterSyntaxError or a predicate', async (t) => {
  const r = rec();
  const tokens = fc.constantFrom(
    'trafficType',
    'action',
    'createdDateTime',
    'destinationPort',
    'eq',
    'ne',
    'ge',
    'and',
    'or',
    '(',
    ')',
    "'internet'",
    "'",
    '2026-01-01T00:00:00Z',
    '443',
    ' ',
    '-',
    '\u0000',
  );
  const inputs = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.array(tokens, { maxLength: 25 }).map((a) => a.join(' ')),
  );
  fc.assert(
    fc.property(inputs, (s) => {
      try {
        const p = parseFilter(s);
        return typeof p(r) === 'boolean';
      } catch (e) {
        return e instanceof FilterSyntaxError;
      }
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 fuzzed filters');
});
