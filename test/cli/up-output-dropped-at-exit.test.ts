/**
 * `up --no-tty` drops flow lines while more than 256 KiB of its output waits unread, and the
 * next line printed says how many. When no flow opens after the reader caught up, the count
 * must still be said before `up` ends (it was lost: the lines vanished without a word).
 * In process; the output stream's backlog is simulated; everything listens on 127.0.0.1 and
 * `up` is stopped by the test (the admin API's /shutdown).
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

t.test('up --no-tty: flow lines dropped last are counted before up ends', async (t) => {
  const tmp = await tempDir('gsa-dropped-');
  t.teardown(tmp.remove);
  let text = '';
  const out = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      text += String(chunk);
      cb();
    },
  });
  // The unread backlog, as `up` sees it: large while `behind`.
  let behind = false;
  Object.defineProperty(out, 'writableLength', { get: () => (behind ? 1024 * 1024 : 0) });
  const run = up(
    {
      stateDir: tmp.dir,
      socksPort: '0',
      httpPort: 'off',
      pacPort: 'off',
      adminPort: '0',
      tty: false,
      processLookup: false,
      exitAfter: '60',
    },
    out,
  );
  let state: { socks: string; admin: string; adminToken: string } | null = null;
  t.ok(
    await until(() => {
      try {
        state = JSON.parse(readFileSync(join(tmp.dir, 'client.json'), 'utf8'));
        return true;
      } catch {
        return false;
      }
    }, 20_000),
    'up is running',
  );
  const { socks, admin, adminToken } = state!;
  const socksPort = Number(socks.split(':')[1]);
  const closed = await closedPort();

  behind = true;
  for (let i = 0; i < 3; i++) t.equal(await socksConnectOnce(socksPort, closed), 5);
  t.ok(await until(() => true, 200));
  behind = false; // the reader caught up; no flow opens after this

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
  t.match(text, /\(3 flow lines not printed: output not read\)/, 'the dropped lines are counted');
});
