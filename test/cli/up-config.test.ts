/**
 * `gsa-emu up --config <file>`: keys are the long flags in camelCase; switches must be
 * booleans and the rest strings or numbers, each wrong key or value named by its path.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { readUpConfig } from '../../src/cli/commands/up.js';
import { ConfigError } from '../../src/errors.js';

async function configFile(t: Test, name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-up-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

t.test('valid JSON and YAML: numbers become strings, switches stay booleans', async (t) => {
  const json = await configFile(
    t,
    'up.json',
    JSON.stringify({ socksPort: 1081, plainEdge: true, edgeThread: false, tenant: 't.json' }),
  );
  t.same(readUpConfig(json), {
    socksPort: '1081',
    plainEdge: true,
    edgeThread: false,
    tenant: join(dirname(json), 't.json'),
  });
  const yaml = await configFile(t, 'up.yaml', 'httpPort: off\nprocessLookup: false\n');
  t.same(readUpConfig(yaml), { httpPort: 'off', processLookup: false });
});

t.test('wrong types, unknown keys and bad files are ConfigErrors naming each path', async (t) => {
  const bad = await configFile(
    t,
    'up.json',
    JSON.stringify({ plainEdge: 'no', socksPort: [1080], edgeThreads: true, tun: 1 }),
  );
  const err = t.throws(() => readUpConfig(bad)) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.same(
    err.issues.map((i) => i.path),
    ['plainEdge', 'socksPort', 'edgeThreads', 'tun'],
  );
  t.match(err.issues[0]!.message, /must be true or false, not "no"/);
  t.match(err.issues[1]!.message, /must be a string or a number/);
  t.match(err.issues[2]!.message, /unknown key/);
  t.match(err.message, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 4 problems`));

  const notObject = await configFile(t, 'up.json', '[1, 2]');
  const e1 = t.throws(() => readUpConfig(notObject)) as ConfigError;
  t.equal(e1.issues[0]!.message, 'must be an object, not [1,2]');
  // An empty YAML file (or one of comments only) is null: the message says what it got.
  const empty = await configFile(t, 'up.yaml', '# nothing yet\n');
  const e2 = t.throws(() => readUpConfig(empty)) as ConfigError;
  t.equal(e2.issues[0]!.message, 'must be an object, not null');
  const broken = await configFile(t, 'up.json', '{"socksPort": ');
  t.throws(() => readUpConfig(broken), { code: 'GSA_ERR_CONFIG' });
});

t.test('a key written as its flag or in another case: the key meant is named', async (t) => {
  const file = await configFile(
    t,
    'up.yaml',
    'socks-port: 0\nhttpport: 0\nadd-host:\n  a.test: 127.0.0.1\nState_Dir: /tmp/x\nbogus: 1\n',
  );
  const err = t.throws(() => readUpConfig(file)) as ConfigError;
  const said = Object.fromEntries(err.issues.map((i) => [i.path, i.message]));
  t.match(said['socks-port'], /^unknown key \(did you mean socksPort\? known: host, /);
  t.match(said.httpport, /^unknown key \(did you mean httpPort\? known: /);
  t.match(said['add-host'], /^unknown key \(did you mean hosts\? known: /);
  t.match(said.State_Dir, /^unknown key \(did you mean stateDir\? known: /);
  t.match(said.bogus, /^unknown key \(known: host, /);
});

t.test('relative paths in the file are relative to the file, not to where up runs', async (t) => {
  const file = await configFile(
    t,
    'up.yaml',
    [
      'tenant: my-tenant.json',
      'clientConfig: sub/client.yaml',
      'platform: ../platforms/mine.json',
      'edgeCa: /etc/ssl/edge-ca.pem',
      'stateDir: state',
      'edge: https://127.0.0.1:8443',
      '',
    ].join('\n'),
  );
  const dir = dirname(file);
  const o = readUpConfig(file);
  t.equal(o.tenant, join(dir, 'my-tenant.json'));
  t.equal(o.clientConfig, join(dir, 'sub', 'client.yaml'));
  t.equal(o.platform, join(dir, '..', 'platforms', 'mine.json'));
  t.equal(o.edgeCa, '/etc/ssl/edge-ca.pem', 'an absolute path as it is');
  t.equal(o.stateDir, join(dir, 'state'));
  t.equal(o.edge, 'https://127.0.0.1:8443', 'not a path');
  const named = await configFile(t, 'up.json', JSON.stringify({ platform: 'windows' }));
  t.equal(readUpConfig(named).platform, 'windows', 'a built-in platform name stays a name');
});

t.test('a bad host, and a YAML file not named .yaml, say so', async (t) => {
  const host = await configFile(t, 'up.json', JSON.stringify({ host: '127.0.0.1:80' }));
  const err = t.throws(() => readUpConfig(host)) as ConfigError;
  t.same(
    err.issues.map((i) => i.path),
    ['host'],
  );
  t.match(err.issues[0]!.message, /not an IPv4 or IPv6 address or a host name; a port goes/);
  const txt = await configFile(t, 'up.txt', 'socksPort: 1081\n');
  const err2 = t.throws(() => readUpConfig(txt)) as ConfigError;
  t.match(err2.issues[0]!.message, /read as JSON: only a name ending in \.yaml or \.yml/);
  const json = await configFile(t, 'up.json', 'socksPort: 1081\n');
  t.notMatch((t.throws(() => readUpConfig(json)) as ConfigError).issues[0]!.message, /read as/);
});
