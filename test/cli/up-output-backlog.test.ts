/**
 * `up --no-tty` prints one line per new flow. When its stdout is a pipe nobody reads (a
 * test harness that spawned `up` with stdout piped, read the banner and went on), the
 * lines must not wait in the stream's buffer without bound (the process's memory grew with
 * each flow): past 256 KiB waiting they are dropped, and the next line printed says how
 * many. Here `up` runs in-process with an output stream that does not drain until the test lets it, and a few
 * thousand SOCKS5 flows (to a closed loopback port: bypassed, refused) go through it.
 *
 * Everything listens on 127.0.0.1 and is stopped by the test (the admin API's /shutdown).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { up } from '../../src/cli/commands/up.js';
import { closedPort, tempDir, until } from '../edge/helpers.js';

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
  const run = up(
    {
      stateDir: tmp.dir,
      socksPort: '0',
      httpPort: 'off',
      pacPort: 'off',
      adminPort: '0',
      tty: false,
      processLookup: false,
      exitAfter: '50',
    },
    out,
  );
  let state: { socks: string; admin: string; adminToken: string } | null = null;
  await until(() => {
    try {
      state = JSON.parse(readFileSync(join(tmp.dir, 'client.json'), 'utf8'));
      return true;
    } catch {
      return false;
    }
  }, 20_000);
  const { socks, admin, adminToken } = state!;
  const socksPort = Number(socks.split(':')[1]);
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

  const status = await new Promise<number>((resolve) => {
    const req = request(`http://${admin}/shutdown`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(-1));
    req.end('{}');
  });
  t.ok(status >= 200 && status < 300, `shutdown accepted (${status})`);
  await run;
});
