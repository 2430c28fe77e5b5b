/**
 * The client's "No internet" state (gsa-facts §6): a remote edge on another "machine" (a
 * network namespace joined to the client's by a veth pair) while the client's link is
 * down, so every attempt to reach the edge fails with ENETUNREACH. `up --once` fails
 * saying so; a running `up` shows `No internet` (not `Initializing`: it has no profile
 * yet), a note with the error, and a failing "Internet reachable" check. Once the link is
 * back the client connects by itself (`status --wait`), and the state and check clear.
 * Root and iproute2 only; the namespaces are removed at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { EDGE_SECRET_FILE } from '../../src/cli/edge-secret.js';
import { until } from '../e2e/helpers.js';
import { collect, type Run } from '../util/ts-child.js';
import { mainJs, startEdgeProcess, tempRoot } from './cli-ux-helpers.js';
import { ip, netSkip, twoNamespaces } from './netns-helpers.js';

const { newDir } = await tempRoot(t);

interface Check {
  name: string;
  status: string;
  detail: string;
}

t.test(
  'no route to the edge: No internet, then Connected once the link is back',
  { skip: netSkip },
  async (t) => {
    const tag = `gn${process.pid}`;
    const { a, b } = twoNamespaces(t, `gsaemu-${process.pid}-n`, tag);
    const edgeDir = newDir();
    const { out } = await startEdgeProcess(
      t,
      edgeDir,
      ['--host', '10.112.0.1', '--allow-remote'],
      /Ctrl\+C to stop\./,
      120_000,
      { prefix: ['ip', 'netns', 'exec', a] },
    );
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1] ?? '';
    t.match(url, /^http:\/\/10\.112\.0\.1:\d+$/, 'the edge listens on the other machine');
    const secret = join(edgeDir, EDGE_SECRET_FILE);
    const edgeArgs = ['--edge', url, '--edge-secret', secret];
    const inB = (args: string[], ms = 30_000): Promise<Run> =>
      collect(
        spawn('ip', ['netns', 'exec', b, process.execPath, mainJs, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
        ms,
      );
    const noProxies = ['--socks-port', '0', '--http-port', '0'];

    // The cable is out: the client's machine has no route to the edge's network.
    t.equal(ip('-n', b, 'link', 'set', `${tag}b`, 'down').status, 0, 'link down');

    const once = await inB(['up', '--once', '--state-dir', newDir(), ...noProxies, ...edgeArgs]);
    t.equal(once.code, 1, `up --once fails: ${once.err.trim()}`);
    t.match(
      once.err,
      /--once: not Connected within 5 s \(state No internet: no network toward the edge: .*ENETUNREACH/,
    );

    const dir = newDir();
    const sd = ['--state-dir', dir];
    const up: ChildProcess = spawn(
      'ip',
      [
        'netns',
        'exec',
        b,
        process.execPath,
        mainJs,
        'up',
        '--no-tty',
        '--profile-poll',
        '500',
        ...sd,
        ...noProxies,
        ...edgeArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const upExited = new Promise((r) => up.once('exit', r));
    t.teardown(async () => {
      up.kill('SIGTERM');
      await upExited;
    });
    let upOut = '';
    up.stdout!.on('data', (d) => {
      upOut += d;
    });
    await until(() => upOut.includes('Ctrl+C to stop.'), 'the banner', 60_000);
    t.match(upOut, /^gsa-emu: Global Secure Access No internet \(/, 'the first line says so');

    const status = async () => {
      const r = await inB(['status', '--json', ...sd]);
      t.equal(r.code, 0, `status --json: ${r.err}`);
      return JSON.parse(r.out) as { state: string; notes: string[] };
    };
    const internetCheck = async () => {
      const r = await inB(['status', '--health', '--json', ...sd]);
      const checks = (JSON.parse(r.out) as { health: Check[] }).health;
      return { code: r.code, check: checks.find((c) => c.name === 'Internet reachable') };
    };
    const down = await status();
    t.equal(down.state, 'No internet');
    t.ok(
      down.notes.some((n) =>
        /^no network toward the edge: .*ENETUNREACH.*connects once the network is back$/.test(n),
      ),
      `a note with the error: ${JSON.stringify(down.notes)}`,
    );
    const hDown = await internetCheck();
    t.equal(hDown.code, 1, 'status --health fails');
    t.match(hDown.check, { status: 'fail', detail: /^no network toward the edge: .*ENETUNREACH/ });

    // The cable is back: the client connects by itself.
    t.equal(ip('-n', b, 'link', 'set', `${tag}b`, 'up').status, 0, 'link up');
    const wait = await inB(['status', '--wait', '40', ...sd], 60_000);
    t.equal(wait.code, 0, `Connected once the link is back: ${wait.err.trim()}`);
    const back = await status();
    t.equal(back.state, 'Connected');
    t.notOk(
      back.notes.some((n) => n.startsWith('no network')),
      'the note is gone',
    );
    const hBack = await internetCheck();
    t.match(hBack.check, { status: 'skip' }, 'Internet reachable is not probed again');
  },
);
