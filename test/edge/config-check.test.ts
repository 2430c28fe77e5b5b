/**
 * `gsa-emu edge --config <file>`: the file's values are checked before the edge starts:
 * switches must be real booleans (YAML 1.2 reads `no` / `off` as strings, which the egress
 * would take as "on"), lists lists of strings, objects objects; every problem is one
 * ConfigError naming its key path and the file. Through the CLI: exit code 1, one line per
 * problem, no stack trace. The CLI edges run as children on loopback; the tests stop them.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { checkEdgeConfig, withConfigFile } from '../../src/edge/config-check.js';
import { ConfigError } from '../../src/errors.js';
import { parseConfigText } from '../../src/util/config-text.js';
import { HostsMap } from '../../src/util/hosts-map.js';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

/** The example of docs/edge.md, as a config file gives it. */
const DOCS_CONFIG = {
  hostsMap: { 'www.example.test': '127.0.0.1:8080' },
  connectorHosts: {
    'intranet.contoso.test:443': '127.0.0.1:18443',
    '*.corp.contoso.test': '127.0.0.1',
  },
  filtering: {
    channels: ['internet'],
    blockedFqdns: ['blocked.test', '*.ads.test', 'login.*.example.test'],
    blockedCategories: ['gambling', 'social'],
    categories: { 'casino.test': 'gambling' },
    policyId: 'web-content-filtering',
    policyName: 'Web content filtering (gsa-emu)',
  },
  egress: { systemResolver: false, directIp: false, connectorDirectIp: false },
  tenantId: '5e6f7a8b-2222-4333-8444-999900001111',
  tenantName: 'Fabrikam',
};

const YAML_CONFIG = `# keep every flow on this machine
hostsMap:
  www.example.test: 127.0.0.1:8080
connectorHosts:
  "*.corp.contoso.test": 127.0.0.1
filtering:
  blockedCategories: [gambling]
  blockedFqdns: ["*.ads.test"]
egress:
  systemResolver: false
  directIp: false
`;

/** The ConfigError `fn` throws (fails the test when it throws none or another error). */
function configError(t: Test, fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    t.type(e, ConfigError, 'a ConfigError, not a TypeError');
    return e as ConfigError;
  }
  t.fail('no ConfigError');
  return new ConfigError([]);
}

/** The issues of checking `doc` as file F, as `path: message` lines. */
function problems(t: Test, doc: unknown, file = 'F.json'): string[] {
  const err = configError(t, () => checkEdgeConfig(doc, file));
  t.equal(err.file, file, 'names the file');
  t.match(err.message, new RegExp(`^${file.replace('.', '\\.')}: \\d+ problems?\\n`));
  return err.issues.map((i) => `${i.path}: ${i.message}`);
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-edge-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the documented config, in JSON and YAML, passes unchanged', async (t) => {
  t.same(checkEdgeConfig(structuredClone(DOCS_CONFIG), 'F.json'), DOCS_CONFIG);
  t.same(checkEdgeConfig({}, 'F.json'), {});
  t.same(checkEdgeConfig({ tenantId: '00000000-0000-0000-0000-000000000000' }), {
    tenantId: '00000000-0000-0000-0000-000000000000',
  });
  const yaml = parseConfigText(YAML_CONFIG, 'F.yaml');
  t.same(checkEdgeConfig(yaml, 'F.yaml'), {
    hostsMap: { 'www.example.test': '127.0.0.1:8080' },
    connectorHosts: { '*.corp.contoso.test': '127.0.0.1' },
    filtering: { blockedCategories: ['gambling'], blockedFqdns: ['*.ads.test'] },
    egress: { systemResolver: false, directIp: false },
  });
});

t.test('connectorSearch: a list of DNS suffixes', async (t) => {
  t.same(checkEdgeConfig({ connectorSearch: ['corp.contoso.test', 'Lab.Test.'] }), {
    connectorSearch: ['corp.contoso.test', 'Lab.Test.'],
  });
  t.same(problems(t, { connectorSearch: 'corp.contoso.test' }), [
    'connectorSearch: must be a list of DNS suffixes (["corp.contoso.test"]), not "corp.contoso.test"',
  ]);
  t.same(problems(t, { connectorSearch: ['ok.test', '*.corp.test', 7, 'a b'] }), [
    'connectorSearch[1]: "*.corp.test" is not a DNS suffix (a name such as corp.contoso.test)',
    'connectorSearch[2]: 7 is not a DNS suffix (a name such as corp.contoso.test)',
    'connectorSearch[3]: "a b" is not a DNS suffix (a name such as corp.contoso.test)',
  ]);
});

t.test('egress switches must be real booleans: "no" and "off" are refused', async (t) => {
  t.same(problems(t, { egress: { systemResolver: 'no' } }), [
    'egress.systemResolver: must be true or false, not "no" (YAML reads yes/no/on/off as strings: write true or false)',
  ]);
  const yaml = parseConfigText(
    'egress:\n  systemResolver: no\n  directIp: off\n  connectorDirectIp: 0\n',
    'F.yaml',
  );
  t.same(yaml, { egress: { systemResolver: 'no', directIp: 'off', connectorDirectIp: 0 } });
  const lines = problems(t, yaml, 'F.yaml');
  t.same(
    lines.map((l) => l.split(':')[0]),
    ['egress.systemResolver', 'egress.directIp', 'egress.connectorDirectIp'],
    'each switch named',
  );
  t.match(lines[1], /^egress\.directIp: must be true or false, not "off"/);
  t.match(lines[2], /^egress\.connectorDirectIp: must be true or false, not 0$/);
  t.same(problems(t, { egress: { directIp: 'false' } }), [
    'egress.directIp: must be true or false, not "false" (without quotes)',
  ]);
  t.match(problems(t, { egress: false }), [/^egress: must be an object of .* not false$/]);
  t.match(problems(t, { egress: { systemresolver: false } }), [
    /^egress\.systemresolver: unknown key \(did you mean systemResolver\? known: systemResolver, directIp, connectorDirectIp\)$/,
  ]);
});

t.test('filtering lists that are not lists are ConfigErrors, not TypeErrors', async (t) => {
  t.match(problems(t, { filtering: { blockedFqdns: 'x.test' } }), [
    /^filtering\.blockedFqdns: must be a list of host name patterns, not "x\.test"$/,
  ]);
  t.match(problems(t, { filtering: { blockedCategories: 'gambling' } }), [
    /^filtering\.blockedCategories: must be a list of category names, not "gambling"$/,
  ]);
  t.match(problems(t, { filtering: { channels: 'internet' } }), [
    /^filtering\.channels: must be a list of channel names/,
  ]);
  t.match(problems(t, { filtering: { blockedFqdns: ['ok.test', 5, 'bad name'] } }), [
    /^filtering\.blockedFqdns\[1\]: must be a host name pattern string, not 5$/,
    /^filtering\.blockedFqdns\[2\]: "bad name" is not a host name pattern$/,
  ]);
  t.match(problems(t, { filtering: { blockedCategories: ['gambling', 5, 'no such'] } }), [
    /^filtering\.blockedCategories\[1\]: "5" is not a category name$/,
    /^filtering\.blockedCategories\[2\]: "no such" is not a category name$/,
  ]);
  t.match(problems(t, { filtering: { channels: ['internet', 'intranet', null] } }), [
    /^filtering\.channels\[2\]: must be a channel name string, not null$/,

    /^filtering\.channels\[1\]: unknown channel "intranet" \(known: m365, private, internet\)$/,
  ]);
});

t.test('objects, strings and ids of the wrong type are refused', async (t) => {
  t.match(problems(t, { filtering: 'x' }), [/^filtering: must be an object, not "x"$/]);
  t.match(problems(t, { filtering: null }), [/^filtering: must be an object, not null$/]);
  t.match(problems(t, { filtering: { categories: 'x' } }), [
    /^filtering\.categories: must be an object of .* not "x"$/,
  ]);
  t.match(problems(t, { filtering: { categories: { 'casino.test': 7 } } }), [
    /^filtering\.categories\["casino\.test"\]: category must be a non-empty string$/,
  ]);
  t.match(problems(t, { filtering: { policyName: 3, blockedFQDNs: [] } }), [
    /^filtering\.blockedFQDNs: unknown key \(did you mean blockedFqdns\? known: channels, blockedFqdns, /,
    /^filtering\.policyName: must be a non-empty string, not 3$/,
  ]);
  t.match(problems(t, { hostsMap: [] }), [/^hostsMap: must be an object of .* not \[\]$/]);
  t.match(problems(t, { connectorHosts: 'x' }), [/^connectorHosts: must be an object/]);
  t.match(problems(t, { hostsMap: { 'a.test': 5, 'b.test': '127.0.0.1' } }), [
    /^hostsMap\["a\.test"\]: 5 is not an IP address or ip:port$/,
  ]);
  t.match(problems(t, { tenantId: 5 }), [/^tenantId: 5 is not a tenant id/]);
  t.match(problems(t, { tenantId: 'not a guid' }), [/^tenantId: "not a guid" is not a tenant id/]);
  t.match(problems(t, { tenantName: ['x'] }), [/^tenantName: must be a non-empty string/]);
  t.match(problems(t, { tenantName: '' }), [/^tenantName: must be a non-empty string/]);
  t.match(problems(t, { egres: {} }), [
    /^egres: unknown key \(known: hostsMap, connectorHosts, connectorSearch, filtering, egress, deviceCertificates, tenantId, tenantName\)$/,
  ]);
  t.match(problems(t, []), [/^: must be an object, not \[\]$/]);
  // Written as a flag would be, or in snake case: the key meant is named.
  t.match(problems(t, { 'hosts-map': {}, connector_hosts: {} }), [
    /^\["hosts-map"\]: unknown key \(did you mean hostsMap\? known: hostsMap, /,
    /^connector_hosts: unknown key \(did you mean connectorHosts\? known: /,
  ]);
});

t.test('every problem of a file is listed at once', async (t) => {
  const lines = problems(t, {
    hostsMap: [],
    connectorHosts: { 'x y': '127.0.0.1' },
    filtering: { blockedFqdns: 'x.test', blockedCategories: ['ok', '9bad'] },
    egress: { systemResolver: 'no', directIp: 'off' },
    tenantId: 5,
    extra: 1,
  });
  t.same(
    lines.map((l) => l.slice(0, l.indexOf(': '))),
    [
      'extra',
      'hostsMap',
      'connectorHosts["x y"]',
      'filtering.blockedFqdns',
      'filtering.blockedCategories[1]',
      'egress.systemResolver',
      'egress.directIp',
      'tenantId',
    ],
  );
});

t.test('a ConfigError startEdge raises about the file gets the file name', async (t) => {
  const fromEdge = configError(t, () => new HostsMap({ 'x y': '127.0.0.1' }, 'hostsMap'));
  t.equal(fromEdge.file, undefined);
  const named = withConfigFile(fromEdge, { hostsMap: { 'x y': '127.0.0.1' } }, 'F.json');
  t.type(named, ConfigError);
  t.equal((named as ConfigError).file, 'F.json');
  t.match((named as ConfigError).message, /^F\.json: 1 problem\n {2}hostsMap\["x y"\]: /);
  t.same((named as ConfigError).issues, fromEdge.issues);
  // Not about the file: left as it is.
  const other = new ConfigError([{ path: 'stateDir', message: 'a state folder is required' }]);
  t.equal(withConfigFile(other, { hostsMap: {} }, 'F.json'), other);
  t.equal(withConfigFile(fromEdge, {}, 'F.json'), fromEdge, 'a key the file does not set');
  const boom = new Error('boom');
  t.equal(withConfigFile(boom, { hostsMap: {} }, 'F.json'), boom);
});

/** Runs `gsa-emu edge --config <file>` on loopback; a run past 60 s is killed. */
function runEdge(dir: string, cfg: string) {
  return collect(
    spawn(
      process.execPath,
      [
        mainJs,
        'edge',
        '--port',
        '0',
        '--no-tls',
        '--state-dir',
        join(dir, 'state'),
        '--config',
        cfg,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
    60_000,
  );
}

t.test(
  'the CLI: exit 1, the file and one line per problem, no stack trace',
  { skip },
  async (t) => {
    const dir = await tempDir(t);
    const cases: Array<[string, string, RegExp[]]> = [
      [
        'off.yaml',
        'egress:\n  systemResolver: no\n  directIp: off\n',
        [
          /^ {2}egress\.systemResolver: must be true or false, not "no"/,
          /^ {2}egress\.directIp: must be true or false, not "off"/,
        ],
      ],
      [
        'resolver.json',
        '{"egress":{"systemResolver":"no"}}',
        [/^ {2}egress\.systemResolver: must be true or false/],
      ],
      [
        'fqdns.json',
        '{"filtering":{"blockedFqdns":"x.test","blockedCategories":"gambling"}}',
        [
          /^ {2}filtering\.blockedFqdns: must be a list/,
          /^ {2}filtering\.blockedCategories: must be a list/,
        ],
      ],
      [
        'shapes.json',
        '{"filtering":"x","hostsMap":[],"tenantId":5}',
        [
          /^ {2}hostsMap: must be an object/,
          /^ {2}filtering: must be an object/,
          /^ {2}tenantId: 5 is not a tenant id/,
        ],
      ],
      [
        'categories.json',
        '{"filtering":{"categories":"x"}}',
        [/^ {2}filtering\.categories: must be an object/],
      ],
      ['bad-host.json', '{"hostsMap":{"x y":"127.0.0.1"}}', [/^ {2}hostsMap\["x y"\]: /]],
    ];
    // The runs go side by side: one after another, six Node starts on a loaded host took
    // longer than the file's time limit.
    const runs = await Promise.all(
      cases.map(async ([name, text]) => {
        const cfg = join(dir, name);
        await writeFile(cfg, text);
        return { cfg, r: await runEdge(dir, cfg) };
      }),
    );
    for (const [i, [name, , expected]] of cases.entries()) {
      const { cfg, r } = runs[i]!;
      t.equal(r.code, 1, `${name}: exit code 1 (signal ${r.signal}, stderr: ${r.err.trim()})`);
      const lines = r.err.trimEnd().split('\n');
      const n = expected.length;
      t.equal(lines[0], `gsa-emu: ${cfg}: ${n} problem${n === 1 ? '' : 's'}`, `${name}: head line`);
      t.match(lines.slice(1), expected, `${name}: one line per problem`);
      t.equal(lines.length, n + 1, `${name}: nothing else (no stack trace)`);
      t.equal(r.out, '', `${name}: no edge started`);
    }
  },
);

t.test('the CLI: a YAML config with real booleans starts the edge', { skip }, async (t) => {
  const dir = await tempDir(t);
  const cfg = join(dir, 'edge.yaml');
  await writeFile(cfg, YAML_CONFIG);
  const child = spawn(
    process.execPath,
    [mainJs, 'edge', '--port', '0', '--no-tls', '--state-dir', join(dir, 'state'), '--config', cfg],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const done = collect(child, 60_000);
  t.teardown(async () => {
    child.kill('SIGTERM');
    await done;
  });
  const url = await new Promise<string | null>((resolve) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void done.then(() => resolve(null));
  });
  t.ok(url, 'the edge started');
  if (!url) return;
  const health = (await (await fetch(`${url}/health`)).json()) as { status: string };
  t.equal(health.status, 'ok');
  child.kill('SIGTERM');
  const r = await done;
  t.equal(r.code, 0, `stopped cleanly (stderr: ${r.err.trim()})`);
  // The same file with "no" is refused (YAML 1.2 reads it as the string "no").
  await writeFile(cfg, YAML_CONFIG.replace('systemResolver: false', 'systemResolver: no'));
  const refused = await runEdge(dir, cfg);
  t.equal(refused.code, 1, `refused (stderr: ${refused.err.trim()})`);
  t.match(refused.err, `${cfg}: 1 problem\n  egress.systemResolver: must be true or false`);
});
