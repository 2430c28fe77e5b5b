/**
 * `gsa-emu hostnames`: the Hostname acquisition table (admin API GET /hostnames) as the
 * real client's diagnostics show it. The text (order, columns, Y/N, blanks, filters, the
 * empty cases), the API's `tun` field, and the command against in-process clients: one
 * with a table (as TUN capture gives it) and one with proxy capture, which has none.
 * The real TUN run's table is checked in test/e2e/tun-up.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hostnamesText } from '../../src/cli/commands/hostnames.js';
import type { HostnameEntry } from '../../src/client/client.js';
import { adminWorld } from '../client/helpers.js';
import { httpCall } from '../util/http-calls.js';
import { cli, skip } from './cli-ux-helpers.js';

const ROWS: HostnameEntry[] = [
  {
    time: '2026-11-29T10:00:05.000Z',
    fqdn: 'intranet.contoso.test',
    generatedIp: '6.6.0.3',
    acquired: true,
    originalIp: null,
  },
  {
    time: '2026-11-29T10:00:01.000Z',
    fqdn: 'www.example.net',
    generatedIp: null,
    acquired: false,
    originalIp: '203.0.113.9',
  },
  {
    time: '2026-11-29T10:00:09.000Z',
    fqdn: 'outlook.office365.com',
    generatedIp: '6.6.0.4',
    acquired: true,
    originalIp: '203.0.113.10',
  },
];

t.test('the table: oldest first, Y/N, blanks for what is missing', async (t) => {
  const out = hostnamesText(ROWS, { limit: 50, tun: true });
  const lines = out.trimEnd().split('\n');
  t.match(lines[0], /^TIME\s+FQDN\s+GENERATED IP\s+ACQUIRED\s+ORIGINAL IP$/);
  t.match(lines[1], /^10:00:01Z\s+www\.example\.net\s+N\s+203\.0\.113\.9$/);
  t.match(lines[2], /^10:00:05Z\s+intranet\.contoso\.test\s+6\.6\.0\.3\s+Y$/);
  t.match(lines[3], /^10:00:09Z\s+outlook\.office365\.com\s+6\.6\.0\.4\s+Y\s+203\.0\.113\.10$/);
  t.equal(lines.length, 4);
  // The columns line up: each row's acquired flag sits under ACQUIRED.
  const col = lines[0]!.indexOf('ACQUIRED');
  for (const l of lines.slice(1)) t.match(l[col], /[YN]/, `aligned: ${l}`);
});

t.test('--limit keeps the newest, --acquired the Y rows, --json the rows whole', async (t) => {
  const last = hostnamesText(ROWS, { limit: 1, tun: true }).trimEnd().split('\n');
  t.equal(last.length, 2);
  t.match(last[1], /outlook\.office365\.com/);
  const acq = hostnamesText(ROWS, { limit: 50, acquired: true, tun: true });
  t.notMatch(acq, /www\.example\.net/);
  t.match(acq, /intranet\.contoso\.test/);
  const json = JSON.parse(hostnamesText(ROWS, { limit: 2, json: true, tun: true }));
  t.same(
    json.map((r: HostnameEntry) => r.fqdn),
    ['intranet.contoso.test', 'outlook.office365.com'],
  );
  t.same(json[0], ROWS[0], 'every field, as the API has it');
});

t.test('empty: says why', async (t) => {
  t.equal(hostnamesText([], { limit: 50, tun: true }), 'no DNS lookups yet\n');
  t.equal(
    hostnamesText([ROWS[1]!], { limit: 50, acquired: true, tun: true }),
    'no acquired names yet\n',
  );
  t.match(
    hostnamesText([], { limit: 50, tun: false }),
    /^no hostname acquisition table: this client captures with its SOCKS5 and HTTP proxies/,
  );
  t.equal(hostnamesText([], { limit: 50, json: true, tun: false }), '[]\n');
});

t.test('the command and GET /hostnames against running clients', { skip }, async (t) => {
  const tun = await adminWorld(t, { hostnames: () => ROWS }, 'gsa-hostnames-');
  const proxy = await adminWorld(t, {}, 'gsa-hostnames-');
  for (const [w, want] of [
    [tun, true],
    [proxy, false],
  ] as const) {
    const r = await httpCall(`${w.base}/hostnames`, 'GET', { headers: w.auth });
    t.equal(r.status, 200);
    t.equal(r.json.tun, want, `GET /hostnames says tun: ${want}`);
  }
  const args = (w: typeof tun) => {
    const file = join(w.dir, 'admin.token');
    writeFileSync(file, w.auth.authorization!.slice('Bearer '.length));
    return ['hostnames', '--admin', w.base.replace(/^http:\/\//, ''), '--admin-token', file];
  };
  const withTable = await cli(args(tun));
  t.equal(withTable.code, 0, withTable.err);
  t.match(withTable.out, /^TIME\s+FQDN/);
  t.match(withTable.out, /intranet\.contoso\.test\s+6\.6\.0\.3\s+Y/);
  const acquiredJson = await cli([...args(tun), '--acquired', '--json']);
  t.equal(acquiredJson.code, 0, acquiredJson.err);
  t.equal(JSON.parse(acquiredJson.out).length, 2);
  const none = await cli(args(proxy));
  t.equal(none.code, 0, none.err);
  t.match(none.out, /^no hostname acquisition table: /);
  const bad = await cli([...args(tun), '--limit', '0']);
  t.equal(bad.code, 2, 'a bad --limit is a usage error');
  t.match(bad.err, /--limit/);
});
