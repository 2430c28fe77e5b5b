/**
 * `--add-host name=address` (and the config key `hosts`): the user's own test servers by
 * name. Parsing and config errors; then end to end through `startWorld` (what `gsa-emu up`
 * runs) with a server of the test's own on loopback: a private name is tunneled and the
 * in-process edge connects to the address given, a name no rule acquires resolves to it
 * and goes direct, and with a remote edge an internet name is classified by the address
 * given (Default Acquire 0.0.0.0/0 on TCP 80) and tunneled. `up` refuses `--add-host`
 * with `--tun` and a remote `--edge` (nothing would use it).
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SocksClient } from 'socks';
import t, { type Test } from 'tap';
import { readUpConfig, up } from '../../src/cli/commands/up.js';
import {
  checkHostsConfig,
  ipv4Hosts,
  overlayHosts,
  parseAddHosts,
} from '../../src/cli/hosts-option.js';
import { startWorld, type World } from '../../src/cli/world.js';
import { startEdge } from '../../src/edge/server.js';
import { ConfigError } from '../../src/errors.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import { upOnce } from '../util/up-in-process.js';
import { until } from './helpers.js';

t.test('parseAddHosts: name=address, lowercased, leading wildcard, IPv6', async (t) => {
  t.same(parseAddHosts(['API.Contoso.TEST.=127.0.0.5', '*.mine.test=::1', 'a.test=10.0.0.1']), {
    'api.contoso.test': '127.0.0.5',
    '*.mine.test': '::1',
    'a.test': '10.0.0.1',
  });
  t.same(parseAddHosts(['a.test=10.0.0.1', 'a.test=10.0.0.2']), { 'a.test': '10.0.0.2' });
  const bad: Array<[string, RegExp]> = [
    ['a.test', /expected name=address/],
    ['127.0.0.1=127.0.0.2', /is an address, not a name/],
    ['a.*.test=127.0.0.1', /only a leading "\*\." wildcard/],
    ['*=127.0.0.1', /matches every name/],
    ['a b.test=127.0.0.1', /not a host name/],
    ['999.1.1.1=127.0.0.1', /not a host name/],
    ['a.test=127.0.0.1:8080', /not an IPv4 or IPv6 address \(no port/],
    ['a.test=localhost', /not an IPv4 or IPv6 address/],
    ['a.test=', /not an IPv4 or IPv6 address/],
  ];
  for (const [entry, re] of bad) {
    t.throws(() => parseAddHosts([entry]), { code: 'GSA_ERR_USAGE', message: re }, entry);
    // The message names the whole entry (of several --add-host flags, the bad one).
    t.throws(
      () => parseAddHosts(['ok.test=127.0.0.1', entry]),
      { message: `--add-host "${entry}"` },
      `${entry}: named`,
    );
  }
  t.same(ipv4Hosts({ 'a.test': '10.0.0.1', 'b.test': '::1' }), { 'a.test': '10.0.0.1' });
  // A demo name the user takes over loses its port-specific entries (they would win).
  t.same(
    overlayHosts(
      {
        'news.test:80': '127.0.0.1:1001',
        'news.test:443': '127.0.0.1:1002',
        'shop.test:80': '127.0.0.1:1001',
        '127.77.0.5:3389': '127.0.0.1:1003',
      },
      { 'news.test': '127.0.0.5' },
    ),
    {
      'shop.test:80': '127.0.0.1:1001',
      '127.77.0.5:3389': '127.0.0.1:1003',
      'news.test': '127.0.0.5',
    },
  );
});

t.test('checkHostsConfig and readUpConfig: every bad entry named by its path', async (t) => {
  t.same(checkHostsConfig({ 'A.test': '127.0.0.1' }, 'f'), { 'a.test': '127.0.0.1' });
  t.throws(() => checkHostsConfig(['a.test=1.2.3.4'], 'f'), {
    message: /hosts: must be an object/,
  });
  const err = t.throws(() =>
    checkHostsConfig({ 'ok.test': '127.0.0.1', 'x y': '127.0.0.1', 'n.test': 5 }, 'f'),
  ) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.same(
    err.issues.map((i) => i.path),
    ['hosts["x y"]', 'hosts["n.test"]'],
  );

  const dir = await mkdtemp(join(tmpdir(), 'gsa-add-host-cfg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const good = join(dir, 'up.yaml');
  await writeFile(good, 'socksPort: 1081\nhosts:\n  api.contoso.test: 127.0.0.5\n');
  t.same(readUpConfig(good), { socksPort: '1081', hosts: { 'api.contoso.test': '127.0.0.5' } });
  const bad = join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify({ hosts: { 'a.test': 'nowhere' }, plainEdge: 'yes' }));
  const e2 = t.throws(() => readUpConfig(bad)) as ConfigError;
  t.same(
    e2.issues.map((i) => i.path),
    ['hosts["a.test"]', 'plainEdge'],
  );
});

t.test('up refuses a bad --add-host, and --add-host with --tun and a remote --edge', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-add-host-up-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.rejects(up({ stateDir: dir, once: true, tty: false, addHost: ['nope'] }), {
    code: 'GSA_ERR_USAGE',
    message: /--add-host "nope": expected name=address/,
  });
  await t.rejects(
    up({
      stateDir: dir,
      once: true,
      tty: false,
      tun: true,
      edge: 'https://127.0.0.1:1',
      hosts: { 'a.test': '10.0.0.1' },
    }),
    { code: 'GSA_ERR_USAGE', message: /--add-host with --tun and a remote --edge/ },
  );
});

/** A server that answers each connection with the peer address it saw, then closes. */
async function peerServer(t: Test, host: string, ports: [number, number]): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = ports[0] + Math.floor(Math.random() * (ports[1] - ports[0] + 1));
    const s = net.createServer((c) => {
      c.on('error', () => {});
      c.end(`peer ${c.remoteAddress}`);
    });
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, host, () => resolve(true));
    });
    if (ok) {
      t.teardown(() => new Promise<void>((r) => s.close(() => r())));
      return (s.address() as AddressInfo).port;
    }
  }
  throw new Error(`no free port in ${ports[0]}-${ports[1]} on ${host}`);
}

/** SOCKS5 CONNECT by name through `world`; resolves with what the destination said. */
async function viaSocks(world: World, host: string, port: number): Promise<string> {
  const [h, p] = world.client.addresses.socks!.split(':');
  const info = await SocksClient.createConnection({
    proxy: { host: h!, port: Number(p), type: 5 },
    command: 'connect',
    destination: { host, port },
    timeout: 5000,
  });
  let text = '';
  info.socket.on('data', (d) => {
    text += d;
  });
  await once(info.socket, 'end');
  info.socket.destroy();
  return text;
}

/** The client's flow to `name`, once recorded. */
function flowTo(world: World, name: string): Promise<FlowRecord> {
  return until(
    () => world.client.flows.list().find((x) => x.destinationFqdn === name),
    `flow to ${name}`,
  );
}

const LISTEN = { socksPort: 0, httpPort: null, pacPort: null, adminPort: null } as const;

t.test(
  'in-process edge: a private name tunneled to the address given, another bypassed',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-add-host-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // Quick Access *.contoso.test covers TCP 8000-8999 in the default tenant.
    const port = await peerServer(t, '127.0.0.1', [8000, 8999]);
    const world = await startWorld({
      run: 'netns', // per-run state file names: no lock on the folder
      stateDir: dir,
      listen: LISTEN,
      processLookup: false,
      edgeGraceMs: 100,
      hosts: { 'api.contoso.test': '127.0.0.1', '*.mine.test': '127.0.0.1' },
    });
    t.teardown(() => world.stop());
    await world.client.waitConnected(10_000);

    t.equal(await viaSocks(world, 'api.contoso.test', port), 'peer 127.0.0.1', 'via the edge');
    const f = await flowTo(world, 'api.contoso.test');
    t.equal(f.action, 'Tunnel');
    t.equal(f.channel, 'private');

    // No rule acquires *.mine.test: the client resolves it (the user's entry), Default
    // Bypass 127.0.0.0/8 sends it direct, from the demo's bypass source address.
    t.equal(await viaSocks(world, 'x.mine.test', port), 'peer 127.0.0.3', 'direct');
    const b = await flowTo(world, 'x.mine.test');
    t.equal(b.action, 'Bypass');
    t.equal(b.destinationIp, '127.0.0.1');
  },
);

t.test('remote edge: an internet name classified by the address given', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-add-host-remote-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await peerServer(t, '127.0.0.1', [20000, 40000]);
  const edge = await startEdge({
    stateDir: join(dir, 'edge'),
    hostsMap: { 'www.example.com': `127.0.0.1:${port}` },
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 100 },
  });
  t.teardown(() => edge.close({ graceMs: 100 }));
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, edge.caPem!);
  const world = await startWorld({
    run: 'netns',
    stateDir: join(dir, 'client'),
    edge: edge.url,
    edgeCa: caFile,
    listen: LISTEN,
    processLookup: false,
    hosts: { 'www.example.com': '93.184.215.14' },
  });
  t.teardown(() => world.stop());
  await world.client.waitConnected(10_000);
  t.equal(await viaSocks(world, 'www.example.com', 80), 'peer 127.0.0.1');
  const f = await flowTo(world, 'www.example.com');
  t.equal(f.action, 'Tunnel');
  t.equal(f.channel, 'internet');
  t.equal(f.ruleId !== null, true, 'acquired by an address rule');
  const rec = await until(
    () => edge.logs.all().find((r) => r.connectionId === f.connectionId),
    'edge record',
  );
  t.equal(rec.destinationFQDN, 'www.example.com');

  // `up` itself with the remote edge: the banner says how to try a name of one's own.
  const text = await upOnce({
    stateDir: join(dir, 'up'),
    edge: edge.url,
    edgeCa: caFile,
    addHost: ['www.example.com=93.184.215.14'],
  });
  t.match(text, /Global Secure Access Connected/);
  t.match(text, /try \(your own names: resolved by --add-host first, then the system resolver/);
  t.match(text, /curl --socks5-hostname 127\.0\.0\.1:\d+ http:\/\/<name>\//);
  t.notMatch(text, /intranet\.contoso\.test/, 'no demo names without the demo');
  t.match(text, /gsa-emu explain --running <name>/);
});
