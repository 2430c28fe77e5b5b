/**
 * `gsa-emu up --http-response-timeout <seconds>` (config key `httpResponseTimeout`): how long
 * the HTTP proxy waits for an upstream's response head before its 504 (default 30 s). A real
 * `up` (dist/cli/main.js) proxies to a loopback upstream that never answers; a bad value is
 * a usage error (exit 2), or GSA_ERR_CONFIG naming the config file's key. The upstream
 * listens on 127.0.0.1 and is closed by the test; every process is bounded in time.
 *
 * Needs `npm run build` (the `up` tests are skipped without dist/cli/main.js).
 */
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { readUpConfig } from '../../src/cli/commands/up.js';
import {
  cli,
  listenUpstream,
  refusesSeconds,
  skip,
  startHttpOnlyUp,
  tempRoot,
  viaHttpProxy,
} from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

t.test('a slow upstream gets 504 after --http-response-timeout', { skip }, async (t) => {
  // Reads the request, never answers.
  let reached = '';
  const upstream = createServer((s) => {
    s.on('error', () => {});
    s.on('data', (d) => {
      reached += d;
    });
  });
  const upPort = await listenUpstream(t, upstream);
  const dir = newDir();
  const { done, http } = await startHttpOnlyUp(t, dir, [
    '--add-host',
    'slow.test=127.0.0.1',
    '--http-response-timeout',
    '1.5',
  ]);
  const t0 = Date.now();
  // viaHttpProxy gives up after 8 s of silence: the default 30 s would be 'timeout'.
  const status = await viaHttpProxy(http, `http://slow.test:${upPort}/`);
  const took = Date.now() - t0;
  t.equal(status, 504, 'Gateway Timeout');
  t.ok(took >= 1400 && took < 6000, `after about 1.5 s (${took} ms)`);
  t.match(reached, /^GET \/ HTTP\/1\.1\r\n/, 'the upstream got the request');
  t.equal((await cli(['stop', '--state-dir', dir])).code, 0, 'gsa-emu stop stops it');
  t.equal((await done).code, 0, 'up exits 0');
});

t.test('a bad --http-response-timeout is a usage error', { skip }, async (t) => {
  const bad = ['0', '-1', 'abc', '', '1e3', '3000000'];
  await refusesSeconds(t, newDir, '--http-response-timeout', bad);
});

t.test('httpResponseTimeout in the config file', async (t) => {
  const file = join(root, 'up.json');
  await writeFile(file, JSON.stringify({ httpResponseTimeout: 2.5 }));
  t.same(readUpConfig(file), { httpResponseTimeout: '2.5' }, 'taken as the flag');
  await writeFile(file, JSON.stringify({ httpResponseTimeout: 'soon' }));
  t.throws(() => readUpConfig(file), {
    code: 'GSA_ERR_CONFIG',
    message: /httpResponseTimeout: "soon" is not a number of seconds/,
  });
});
