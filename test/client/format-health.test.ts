/**
 * The health checks of `gsa-emu status --health`: every check's name is printed whole (the
 * failed ones are named on stderr by the same name), and the details start in one column.
 */
import t from 'tap';
import type { HealthCheck } from '../../src/client/diagnostics.js';
import { formatHealth } from '../../src/client/format.js';

const CHECKS: HealthCheck[] = [
  { name: 'Services running', status: 'pass', detail: 'socks 127.0.0.1:1080' },
  {
    name: 'Forwarding profile of the signed-in tenant',
    status: 'fail',
    detail: 'the profiles are of tenant A, the edge signs in to tenant B',
  },
  { name: 'Tunneling succeeded (Internet Access)', status: 'pass', detail: 'tunnel up' },
];

t.test('no check name is cut, and the details line up', async (t) => {
  const lines = formatHealth(CHECKS).split('\n');
  t.equal(lines.length, CHECKS.length + 1);
  const detailAt = lines[0]!.indexOf('DETAIL');
  CHECKS.forEach((c, i) => {
    const line = lines[i + 1]!;
    t.ok(line.startsWith(c.status.toUpperCase()), line);
    t.ok(line.includes(` ${c.name} `), `whole name in: ${line}`);
    t.equal(line.indexOf(c.detail), detailAt, `detail aligned: ${line}`);
  });
  t.notOk(formatHealth(CHECKS).includes('…'));
});

t.test('short names keep the usual column width', async (t) => {
  const out = formatHealth([{ name: 'Cached token', status: 'pass', detail: 'obtained' }]);
  t.equal(out.split('\n')[1], `PASS  ${'Cached token'.padEnd(38)} obtained`);
});
