/**
 * `gsa-emu netns --token-ttl 2 --close-on-token-expiry -- CMD`: token renewal behind a
 * namespace, as a CI job tests it. The edge closes each tunnel session (4419) when its 2 s
 * token expires, the client renews and reconnects, and the command's requests before and
 * after a renewal both go through. A bad `--token-ttl` is a usage error before anything
 * starts.
 *
 * Needs root, /dev/net/tun, iproute2, curl, the built addon and `npm run build` (dist/);
 * skipped, saying what is missing, otherwise. Nothing leaves loopback or the namespace the
 * run makes; the run is bounded in time.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { collect, type Run } from '../util/ts-child.js';
import { mainJs, tempRoot, tunCliMissing } from './tun-cli-helpers.js';

const missing = tunCliMissing();
if (missing) t.plan(0, `needs root and /dev/net/tun: ${missing}`);

const { newDir } = await tempRoot(t, 'gsa-netns-token-');

const netns = (args: string[], ms = 60_000): Promise<Run> =>
  collect(
    spawn(process.execPath, [mainJs, 'netns', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    ms,
  );

t.test('a bad --token-ttl is a usage error', async (t) => {
  const r = await netns(['--state-dir', newDir(), '--token-ttl', '0', '--', 'true']);
  t.equal(r.code, 2, 'exit 2');
  t.match(r.err, /--token-ttl/);
});

t.test('sessions closed at token expiry are renewed; requests go through', async (t) => {
  const dir = newDir();
  // A flow opened while a session closed at expiry is replaced waits for the new one (up
  // to 3 s: tunnel-planned-reconnect.md); past that a loaded machine's flow would get its
  // channel's fallback (Private Access: a reset), so a refused connection is tried again.
  // What is checked is that the renewed sessions carry the requests.
  const curl = (url: string) =>
    `curl -sS -o /dev/null --max-time 10 --retry 3 --retry-connrefused --retry-delay 1 ${url}`;
  const script = [
    'set -e',
    curl('http://intranet.contoso.test/'),
    curl('http://news.test/'),
    // Two token lives: at least one close at expiry, and a request after the renewal.
    'sleep 5',
    curl('http://intranet.contoso.test/'),
    curl('http://news.test/'),
  ].join('; ');
  const r = await netns([
    '--quiet',
    '--state-dir',
    dir,
    '--token-ttl',
    '2',
    '--close-on-token-expiry',
    '--',
    'sh',
    '-c',
    script,
  ]);
  t.equal(r.code, 0, `every request went through (stderr: ${r.err.trim()})`);
  // The run's own client log: logs/netns-<pid>-client.log.
  const logs = join(dir, 'logs');
  const name = existsSync(logs)
    ? readdirSync(logs).find((f) => /^netns-\d+-client\.log$/.test(f))
    : undefined;
  t.ok(name, `the run's client log is in ${logs}`);
  const log = join(logs, name ?? 'missing');
  const lines = existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; code?: number; channel?: string })
    : [];
  const expired = lines.filter((l) => l.msg === 'channel down' && l.code === 4419);
  t.ok(expired.length >= 1, `sessions closed at token expiry (4419): ${expired.length}`);
  const refused = lines.filter((l) => l.msg === 'channel down' && l.code !== 4419);
  t.same(refused, [], 'no other drop (no refused reconnect)');
});
