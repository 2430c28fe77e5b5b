/**
 * The client log (`logs/client.log`, pino) is rotated by size as the edge's traffic log
 * is (util/log-rotation.ts): `gsa-emu up --log-max-size <MiB>` (config key `logMaxSize`),
 * `gsa-emu edge --log-max-size` (its config's `logMaxSize`); bad values are usage errors
 * before anything starts. In-process; everything listens on 127.0.0.1 and stops with `up`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { readEdgeConfig } from '../../src/cli/commands/edge.js';
import { readUpConfig, up } from '../../src/cli/commands/up.js';
import { logMaxBytes } from '../../src/cli/common.js';
import { ConfigError } from '../../src/errors.js';
import { rotatingDestination } from '../../src/util/rotating-destination.js';
import { openPrivateFile } from '../../src/util/state-dir.js';

async function folder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-log-rot-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Waits (at most 5 s) until `ok()` holds. */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
}

/** A file's lines, each parsed whole (a split line would throw). */
async function records(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(file, 'utf8');
  if (text !== '' && !text.endsWith('\n')) throw new Error(`${file} ends in a partial line`);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('the client log destination rotates at the cap, none lost or split', async (t) => {
  const dir = await folder(t);
  const file = join(dir, 'client.log');
  // Lines of one length: {"level":30,"i":10,"msg":"flow"}\n
  const L = `${JSON.stringify({ level: 30, i: 10, msg: 'flow' })}\n`.length;
  const cap = Math.floor(10.5 * L);
  const dest = rotatingDestination(file, openPrivateFile(file), cap);
  const log = pino({ base: null, timestamp: false }, dest);
  for (let i = 10; i < 25; i++) log.info({ i }, 'flow');
  await new Promise<void>((r) => log.flush(() => r()));
  await until(() => statSync(file).size === 5 * L && existsSync(`${file}.1`));
  const old = (await records(`${file}.1`)).map((r) => r.i);
  const cur = (await records(file)).map((r) => r.i);
  t.same(old, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 'the first ten in client.log.1');
  t.same(cur, [20, 21, 22, 23, 24], 'the rest in the new client.log');
  t.ok(statSync(`${file}.1`).size <= cap, 'client.log.1 is within the cap');
  if (process.platform !== 'win32') t.equal(statSync(file).mode & 0o777, 0o600);
});

t.test('a second rotation replaces .1; 0 never rotates', async (t) => {
  const dir = await folder(t);
  const L = `${JSON.stringify({ level: 30, i: 10, msg: 'flow' })}\n`.length;
  const capped = join(dir, 'capped.log');
  const a = pino(
    { base: null, timestamp: false },
    rotatingDestination(capped, openPrivateFile(capped), Math.floor(10.5 * L)),
  );
  const never = join(dir, 'never.log');
  const b = pino(
    { base: null, timestamp: false },
    rotatingDestination(never, openPrivateFile(never), 0),
  );
  for (let i = 10; i < 35; i++) {
    a.info({ i }, 'flow');
    b.info({ i }, 'flow');
  }
  await new Promise<void>((r) => a.flush(() => r()));
  await new Promise<void>((r) => b.flush(() => r()));
  await until(() => statSync(never).size === 25 * L && statSync(capped).size === 5 * L);
  await until(() => existsSync(`${capped}.1`) && statSync(`${capped}.1`).size === 10 * L);
  t.same(
    (await records(`${capped}.1`)).map((r) => r.i),
    [20, 21, 22, 23, 24, 25, 26, 27, 28, 29],
  );
  t.same(
    (await records(capped)).map((r) => r.i),
    [30, 31, 32, 33, 34],
  );
  t.equal((await records(never)).length, 25, '0: every line in the one file');
  t.same(readdirSync(dir).sort(), ['capped.log', 'capped.log.1', 'never.log']);
});

t.test('up --log-max-size rotates the client log', async (t) => {
  const dir = await folder(t);
  const stateDir = join(dir, 'state');
  // About 300 bytes: up's own start-up lines (four, about 430 bytes) take the log past it.
  await up(
    {
      socksPort: '0',
      httpPort: '0',
      once: true,
      tty: false,
      processLookup: false,
      stateDir,
      logMaxSize: '0.0003',
    },
    { write: () => true } as unknown as NodeJS.WritableStream,
  );
  const file = join(stateDir, 'logs', 'client.log');
  await until(() => existsSync(`${file}.1`));
  t.ok(existsSync(`${file}.1`), 'client.log.1 is there');
  const old = await records(`${file}.1`);
  const cur = await records(file);
  t.ok(old.length > 0 && statSync(`${file}.1`).size <= logMaxBytes('0.0003'), 'within the cap');
  t.ok(
    old.concat(cur).every((r) => r.component === 'client'),
    'whole pino records',
  );
});

t.test('bad values are usage errors; config keys are said of the file', async (t) => {
  t.equal(logMaxBytes('0'), 0);
  t.equal(logMaxBytes('1024'), 1024 * 1024 * 1024);
  t.equal(logMaxBytes('0.5'), 512 * 1024);
  t.equal(logMaxBytes('0.0000001'), 1, 'a cap above 0 is at least one byte');
  for (const v of ['', 'abc', '-1', '1e3', '0x10', 'Infinity', '2000000']) {
    t.throws(() => logMaxBytes(v), {
      name: 'UsageError',
      message: `--log-max-size "${v}" is not a number of MiB from 0 to 1048576`,
    });
  }
  const dir = await folder(t);
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  await t.rejects(up({ stateDir: join(dir, 'state'), once: true, logMaxSize: 'big' }, sink), {
    name: 'UsageError',
    message: /^--log-max-size "big" is not a number of MiB/,
  });
  t.notOk(existsSync(join(dir, 'state', 'logs')), 'nothing started');
  const upCfg = join(dir, 'up.json');
  await writeFile(upCfg, JSON.stringify({ logMaxSize: -5 }));
  t.throws(() => readUpConfig(upCfg), { name: 'ConfigError', message: /logMaxSize: "-5" is not/ });
  await writeFile(upCfg, JSON.stringify({ logMaxSize: 16 }));
  t.same(readUpConfig(upCfg), { logMaxSize: '16' });
  const edgeCfg = join(dir, 'edge.json');
  await writeFile(edgeCfg, JSON.stringify({ logMaxSize: 'lots', tenantId: 5 }));
  const err = (() => {
    try {
      readEdgeConfig(edgeCfg);
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof ConfigError, 'the edge config: a ConfigError');
  t.match((err as Error).message, /logMaxSize: "lots" is not a number of MiB/);
  t.match((err as Error).message, /tenantId/, 'with the other keys` problems');
  await writeFile(edgeCfg, JSON.stringify({ logMaxSize: 2, tenantName: 'Fabrikam' }));
  t.same(readEdgeConfig(edgeCfg), {
    config: { tenantName: 'Fabrikam' },
    logMaxBytes: 2 * 1024 * 1024,
  });
  // An unknown key's message lists logMaxSize with the edge's own keys, with or without it.
  for (const doc of [{ logMaxSize: 2, tenantNam: 'x' }, { tenantNam: 'x' }]) {
    await writeFile(edgeCfg, JSON.stringify(doc));
    t.throws(() => readEdgeConfig(edgeCfg), {
      name: 'ConfigError',
      message: /tenantNam: unknown key \(known: hostsMap, .*tenantName, logMaxSize[,)]/,
    });
  }
});
