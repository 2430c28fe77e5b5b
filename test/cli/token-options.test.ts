/**
 * Token lifetime options: `gsa-emu edge --close-on-token-expiry --max-token-ttl <seconds>`
 * (config keys `closeOnTokenExpiry`, `maxTokenTtl`) and `gsa-emu up --token-ttl <seconds>
 * --close-on-token-expiry --no-session-rotation` (config keys `tokenTtl`, `closeOnTokenExpiry`,
 * `sessionRotation`): strict values,
 * usage errors naming the option (or the config key), and a token lifetime the edge refuses
 * stops `up` at once with the edge's words instead of tunnels retrying for ever. Edges and
 * clients run on loopback, as children bounded in time, stopped by the test.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { readEdgeConfig, tokenTtlSeconds } from '../../src/cli/commands/edge.js';
import { readUpConfig, up } from '../../src/cli/commands/up.js';
import { startEdge } from '../../src/edge/server.js';
import { ConfigError } from '../../src/errors.js';
import { cli, skip, startEdgeProcess } from './cli-ux-helpers.js';

const dir = await mkdtemp(join(tmpdir(), 'gsa-token-options-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const RANGE = 'is not a whole number of seconds from 1 to 31536000';

t.test('tokenTtlSeconds: whole seconds from 1 to 365 days, else named', async (t) => {
  t.equal(tokenTtlSeconds('2', '--token-ttl'), 2);
  t.equal(tokenTtlSeconds('31536000', '--max-token-ttl'), 31_536_000);
  for (const v of ['', ' ', '0', '1.5', '-1', '1e3', '0x10', 'Infinity', '31536001', 'abc']) {
    t.throws(
      () => tokenTtlSeconds(v, '--max-token-ttl'),
      { name: 'UsageError', message: `--max-token-ttl "${v}" ${RANGE}` },
      JSON.stringify(v),
    );
  }
});

t.test('edge --config: closeOnTokenExpiry and maxTokenTtl, checked', async (t) => {
  const file = join(dir, 'edge.yaml');
  await writeFile(file, 'closeOnTokenExpiry: true\nmaxTokenTtl: 60\ntenantName: Fabrikam\n');
  t.same(readEdgeConfig(file), {
    config: { tenantName: 'Fabrikam' },
    closeOnTokenExpiry: true,
    maxTokenTtlSeconds: 60,
  });
  await writeFile(file, 'closeOnTokenExpiry: false\n');
  t.same(readEdgeConfig(file), { config: {}, closeOnTokenExpiry: false });

  // Every problem at once, by key, with the edge's own keys' problems.
  await writeFile(file, 'closeOnTokenExpiry: yes\nmaxTokenTtl: 0\ntenantId: 5\n');
  const err = t.throws(() => readEdgeConfig(file)) as ConfigError;
  t.ok(err instanceof ConfigError, 'a ConfigError');
  t.match(
    err.issues.map((i) => `${i.path}: ${i.message}`),
    [
      /^closeOnTokenExpiry: must be true or false, not "yes" \(YAML reads yes\/no\/on\/off as strings/,
      `maxTokenTtl: "0" ${RANGE}`,
      /^tenantId: 5 is not a tenant id/,
    ],
  );
  await writeFile(file, JSON.stringify({ maxTokenTtl: [60], closeOnTokenExpiry: 'true' }));
  t.match(
    (t.throws(() => readEdgeConfig(file)) as ConfigError).issues.map(
      (i) => `${i.path}: ${i.message}`,
    ),
    [
      'closeOnTokenExpiry: must be true or false, not "true" (without quotes)',
      'maxTokenTtl: must be a number of seconds, not [60]',
    ],
  );
  // An unknown key's message names the new keys, with or without them in the file.
  for (const doc of [{ tenantNam: 'x' }, { maxTokenTtl: 5, tenantNam: 'x' }]) {
    await writeFile(file, JSON.stringify(doc));
    t.throws(() => readEdgeConfig(file), {
      message:
        /tenantNam: unknown key \(known: hostsMap, .*tenantName, logMaxSize, closeOnTokenExpiry, maxTokenTtl\)$/,
    });
  }
});

t.test('up: --token-ttl and --close-on-token-expiry values that cannot run', async (t) => {
  const base = { stateDir: join(dir, 'up'), socksPort: '0', httpPort: '0', tty: false };
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  for (const v of ['0', '1.5', 'abc', '', '31536001']) {
    await t.rejects(
      up({ ...base, once: true, tokenTtl: v }, sink),
      { name: 'UsageError', message: `--token-ttl "${v}" ${RANGE}` },
      JSON.stringify(v),
    );
  }
  await t.rejects(
    up({ ...base, once: true, closeOnTokenExpiry: true, edge: 'https://127.0.0.1:1' }, sink),
    {
      name: 'UsageError',
      message:
        /^--close-on-token-expiry is for the in-process edge, not a remote --edge \(start that edge with it: gsa-emu edge --close-on-token-expiry\)/,
    },
  );

  const file = join(dir, 'up.json');
  await writeFile(
    file,
    JSON.stringify({ tokenTtl: 30, closeOnTokenExpiry: true, sessionRotation: false }),
  );
  t.same(readUpConfig(file), { tokenTtl: '30', closeOnTokenExpiry: true, sessionRotation: false });
  await writeFile(
    file,
    JSON.stringify({ tokenTtl: 0, closeOnTokenExpiry: 'yes', sessionRotation: 'no' }),
  );
  t.match(
    (t.throws(() => readUpConfig(file)) as ConfigError).issues.map(
      (i) => `${i.path}: ${i.message}`,
    ),
    [
      `tokenTtl: "0" ${RANGE}`,
      'closeOnTokenExpiry: must be true or false, not "yes"',
      'sessionRotation: must be true or false, not "no"',
    ],
  );
});

t.test('startEdge: maxTokenTtlSeconds is whole seconds, at least 1', async (t) => {
  for (const v of [0, 1.5, -1, Number.NaN]) {
    await t.rejects(
      startEdge({ stateDir: join(dir, 'edge-opts'), tls: false, maxTokenTtlSeconds: v }),
      { name: 'ConfigError', message: /maxTokenTtlSeconds: must be a whole number of seconds/ },
      String(v),
    );
  }
  const edge = await startEdge({
    stateDir: join(dir, 'edge-opts'),
    tls: false,
    maxTokenTtlSeconds: 3,
    egress: { systemResolver: false, directIp: false },
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  t.equal(await tokenStatus(edge.url, 3), 200);
  t.equal(await tokenStatus(edge.url, 4), 400);
});

/** `gsa-emu edge` on a free loopback port (plain HTTP): its URL and banner; killed at the end. */
let edges = 0;
/** A `gsa-emu edge` on a free port, each in a state folder of its own (one edge per folder). */
async function startEdgeCli(t: Test, args: string[]): Promise<{ url: string; out: string }> {
  const folder = join(dir, `edge-${edges++}`);
  const ready = /listening on (\S+)[\s\S]*Ctrl\+C to stop\./;
  const { m, out } = await startEdgeProcess(t, folder, args, ready, 30_000);
  return { url: m[1]!, out };
}

/** The token endpoint's status for a token of `ttl` seconds. */
async function tokenStatus(url: string, ttl: number): Promise<number> {
  const r = await fetch(`${url}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId: 'u1', channel: 'internet', ttlSeconds: ttl }),
  });
  await r.text();
  return r.status;
}

t.test('edge --max-token-ttl: bad values are usage errors naming it', { skip }, async (t) => {
  for (const v of ['abc', '0', '1.5']) {
    const r = await cli(['edge', '--port', '0', '--no-tls', '--max-token-ttl', v]);
    t.equal(r.code, 2, `${v}: exit 2`);
    t.match(r.err, `gsa-emu: --max-token-ttl "${v}" ${RANGE}`);
    t.notMatch(r.out, /listening on/, 'nothing listens');
  }
  const cfg = join(dir, 'bad-edge.json');
  await writeFile(cfg, JSON.stringify({ closeOnTokenExpiry: 'on' }));
  const r = await cli(['edge', '--port', '0', '--no-tls', '--config', cfg]);
  t.equal(r.code, 1, 'a bad config value: exit 1');
  t.match(r.err, /closeOnTokenExpiry: must be true or false, not "on"/);
});

t.test('edge: the token endpoint keeps to --max-token-ttl / maxTokenTtl', { skip }, async (t) => {
  const cfg = join(dir, 'edge.json');
  await writeFile(cfg, JSON.stringify({ maxTokenTtl: 5, closeOnTokenExpiry: true }));
  const byFile = await startEdgeCli(t, ['--config', cfg]);
  t.match(byFile.out, /tokens +ttlSeconds at most 5; sessions closed at token expiry \(4419\)/);
  t.equal(await tokenStatus(byFile.url, 5), 200, 'config maxTokenTtl 5: 5 s issued');
  t.equal(await tokenStatus(byFile.url, 6), 400, '6 s refused');
  // The flag wins over the file.
  const byFlag = await startEdgeCli(t, ['--config', cfg, '--max-token-ttl', '10']);
  t.equal(await tokenStatus(byFlag.url, 10), 200, '--max-token-ttl 10: 10 s issued');
  t.equal(await tokenStatus(byFlag.url, 11), 400, '11 s refused');
  const plain = await startEdgeCli(t, []);
  t.notMatch(plain.out, /tokens +/, 'no token line without the options');
  t.equal(await tokenStatus(plain.url, 86_400), 200, 'default: a day');
  t.equal(await tokenStatus(plain.url, 86_401), 400);
});

t.test('up --token-ttl the edge refuses: a usage error at startup', { skip }, async (t) => {
  const started = Date.now();
  const r = await cli(
    [
      'up',
      '--once',
      '--state-dir',
      join(dir, 'up-refused'),
      '--socks-port',
      '0',
      '--http-port',
      '0',
      '--no-process-lookup',
      '--token-ttl',
      '999999',
    ],
    40_000,
  );
  t.equal(r.code, 2, `exit 2 (stderr: ${r.err.trim()})`);
  t.match(
    r.err,
    /^gsa-emu: --token-ttl 999999: the edge https:\/\/127\.0\.0\.1:\d+ refuses it \(ttlSeconds must be 1-86400\): give a shorter one\n/,
  );
  t.notMatch(r.out, /Global Secure Access/, 'no banner');
  t.ok(Date.now() - started < 30_000, 'ends, no retry loop');
});
