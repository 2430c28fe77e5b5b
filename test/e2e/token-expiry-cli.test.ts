/**
 * Token renewal against a running edge, as a CI job tests it: `gsa-emu edge
 * --close-on-token-expiry` and `gsa-emu up --edge ... --token-ttl 3` (and `up
 * --close-on-token-expiry --token-ttl 3 --edge-thread`, the in-process edge on its thread).
 * The edge will close each tunnel session (4419) when its 3 s token expires and says so on
 * the upgrade; the client replaces the session before then with a fresh token, the channel
 * never goes down, and traffic through it still works afterwards. Everything
 * runs on loopback (the edge's hosts map sends the test's name to a server of the test's
 * own); the children are bounded in time and stopped by the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { mainJs, skip, viaHttpProxy } from '../cli/cli-ux-helpers.js';
import { collect } from '../util/ts-child.js';
import { until } from './helpers.js';

// exp is in whole seconds: a token lives TTL-1 to TTL s. 3 leaves a loaded machine 2 s at
// least for a request made right after a renewal.
const TTL = 3;

/** A gsa-emu child, stopped with SIGINT at the end (SIGKILL past its time); its stdout so far. */
function startCli(t: Test, args: string[]): { child: ChildProcess; seen: { out: string } } {
  const child = spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const seen = { out: '' };
  child.stdout!.on('data', (d) => {
    seen.out += d;
  });
  const done = collect(child, 90_000);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    const r = await done;
    if (r.err.trim() !== '') t.comment(`${args[0]} stderr: ${r.err.trim()}`);
  });
  return { child, seen };
}

interface LogLine {
  time: number;
  msg: string;
  channel?: string;
  code?: number;
  status?: number;
}

/** The client log's line for a session replaced before the edge closes it. */
const REPLACED = 'session replaced before the edge closes it (token expiry)';

/** The client log's lines about the internet channel: up, down, session replaced. */
function internetEvents(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter(
      (l) =>
        l.channel === 'internet' &&
        (l.msg === 'channel up' || l.msg === 'channel down' || l.msg === REPLACED),
    );
}

/**
 * Waits for `n` sessions of the internet channel to have been replaced before their
 * token's expiry, and checks that the channel never went down and how long each session
 * lasted.
 */
async function renewed(t: Test, clientLog: string, n: number): Promise<void> {
  const events = await until(
    () => {
      const ev = internetEvents(clientLog);
      return ev.filter((e) => e.msg === REPLACED).length >= n && ev;
    },
    `${n} sessions replaced before their token's expiry`,
    20_000,
  );
  const downs = events.filter((e) => e.msg === 'channel down');
  t.same(downs, [], 'the channel never went down (no close at expiry, no refused reconnect)');
  // Each session is replaced in the last quarter of its token's life (whole seconds, so a
  // token lives TTL-1 to TTL s): the next one a token's life later at most, plus a connect
  // (a token, TLS: slower on a loaded machine).
  const times = [
    events.find((e) => e.msg === 'channel up'),
    ...events.filter((e) => e.msg === REPLACED),
  ]
    .filter((e) => e !== undefined)
    .map((e) => e.time);
  const gap = times.at(-1)! - times.at(-2)!;
  t.ok(gap > 0 && gap <= TTL * 1000 + 2500, `replaced ${gap} ms after the session before`);
}

/**
 * `gsa-emu up` asking for TTL s tokens, with an HTTP proxy only, on the state folder `dir`,
 * then `extra`.
 */
function startUp(t: Test, dir: string, extra: string[]) {
  return startCli(t, [
    'up',
    '--state-dir',
    dir,
    ...['--socks-port', 'off', '--http-port', '0', '--pac-port', 'off', '--admin-port', 'off'],
    ...['--no-tty', '--no-process-lookup', '--exit-after', '60', '--token-ttl', String(TTL)],
    ...extra,
  ]);
}

/** A loopback HTTP origin answering 200 "origin". */
async function origin(t: Test): Promise<number> {
  const s = createServer((_req, res) => res.end('origin'));
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return (s.address() as AddressInfo).port;
}

/** The HTTP proxy address in `up`'s banner, once it is printed. */
async function proxyOf(seen: { out: string }, child: ChildProcess): Promise<string> {
  const m = await until(
    () => {
      if (child.exitCode !== null) throw new Error(`up exited ${child.exitCode}: ${seen.out}`);
      return /Ctrl\+C to stop\./.test(seen.out) && /^HTTP proxy +(\S+)/m.exec(seen.out);
    },
    "up's banner",
    30_000,
  );
  return m[1]!;
}

t.test(
  'edge --close-on-token-expiry, up --edge --token-ttl 3: replaced before expiry, traffic flows',
  { skip },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-token-expiry-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const port = await origin(t);
    const cfg = join(dir, 'edge.yaml');
    writeFileSync(
      cfg,
      [
        'hostsMap:',
        `  www.example.com: 127.0.0.1:${port}`,
        'egress:',
        '  systemResolver: false',
        '  directIp: false',
        '',
      ].join('\n'),
    );
    const edgeDir = join(dir, 'edge');
    const edge = startCli(t, [
      'edge',
      '--port',
      '0',
      '--state-dir',
      edgeDir,
      '--config',
      cfg,
      '--close-on-token-expiry',
      '--max-token-ttl',
      '60',
    ]);
    const url = (
      await until(
        () => {
          if (edge.child.exitCode !== null) throw new Error(`edge exited: ${edge.seen.out}`);
          return /listening on (\S+)[\s\S]*Ctrl\+C to stop\./.exec(edge.seen.out);
        },
        "the edge's banner",
        20_000,
      )
    )[1]!;
    t.match(edge.seen.out, /sessions closed at token expiry \(4419\)/);

    const upDir = join(dir, 'up');
    const up = startUp(t, upDir, [
      ...['--edge', url, '--edge-ca', join(edgeDir, 'ca.pem')],
      // Classified by this address (Default Acquire 0.0.0.0/0 on TCP 80): tunneled, and the
      // edge's hosts map sends it to the origin.
      ...['--add-host', 'www.example.com=93.184.215.14'],
    ]);
    const proxy = await proxyOf(up.seen, up.child);
    for (const n of [1, 2]) {
      await renewed(t, join(upDir, 'logs', 'client.log'), n);
      t.equal(await viaHttpProxy(proxy, 'http://www.example.com/'), 200, `traffic after ${n}`);
    }
  },
);

t.test(
  'up --close-on-token-expiry --token-ttl 3 --edge-thread: the in-process edge does the same',
  { skip },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-token-expiry-thread-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const up = startUp(t, dir, ['--close-on-token-expiry', '--edge-thread']);
    const proxy = await proxyOf(up.seen, up.child);
    for (const n of [1, 2]) {
      await renewed(t, join(dir, 'logs', 'client.log'), n);
      t.equal(await viaHttpProxy(proxy, 'http://news.test/'), 200, `traffic after ${n}`);
    }
  },
);

t.test(
  'up --close-on-token-expiry --no-session-rotation: the session is closed at expiry (4419)',
  { skip },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-token-expiry-norotate-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const up = startUp(t, dir, ['--close-on-token-expiry', '--no-session-rotation']);
    const proxy = await proxyOf(up.seen, up.child);
    const log = join(dir, 'logs', 'client.log');
    // The first close at expiry, and the session after it up again.
    const events = await until(
      () => {
        const ev = internetEvents(log);
        const closed = ev.filter((e) => e.msg === 'channel down' && e.code === 4419);
        return closed.length >= 1 && ev.at(-1)?.msg === 'channel up' && ev;
      },
      'a session closed at token expiry (4419) and reconnected',
      20_000,
    );
    t.same(
      events.filter((e) => e.msg === REPLACED),
      [],
      'no session was replaced before its expiry',
    );
    t.equal(await viaHttpProxy(proxy, 'http://news.test/'), 200, 'traffic after the reconnect');
  },
);
