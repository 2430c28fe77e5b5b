/**
 * `gsa-emu up --http-body-timeout <seconds>` (config key `httpBodyTimeout`): how long the
 * HTTP proxy waits for the next byte of an incomplete request body before its 408 (default
 * 60 s; 0 = never). A real `up` (dist/cli/main.js) proxies to a loopback upstream that waits
 * for the whole body, from a client that sends half of it; a bad value is a usage error
 * (exit 2), or GSA_ERR_CONFIG naming the config file's key. The upstream listens on
 * 127.0.0.1 and is closed by the test; every process and wait is bounded in time.
 *
 * Needs `npm run build` (the `up` tests are skipped without dist/cli/main.js).
 */
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { readUpConfig } from '../../src/cli/commands/up.js';
import { until } from '../util/wait.js';
import {
  cli,
  listenUpstream,
  refusesSeconds,
  skip,
  startHttpOnlyUp,
  tempRoot,
} from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

t.test('a body that stops coming gets 408 after --http-body-timeout', { skip }, async (t) => {
  // Answers once it has the whole body, which never comes.
  let reached = '';
  const upstream = createServer((req, res) => {
    req.on('data', (d: Buffer) => {
      reached += d.toString('latin1');
    });
    req.on('end', () => res.end('whole'));
  });
  const upPort = await listenUpstream(t, upstream);
  const dir = newDir();
  const { done, http } = await startHttpOnlyUp(t, dir, [
    '--add-host',
    'slow.test=127.0.0.1',
    '--http-body-timeout',
    '1.5',
  ]);
  const [host, port] = [http.slice(0, http.lastIndexOf(':')), Number(http.split(':').pop())];
  const s = connect({ host, port });
  t.teardown(() => s.destroy());
  s.on('error', () => {});
  let got = '';
  let closed = false;
  s.on('data', (b: Buffer) => {
    got += b.toString('latin1');
  });
  s.on('close', () => {
    closed = true;
  });
  await once(s, 'connect');
  const t0 = Date.now();
  s.write(
    `POST http://slow.test:${upPort}/ HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 10\r\n\r\nhalf!`,
  );
  t.ok(await until(() => closed, 10_000), 'the proxy closes the connection');
  const took = Date.now() - t0;
  t.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/, '408');
  t.match(got, /no byte from the client for 1\.5 s\n$/, 'says why');
  t.ok(took >= 1400 && took < 6000, `after 1.5 s or so (${took} ms)`);
  t.equal(reached, 'half!', 'the upstream got the part sent');
  t.equal((await cli(['stop', '--state-dir', dir])).code, 0, 'gsa-emu stop stops it');
  t.equal((await done).code, 0, 'up exits 0');
});

t.test('a bad --http-body-timeout is a usage error', { skip }, async (t) => {
  await refusesSeconds(t, newDir, '--http-body-timeout', ['-1', 'abc', '', '1e3', '3000000']);
});

t.test('httpBodyTimeout in the config file', async (t) => {
  const file = join(root, 'up.json');
  await writeFile(file, JSON.stringify({ httpBodyTimeout: 0 }));
  t.same(readUpConfig(file), { httpBodyTimeout: '0' }, 'taken as the flag (0: never)');
  await writeFile(file, JSON.stringify({ httpBodyTimeout: 'soon' }));
  t.throws(() => readUpConfig(file), {
    code: 'GSA_ERR_CONFIG',
    message: /httpBodyTimeout: "soon" is not a number of seconds/,
  });
});
