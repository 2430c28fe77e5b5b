/**
 * `up --no-tty` prints one line per new flow. When its stdout is a pipe nobody reads (a
 * test harness that spawned `up` with stdout piped, read the banner and went on), the
 * lines must not wait in the stream's buffer without bound (the process's memory grew with
 * each flow): past 256 KiB waiting they are dropped, and the next line printed says how
 * many; when no flow opens after the reader caught up, that count is said before `up` ends.
 * Here `up` runs in-process with an output stream that does not drain until the test lets
 * it (or whose backlog is simulated), and SOCKS5 flows (to a closed loopback port:
 * bypassed, refused) go through it.
 *
 * Everything listens on 127.0.0.1 and is stopped by the test (the admin API's /shutdown).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import t from 'tap';
import { up } from '../../src/cli/commands/up.js';
import { closedPort, tempDir, until } from '../edge/helpers.js';
import { startUp } from '../util/up-in-process.js';

/** One SOCKS5 CONNECT to 127.0.0.1:port; resolves with the reply code (or -1). */
function socksConnectOnce(socks: number, port: number): Promise<number> {
  return new Promise((resolve) => {
    const s = connect(socks, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let sent = false;
    const done = (code: number): void => {
      s.destroy();
      resolve(code);
    };
    s.setTimeout(10_000, () => done(-1));
    s.on('error', () => done(-1));
    s.on('close', () => done(-1));
    s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!sent && buf.length >= 2) {
        buf = buf.subarray(2);
        sent = true;
        const req = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
        req.writeUInt16BE(port, 8);
        s.write(req);
      }
      if (sent && buf.length >= 2) done(buf[1]!);
    });
  });
}

const UP_OPTIONS = {
  socksPort: '0',
  httpPort: 'off',
  pacPort: 'off',
  adminPort: '0',
  tty: false,
  processLookup: false,
  exitAfter: '50',
} as const;

/** What `up` wrote to client.json once it runs: its SOCKS port and admin API. */
async function running(dir: string): Promise<{ socksPort: number; admin: string; token: string }> {
  let state: { socks: string; admin: string; adminToken: string } | null = null;
  await until(() => {
    try {
      state = JSON.parse(readFileSync(join(dir, 'client.json'), 'utf8'));
      return true;
    } catch {
      return false;
    }
  }, 20_000);
  // Assigned in the callback: TypeScript's narrowing does not see it.
  const got = state as { socks: string; admin: string; adminToken: string } | null;
  if (got === null) throw new Error('up did not start within 20 s');
  const { socks, admin, adminToken } = got;
  return { socksPort: Number(socks.split(':')[1]), admin, token: adminToken };
}

/** POST /shutdown to the admin API; its status code (-1: no answer). */
function shutdown(admin: string, token: string): Promise<number> {
  return new Promise<number>((resolve) => {
    const req = request(`http://${admin}/shutdown`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(-1));
    req.end('{}');
  });
}

t.test('up --no-tty: flow lines to an unread stdout do not pile up in memory', async (t) => {
  const tmp = await tempDir('gsa-soak-');
  t.teardown(tmp.remove);
  // A reader that does not read (until `catchUp`): each write is taken, none completes.
  let held: Array<() => void> = [];
  let text = '';
  const out = new Writable({
    highWaterMark: 16 * 1024,
    write: (chunk: Buffer, _enc, cb) => {
      text += String(chunk);
      held.push(cb);
    },
  });
  const catchUp = (): void => {
    for (const cb of held) cb();
    held = [];
  };
  const drained = (): boolean => {
    catchUp();
    return out.writableLength === 0;
  };
  const run = up({ stateDir: tmp.dir, ...UP_OPTIONS }, out);
  const { socksPort, admin, token } = await running(tmp.dir);
  const closed = await closedPort();
  const afterBanner = out.writableLength;

  const N = 4000;
  const deadline = Date.now() + 30_000;
  let issued = 0;
  const codes = new Map<number, number>();
  const worker = async (): Promise<void> => {
    while (issued < N && Date.now() < deadline) {
      issued++;
      const c = await socksConnectOnce(socksPort, closed);
      codes.set(c, (codes.get(c) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  t.equal(codes.get(5), N, `every CONNECT refused by the destination (0x05): ${[...codes]}`);

  const buffered = out.writableLength - afterBanner;
  t.comment(`${N} flows: ${buffered} bytes of flow lines buffered for an unread stdout`);
  // About 100 bytes a line: unbounded, 4,000 flows leave ~400 KiB waiting.
  t.ok(buffered <= 256 * 1024 + 4096, `flow lines buffered (${buffered} bytes) stay bounded`);

  // The reader catches up: the next flow's line comes after one saying how many were not printed.
  await until(drained, 5000);
  t.equal(await socksConnectOnce(socksPort, closed), 5);
  await until(drained, 5000);
  t.match(text, /\n\(\d+ flow lines not printed: output not read\)\n[^\n]+\n/);

  const status = await shutdown(admin, token);
  t.ok(status >= 200 && status < 300, `shutdown accepted (${status})`);
  await run;
});

t.test('up --no-tty: flow lines dropped last are counted before up ends', async (t) => {
  const tmp = await tempDir('gsa-dropped-');
  t.teardown(tmp.remove);
  const out = new PassThrough();
  // The unread backlog, as `up` sees it: large while `behind`.
  let behind = false;
  Object.defineProperty(out, 'writableLength', { get: () => (behind ? 1024 * 1024 : 0) });
  const u = startUp({ stateDir: tmp.dir, ...UP_OPTIONS }, out);
  const { socksPort, admin, token } = await running(tmp.dir);
  const closed = await closedPort();
  behind = true;
  for (let i = 0; i < 3; i++) t.equal(await socksConnectOnce(socksPort, closed), 5);
  behind = false; // the reader caught up; no flow opens after this
  const status = await shutdown(admin, token);
  t.ok(status >= 200 && status < 300, `shutdown accepted (${status})`);
  await u.run;
  t.match(u.text, /\(3 flow lines not printed: output not read\)/, 'the dropped lines are counted');
});

t.test('up --quiet: the banner and no flow lines; --no-tty prints them', async (t) => {
  const runWith = async (quiet: boolean): Promise<{ text: string; closed: number }> => {
    const tmp = await tempDir('gsa-quiet-');
    t.teardown(tmp.remove);
    const u = startUp({ stateDir: tmp.dir, ...UP_OPTIONS, quiet });
    const { socksPort, admin, token } = await running(tmp.dir);
    const closed = await closedPort();
    for (let i = 0; i < 3; i++) t.equal(await socksConnectOnce(socksPort, closed), 5);
    const status = await shutdown(admin, token);
    t.ok(status >= 200 && status < 300, `shutdown accepted (${status})`);
    await u.run;
    return { text: u.text, closed };
  };
  const loud = await runWith(false);
  t.ok(loud.text.includes(`127.0.0.1:${loud.closed}`), '--no-tty: a line per flow');
  const quiet = await runWith(true);
  t.match(quiet.text, /Ctrl\+C to stop\./, '--quiet: the banner');
  t.notOk(quiet.text.includes(`127.0.0.1:${quiet.closed}`), '--quiet: no flow line');
  t.match(quiet.text, /stopped/, '--quiet: the shutdown lines');
});
