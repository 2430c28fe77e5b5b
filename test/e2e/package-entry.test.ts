/**
 * The package's entry point (`import ... from 'gsa-emu'`, package.json `exports`): what a
 * test suite of the user's own imports to run the emulator in its process. package.json
 * named a `dist/index.js` that no build made, so the import failed. Checks the exports, the
 * example of src/index.ts (an edge and a client on loopback, the client Connected, a
 * decision by the default tenant), a deep import docs/tun.md shows, the published types'
 * dependencies, a flow through the SOCKS proxy read back with the exported types,
 * README's "From code" example run as written, that example and a helper naming the
 * option and result types type-checked as a user's strict TypeScript would, and
 * `require('gsa-emu')` from CommonJS doing what README says.
 *
 * Needs dist/ (`npm run build`; skipped otherwise). Everything listens on 127.0.0.1 and is
 * closed; nothing leaves loopback.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { SocksClient } from 'socks';
import t from 'tap';
import ts from 'typescript';
// Types only (erased): what a user's test names from 'gsa-emu' to hold what it reads back.
import type { FlowRecord, NetworkAccessTraffic } from '../../src/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
// Not a literal: the type check (before the build) must not look for the package's types.
const PKG = ['gsa-emu'][0]!;
// Built at all (the CLI is there); a build without the entry point fails below.
if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
  t.plan(0, 'dist/ is missing: run `npm run build` first');
}

t.test('the entry point exports the documented API', async (t) => {
  const api = await import(PKG);
  for (const name of [
    'startEdge',
    'startClient',
    'startDemo',
    'attachTun',
    'runInNetns',
    'createNetns',
    'loadTenantFile',
    'loadDefaultTenant',
    'loadClientConfigFile',
    'loadPlatform',
    'compile',
    'newFlow',
  ]) {
    t.type(api[name], 'function', name);
  }
  t.type(api.ClassifierHandle, 'function', 'ClassifierHandle');
  t.ok(new api.UsageError('x') instanceof api.GsaError, 'the error classes');
  const deep = await import(`${PKG}/dist/capture/tun/netns.js`);
  t.type(deep.runInNetns, 'function', 'a deep import by path, as docs/tun.md shows');
});

t.test("src/index.ts's example: an edge, a client, a decision", async (t) => {
  const { startEdge, startClient, compile, loadDefaultTenant, loadPlatform, newFlow } =
    await import(PKG);
  const stateDir = await mkdtemp(join(tmpdir(), 'gsa-pkg-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const edge = await startEdge({ stateDir, tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    listen: { socksPort: 0, httpPort: 0, pacPort: null, adminPort: null },
    resolver: { system: false },
    processLookup: false,
  });
  t.teardown(() => client.close());
  await client.waitConnected(10_000);
  t.equal(client.status().state, 'Connected');
  t.match(client.addresses.socks, /^127\.0\.0\.1:\d+$/, 'the SOCKS proxy listens');
  const classifier = compile(loadDefaultTenant(), {
    channels: { m365: true, private: true, internet: true },
    platform: loadPlatform('ios'),
  });
  const flow = newFlow();
  flow.host = 'outlook.office365.com';
  flow.port = 443;
  const d = classifier.decide(flow);
  t.equal(d.action, 'tunnel', 'Exchange Online is tunneled');
  t.equal(d.channel, 'm365', 'on the Microsoft 365 channel');
});

t.test("the published types' imports resolve from the package's own dependencies", async (t) => {
  // The .d.ts files import some packages' types (ws: RunningClient.tunnels reaches it). A
  // user's tsc (skipLibCheck off, its default) must find them after `npm install gsa-emu`,
  // which installs `dependencies` only: a package without types of its own needs its
  // @types package there, not in devDependencies.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const deps: Record<string, string> = pkg.dependencies ?? {};
  const imported = new Set<string>();
  const dist = join(ROOT, 'dist');
  for (const f of readdirSync(dist, { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.d.ts')) continue;
    const text = readFileSync(join(dist, f), 'utf8');
    for (const m of text.matchAll(/(?:from|import\()\s*'([^'.][^']*)'/g)) {
      const spec = m[1]!;
      if (spec.startsWith('node:') || spec === 'gsa-emu') continue;
      const depth = spec.startsWith('@') ? 2 : 1;
      imported.add(spec.split('/').slice(0, depth).join('/'));
    }
  }
  t.ok(imported.has('ws'), 'the scan finds the ws import');
  for (const name of imported) {
    t.ok(deps[name], `${name} is a dependency`);
    const own = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'));
    const shipsTypes =
      own.types !== undefined ||
      own.typings !== undefined ||
      JSON.stringify(own.exports ?? {}).includes('"types"') ||
      existsSync(join(ROOT, 'node_modules', name, 'index.d.ts'));
    if (!shipsTypes) {
      const at = `@types/${name.replace(/^@([^/]+)\//, '$1__')}`;
      t.ok(deps[at], `${name} has no types of its own: ${at} is a dependency`);
    }
  }
});

t.test('a flow through the SOCKS proxy, read back by its exported record types', async (t) => {
  const { startEdge, startClient } = await import(PKG);
  const app = createServer((req, res) => res.end(`hello ${req.headers.host}`));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => app.close(() => r())));
  const appPort = (app.address() as { port: number }).port;
  const stateDir = await mkdtemp(join(tmpdir(), 'gsa-pkg-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const edge = await startEdge({
    stateDir,
    tls: false,
    persistKey: false,
    connectorHosts: { 'intranet.contoso.test:80': `127.0.0.1:${appPort}` },
    egress: { systemResolver: false, directIp: false },
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url, ca: null },
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    resolver: { system: false, directIp: false },
    processLookup: false,
  });
  t.teardown(() => client.close());
  await client.waitConnected(10_000);
  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: client.socks.address.port, type: 5 },
    command: 'connect',
    destination: { host: 'intranet.contoso.test', port: 80 },
  });
  socket.end('GET / HTTP/1.1\r\nHost: intranet.contoso.test\r\nConnection: close\r\n\r\n');
  let reply = '';
  for await (const c of socket) reply += c;
  t.match(reply, /hello intranet\.contoso\.test$/, 'the app answered through the edge');
  const flow: FlowRecord | undefined = client.flows
    .list()
    .find((f: FlowRecord) => f.destinationFqdn === 'intranet.contoso.test');
  t.equal(flow?.channel, 'private', 'the flow table has it on the private channel');
  const rec: NetworkAccessTraffic = await edge.logs.waitFor(
    (r: NetworkAccessTraffic) => r.connectionId === flow?.connectionId,
    5000,
  );
  t.equal(rec.trafficType, 'private', 'the edge logged the same connection');
});

t.test("README's From code example runs as written, on loopback only, and exits", async (t) => {
  // Run by node from the package root (a self-reference to 'gsa-emu'), the example's ports
  // and state folder replaced by the test's own; after waitConnected, one request to each
  // name it maps. The edge and the client must reach nothing else (both resolvers off), and
  // the process must end by itself after close().
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /## From code[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error('no ts block under "## From code" in README.md');
  for (const off of ['systemResolver: false', 'directIp: false', 'system: false']) {
    t.ok(block.includes(off), `the example says ${off}`);
  }
  const servers = await Promise.all(
    ['private', 'internet'].map(async (name) => {
      const s = createTcpServer((c) => {
        c.on('error', () => {});
        c.once('data', () => c.end(`pong ${name}`));
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      t.teardown(() => new Promise<void>((r) => s.close(() => r())));
      return (s.address() as { port: number }).port;
    }),
  );
  const stateDir = await mkdtemp(join(tmpdir(), 'gsa-pkg-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const probe = `
const { SocksClient } = await import('socks');
for (const [host, port] of [['intranet.contoso.test', 80], ['api.myservice.test', 443]]) {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: Number(client.addresses.socks.split(':')[1]), type: 5 },
    command: 'connect',
    destination: { host, port },
  });
  socket.end('ping');
  let reply = '';
  for await (const c of socket) reply += c;
  console.log(JSON.stringify({ host, reply }));
}
console.log(JSON.stringify({ flows: client.flows.list().map((f) => [f.destinationFqdn, f.channel]) }));
`;
  const ownDir = "await mkdtemp(join(tmpdir(), 'gsa-edge-'))";
  t.ok(block.includes(ownDir), 'the example makes a state folder of its own');
  const code = block
    .replace(ownDir, JSON.stringify(stateDir))
    .replace("'127.0.0.1:8080'", `'127.0.0.1:${servers[0]}'`)
    .replace("'127.0.0.1:8443'", `'127.0.0.1:${servers[1]}'`)
    .replace('await client.waitConnected(5000);\n', (m) => m + probe);
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', code],
      { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
  const lines = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.same(lines.slice(0, 2), [
    { host: 'intranet.contoso.test', reply: 'pong private' },
    { host: 'api.myservice.test', reply: 'pong internet' },
  ]);
  t.same(lines[2].flows, [
    ['intranet.contoso.test', 'private'],
    ['api.myservice.test', 'internet'],
  ]);
});

t.test("README's example and the types a test names type-check as the user's code", async (t) => {
  // A user's tsc (strict, NodeNext, skipLibCheck off: every .d.ts of the package and of the
  // types it imports is checked too) on two files of theirs importing 'gsa-emu': README's
  // "From code" block as written, and a helper naming the types of the options it builds
  // and of what it reads back. The files are given to tsc from memory, in the package root
  // (a self-reference resolves 'gsa-emu' to dist/index.d.ts, as node_modules/gsa-emu would).
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /## From code[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error('no ts block under "## From code" in README.md');
  const helper = `
import type {
  ClientConfig, ClientStatusView, Credentials, Edge, EdgeLimits, EdgeOptions, FilteringConfig,
  FlowRecord, GraphDocument, HealthCheck, HostsConfig, NetworkAccessTraffic, PlatformSpec,
  ProfileRefresh, ProfileRefreshFailure, RunningClient, Verdict,
} from 'gsa-emu';
import { GsaError, startEdge } from 'gsa-emu';
export const hosts: HostsConfig = { 'api.myservice.test:443': '127.0.0.1:8443' };
export const auth: Credentials = { username: 'u', password: 'p' };
export const limits: EdgeLimits = { connectTimeoutMs: 1000 };
export const filtering: FilteringConfig = { blockedFqdns: ['casino.test'] };
export const options: EdgeOptions = { stateDir: '/tmp/x', hostsMap: hosts, filtering, limits };
export let config: ClientConfig | undefined;
export let doc: GraphDocument | undefined;
export async function readBack(client: RunningClient, edge: Edge) {
  const status: ClientStatusView = client.status();
  const health: HealthCheck[] = await client.health();
  const refresh: ProfileRefresh = await client.refreshProfiles();
  const why: ProfileRefreshFailure | undefined = refresh.error?.reason;
  const flows: FlowRecord[] = client.flows.list();
  const logs: NetworkAccessTraffic[] = edge.logs.all();
  const platform: PlatformSpec = client.platform;
  const verdicts: Verdict[] = ['tunnel', 'bypass'];
  return { status, health, why, flows, logs, platform, verdicts };
}
export async function start(): Promise<Edge | string> {
  try {
    return await startEdge(options);
  } catch (err) {
    if (err instanceof GsaError) return err.code;
    throw err;
  }
}
`;
  const files = new Map([
    [join(ROOT, 'test', 'e2e', 'user-readme-example.ts'), block],
    [join(ROOT, 'test', 'e2e', 'user-helper.ts'), helper],
  ]);
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: false,
    noEmit: true,
    types: ['node'],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getCurrentDirectory = () => ROOT;
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
  host.readFile = (f) => files.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, ...rest) => {
    const text = files.get(f);
    return text === undefined
      ? getSourceFile.call(host, f, lang, ...rest)
      : ts.createSourceFile(f, text, lang);
  };
  const program = ts.createProgram([...files.keys()], options, host);
  const problems = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file
      ? `${relative(ROOT, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
      : '';
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
  t.ok(
    program.getSourceFiles().some((f) => f.fileName === join(ROOT, 'dist', 'index.d.ts')),
    "'gsa-emu' resolves to dist/index.d.ts",
  );
  t.same(problems, [], 'no type errors');
});

t.test('from CommonJS: require works where Node loads ES modules so, as README says', async (t) => {
  // The package is ES modules only. README's "From code" says so and what CommonJS does:
  // import(), or require() on a Node that loads ES modules with it (20.19+; the flag
  // --no-experimental-require-module gives 20.18's behaviour, ERR_REQUIRE_ESM). A top-level
  // await anywhere in the package would break require (ERR_REQUIRE_ASYNC_MODULE).
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /## From code([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  t.match(section, /ES modules only/, 'README says the package is ES modules only');
  t.match(section, /import\('gsa-emu'\)/, 'README says how CommonJS loads it');
  t.match(section, /ERR_REQUIRE_ESM/, 'README names the error of a Node that cannot require it');
  const run = (flags: string[]) =>
    new Promise<string>((resolve) => {
      const code = `try { const m = require('gsa-emu'); console.log(typeof m.startEdge, typeof m.GsaError); } catch (e) { console.log(e.code); }`;
      execFile(
        process.execPath,
        [...flags, '--input-type=commonjs', '-e', code],
        { cwd: ROOT, timeout: 30_000 },
        (err, stdout, stderr) => resolve(err ? `${err.message}\n${stderr}` : stdout.trim()),
      );
    });
  const requireModule = (process.features as { require_module?: boolean }).require_module;
  if (requireModule) t.equal(await run([]), 'function function', 'require loads it');
  else t.equal(await run([]), 'ERR_REQUIRE_ESM', 'this Node cannot require ES modules');
  if (requireModule !== undefined) {
    t.equal(await run(['--no-experimental-require-module']), 'ERR_REQUIRE_ESM', 'without it');
  }
});

t.test('the packed tarball has what runs, not the addon build of the packer', async (t) => {
  // `npm install` builds the addon (scripts/build-addon.mjs, `node-gyp rebuild`); a
  // native/tun/build/ of the packer's machine (objects, Makefiles naming its paths, a
  // tun.node for its Node and CPU) must not come along. --ignore-scripts: no `prepare` build.
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      'npm',
      ['pack', '--dry-run', '--json', '--ignore-scripts'],
      { cwd: ROOT, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
  const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
  for (const need of [
    'dist/index.js',
    'dist/index.d.ts',
    'dist/cli/main.js',
    'data/tenants/default/forwarding-profiles.json',
    'data/platforms/ios.json',
    'data/edge/web-categories.json',
    'native/tun/binding.gyp',
    'native/tun/tun.c',
    'scripts/build-addon.mjs',
    'CHANGELOG.md',
  ]) {
    t.ok(files.includes(need), need);
  }
  t.same(
    files.filter((f) => f.startsWith('native/tun/build/')),
    [],
    'no native/tun/build/',
  );
  // The source maps (.js.map for stack traces and debuggers, .d.ts.map for an editor's
  // go-to-definition) name src/*.ts: those must come along, or they point at nothing.
  const maps = files.filter((f) => f.startsWith('dist/') && f.endsWith('.map'));
  t.ok(maps.includes('dist/index.d.ts.map'), 'declaration maps are packed');
  const missing = new Set<string>();
  for (const m of maps) {
    const { sources } = JSON.parse(readFileSync(join(ROOT, m), 'utf8')) as { sources: string[] };
    for (const s of sources) {
      const path = relative(ROOT, join(ROOT, dirname(m), s));
      if (!files.includes(path)) missing.add(`${m} -> ${path}`);
    }
  }
  t.same([...missing].slice(0, 5), [], `every source a map names is packed (${maps.length} maps)`);
  // What the shipped README links to (docs/usage.md, docs/decisions/, ...), and what
  // `gsa-emu up --help` points at, are in the package the user has.
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const linked = new Set([...readme.matchAll(/\]\((docs\/[^)#\s]*)/g)].map((x) => x[1]!));
  linked.add('docs/usage.md');
  for (const doc of linked) {
    t.ok(
      doc.endsWith('/') ? files.some((f) => f.startsWith(doc)) : files.includes(doc),
      `${doc} is packed`,
    );
  }
});
