/**
 * A bad value in the `gsa-emu up --config` file is a ConfigError naming the file and the
 * key (docs/usage.md, the `--config` row), not a UsageError about a flag never typed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { readUpConfig, up } from '../../src/cli/commands/up.js';

async function setup(t: Test, cfg: object): Promise<{ file: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-upcfg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'up.json');
  await writeFile(file, JSON.stringify(cfg));
  return { file, dir };
}

/** What `gsa-emu up --config <file>` does with the file's options (flags: none). */
async function errorOf(file: string, stateDir: string): Promise<Error | null> {
  try {
    const o = readUpConfig(file);
    // None of these values lets up() get as far as starting anything.
    await up({ ...o, stateDir, once: true }, { write: () => true } as never);
  } catch (e) {
    return e as Error;
  }
  return null;
}

for (const [key, value] of [
  ['logLevel', 'loud'],
  ['socksPort', 'abc'],
  ['profilePoll', 5],
  ['profilePoll', '0x7530'],
  ['edge', 'https://127.0.0.1:8443/gsa'],
] as const) {
  t.test(`${key}: ${JSON.stringify(value)} in the config file`, async (t) => {
    const { file, dir } = await setup(t, { [key]: value });
    const err = await errorOf(file, join(dir, 'state'));
    t.ok(err, 'refused');
    t.match(err?.message, key, `the message names the config key ${key}`);
    t.match(err?.message, file, 'the message names the config file');
  });
}

t.test('every bad value of the file is listed at once; good values pass', async (t) => {
  const { file, dir } = await setup(t, {
    logLevel: 'loud',
    adminPort: 70000,
    edge: 'ftp://x',
    socksPort: 'off',
    httpPort: 0,
  });
  const err = await errorOf(file, join(dir, 'state'));
  t.match(err?.message, /logLevel/);
  t.match(err?.message, /adminPort/);
  t.match(err?.message, /edge/);
  t.notMatch(err?.message, /socksPort|httpPort/);
  t.notMatch(err?.message, /--log-level|--admin-port/, 'no flag the user did not type');
  // Numbers are taken as the flags' text (docs/usage.md, the --config row).
  const good = { socksPort: 'off', httpPort: 0, profilePoll: 30000, httpResponseTimeout: 10 };
  t.same(readUpConfig((await setup(t, good)).file), {
    socksPort: 'off',
    httpPort: '0',
    profilePoll: '30000',
    httpResponseTimeout: '10',
  });
});
