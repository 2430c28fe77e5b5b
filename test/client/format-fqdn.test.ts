/**
 * The FQDN column of `gsa-emu flows` and the live table: a name the client qualified for
 * Private DNS shows as the name asked for; other long names are cut in the middle, keeping
 * the domain; `flows --json` keeps the name whole.
 */
import fc from 'fast-check';
import t from 'tap';
import { formatFlows, fqdnCell } from '../../src/client/format.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';

const QUALIFIED = 'fs1.0be01cca-76cb-5e88-9948-8a09e00e8f62.globalsecureaccess.local';

function record(fqdn: string): FlowRecord {
  return {
    flowId: '7',
    connectionId: '4f1c2a9e-0000-4000-8000-000000000001',
    beginTime: Date.UTC(2026, 10, 28, 12, 0, 0),
    endTime: null,
    status: 'Active',
    protocol: 'tcp',
    destinationFqdn: fqdn,
    destinationIp: '6.6.0.1',
    destinationPort: 80,
    sourceIp: '127.0.0.1',
    sourcePort: 50000,
    process: null,
    bytesSent: 0,
    bytesReceived: 0,
    channel: 'private',
    ruleId: 'r1',
    action: 'Tunnel',
    hardening: 'N',
    capture: 'socks',
    reason: 'Private Access rule',
    drops: 0,
  };
}

t.test('a Private DNS name shows as the label asked for', async (t) => {
  t.equal(fqdnCell(QUALIFIED, 26), 'fs1 (Private DNS)');
  t.equal(fqdnCell(QUALIFIED, 32), 'fs1 (Private DNS)');
  // Wide enough for the whole name: the whole name.
  t.equal(fqdnCell(QUALIFIED, 80), QUALIFIED);
  const table = formatFlows([record(QUALIFIED)]);
  t.match(table, /fs1 \(Private DNS\)\s+6\.6\.0\.1\s+80 /);
  t.notMatch(table, /0be01cca/, 'the suffix is not cut mid-way into the column');
  t.match(formatFlows([record(QUALIFIED)], { wide: true }), /fs1 \(Private DNS\)\s+6\.6\.0\.1/);
});

t.test('other long names keep their start and their domain', async (t) => {
  const name = 'a-very-long-host-name-for-tests.sharepoint.com';
  const cell = fqdnCell(name, 26);
  t.equal(cell, 'a-very-long…sharepoint.com');
  // No two labels to keep whole: cut at the middle.
  t.equal(fqdnCell('x'.repeat(40), 11), 'xxxxx…xxxxx');
  t.equal(cell.length, 26);
  // A long label under the Private DNS domain whose short form does not fit either.
  const longLabel = `${'x'.repeat(30)}.abc.globalsecureaccess.local`;
  t.equal(fqdnCell(longLabel, 26).length, 26);
  t.ok(fqdnCell(longLabel, 26).endsWith('ccess.local'));
  t.equal(fqdnCell('intranet.contoso.test', 26), 'intranet.contoso.test');
});

t.test('the cell never exceeds its width, and short names are unchanged', async (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 120 }), fc.integer({ min: 1, max: 60 }), (s, w) => {
      const c = fqdnCell(s, w);
      if (s.length <= w) return c === s;
      return c.length <= w;
    }),
    { numRuns: 500 },
  );
  t.pass('500 random names and widths');
});
