/**
 * On a terminal, `up` redraws the banner and the flow table every second. It always
 * printed the last 20 flows, whatever the terminal's size: with the banner (about 25 lines,
 * some wider than a terminal) a redraw on 50 rows scrolled the status line and the tiles
 * off the screen, and a copy into the scrollback, every second. The table now takes the
 * rows the banner leaves (at least 3 flows).
 *
 * Everything listens on 127.0.0.1 and stops with `up`; the demo names resolve to loopback.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import * as upModule from '../../src/cli/commands/up.js';
import { startUp } from '../util/up-in-process.js';

const ROWS = 50;
const COLS = 120;

/** Screen rows the text takes at COLS columns. */
const screenRows = (text: string): number =>
  text.split('\n').reduce((n, l) => n + Math.max(1, Math.ceil(l.length / COLS)), 0);

function viaProxy(proxy: string, url: string): Promise<void> {
  const [host, port] = proxy.split(':');
  return new Promise((resolve) => {
    const req = request({ host, port: Number(port), path: url, headers: { host: 'x' } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', () => resolve());
    req.end();
  });
}

t.test('the redraw fits a 50-row terminal with 25 flows', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-live-table-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = Object.assign(new PassThrough(), { isTTY: true, rows: ROWS, columns: COLS });
  const u = startUp(
    {
      socksPort: 'off',
      httpPort: '0',
      exitAfter: '8',
      processLookup: false,
      stateDir: join(dir, 'state'),
    },
    out,
  );
  await u.waitFor(/HTTP proxy {2}(127\.0\.0\.1:\d+)/, 600);
  const proxy = /HTTP proxy {2}(127\.0\.0\.1:\d+)/.exec(u.text)?.[1];
  t.ok(proxy, 'the banner names the HTTP proxy');
  for (let i = 0; i < 25; i++) await viaProxy(proxy!, `http://intranet.contoso.test/${i}`);
  const before = u.text.length;
  for (let i = 0; i < 200 && !u.text.slice(before).includes('\x1b[2J'); i++)
    await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 200));
  const frames = u.text.split('\x1b[2J\x1b[H');
  const last = frames[frames.length - 1]!;
  t.match(last, /^gsa-emu: Global Secure Access Connected/, 'the status line starts the redraw');
  t.match(last, /intranet\.contoso\.test/, 'flows shown');
  t.ok(screenRows(last) <= ROWS, `the redraw fits ${ROWS} rows (takes ${screenRows(last)})`);
  await u.run;
});

t.test('liveTable: 20 flows at most, 3 at least, all of them without a size', async (t) => {
  const liveTable = (upModule as Record<string, unknown>).liveTable as
    | ((b: string, f: never[], term: { rows?: number; columns?: number }) => string)
    | undefined;
  if (!liveTable) return t.fail('no liveTable');
  const banner = 'x\n'.repeat(10).trimEnd();
  t.equal(liveTable(banner, [], {}).split('\n').length, 1, 'the header alone');
  t.equal(liveTable(banner, [], { rows: 5, columns: 80 }).split('\n').length, 1);
});
