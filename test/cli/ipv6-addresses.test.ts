/**
 * IPv6 ([::1]) listen addresses and targets:
 *
 * - `up --host [::1]`: the bracketed form, as `gsa-emu edge --host` takes it, is ::1 (it was
 *   taken as a non-loopback address).
 * - Offline `explain` of an IPv4-mapped IPv6 destination (`[::ffff:127.77.0.5]:3389`)
 *   classifies the IPv4 host, as the proxies and `explain --running` do (it said "IPv6 is
 *   not acquired").
 * - The edge traffic log's `privateAccessDetails.resolvedDestination` for an IPv6 target is
 *   `[::1]:8766`, which can be split into address and port (it was `::1:8766`).
 *
 * Loopback only; every server and process is closed by the test. Needs `npm run build`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { skipWithoutIpv6 } from '../util/ipv6.js';
import { until } from '../util/wait.js';
import { cli, skip, startHttpOnlyUp, tempRoot, upOnce, viaHttpProxy } from './cli-ux-helpers.js';

const { newDir } = await tempRoot(t);
const skipV6 = skip || (await skipWithoutIpv6());

t.test('up --host [::1] listens on ::1 as edge --host [::1] does', { skip: skipV6 }, async (t) => {
  const r = await upOnce(newDir(), ['--host', '[::1]']);
  t.equal(r.code, 0, `up --host [::1] starts (stderr: ${r.err.trim()})`);
  t.match(r.out, /SOCKS5\s+\[::1\]:\d+/, 'the SOCKS5 proxy listens on [::1]');
});

t.test(
  'offline explain of an IPv4-mapped IPv6 address classifies the IPv4 host',
  { skip },
  async (t) => {
    for (const args of [
      ['[::ffff:127.77.0.5]:3389'],
      ['rdp.contoso-lab.test:3389', '--ip', '::ffff:127.77.0.5'],
    ]) {
      const r = await cli(['explain', '--json', ...args]);
      t.equal(r.code, 0, args.join(' '));
      const e = JSON.parse(r.out) as {
        decision: { action: string; channel: string | null; reason: string };
      };
      t.match(
        e.decision,
        { action: 'tunnel', channel: 'private' },
        `${args.join(' ')}: the RDP segment 127.77.0.0/16 (got: ${e.decision.reason})`,
      );
    }
  },
);

t.test(
  'resolvedDestination of an IPv6 connector target is [addr]:port',
  { skip: skipV6 },
  async (t) => {
    // A server on ::1 in Quick Access's port range (TCP 8000-8999).
    const server = createServer((_q, r) => r.end('v6\n'));
    let port = 0;
    for (let p = 8100 + Math.floor(Math.random() * 800), i = 0; i < 50 && port === 0; i++, p++) {
      port = await new Promise<number>((res) => {
        server.once('error', () => res(0));
        server.listen(p, '::1', () => res(p));
      });
    }
    t.ok(port > 0, 'a port on ::1 in 8000-8999');
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const dir = newDir();
    const { done, http } = await startHttpOnlyUp(t, dir, ['--add-host', 'api.contoso.test=::1']);
    t.equal(await viaHttpProxy(http, `http://api.contoso.test:${port}/`), 200, 'tunneled to ::1');
    const log = join(dir, 'logs', 'edge-traffic.jsonl');
    const record = () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map(
              (l) =>
                JSON.parse(l) as {
                  destinationFQDN: string | null;
                  privateAccessDetails: { resolvedDestination: string | null } | null;
                },
            )
            .find((r) => r.destinationFQDN === 'api.contoso.test')
        : undefined;
    t.ok(await until(() => record() !== undefined, 10_000), 'the flow is in the traffic log');
    t.equal(record()?.privateAccessDetails?.resolvedDestination, `[::1]:${port}`);
    t.equal((await cli(['stop', '--state-dir', dir])).code, 0, 'gsa-emu stop stops it');
    await done;
  },
);
