/**
 * `gsa-emu up --tun` (host mode) end to end, without touching the host's routing: the
 * "host" is a namespace (hs) whose only link is a veth to a "remote" namespace (rm). rm
 * holds the edge (plain HTTP on 198.51.100.1, behind the default route: neither loopback
 * nor a connected network, so only the source binding keeps the client's tunnels out of
 * the TUN), the demo servers on its own loopback, a DNS server (198.51.100.1:53, hs's
 * resolv.conf) and a "direct" web server on 198.51.100.7 for bypassed flows. The CLI runs
 * in hs (`ip netns exec`), curl too. A loop would show as extra flows (the client's own
 * connection captured again) or a channel that never comes up.
 *
 * Skipped, saying what is missing, without root, /dev/net/tun, iproute2, curl, the addon or
 * dist/. The first test (no root: a clear error) runs anywhere dist/ exists.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { hostTunUnavailable } from '../../src/client/tun-host.js';
import { ipCmd as sh, simulatedHost, tsInNsArgs } from '../tun/helpers.js';
import { collect, until } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const HAS_DIST = existsSync(CLI) && existsSync(join(ROOT, 'dist', 'client', 'tun-host.js'));
const IS_ROOT = process.getuid?.() === 0;

t.test(
  'up --tun without root: one line naming what is missing, exit code 1, nothing started',
  {
    skip: !HAS_DIST
      ? 'dist is missing (npx tsc -p tsconfig.build.json)'
      : IS_ROOT && spawnSync('setpriv', ['--version']).status !== 0
        ? 'setpriv (util-linux) is missing to drop root'
        : false,
  },
  async (t) => {
    const state = await mkdtemp(join(tmpdir(), 'gsa-tun-up-noroot-'));
    t.teardown(() => rm(state, { recursive: true, force: true }));
    // `env -i`: a plain environment; tap's NODE_OPTIONS hooks (added to every spawn) would
    // write to .tap/ as the dropped user.
    const argv = [
      'env',
      '-i',
      `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
      `HOME=${state}`,
      process.execPath,
      CLI,
      'up',
      '--tun',
      '--state-dir',
      state,
      '--once',
    ];
    const c = IS_ROOT
      ? spawn(
          'setpriv',
          ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', ...argv],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        )
      : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await collect(c, 20_000);
    t.equal(r.code, 1, 'exit code 1');
    t.match(
      r.err,
      /^gsa-emu: TUN mode is unavailable: (needs root \(creating a TUN device and routing rules\)|not Linux|\/dev\/net\/tun is missing|the `ip` command|the native addon is not built)/,
    );
    t.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
    t.equal(r.out, '', 'no banner: nothing started');
    t.notOk(existsSync(join(state, 'client.json')), 'no state file');
  },
);

const missing =
  hostTunUnavailable() ??
  (spawnSync('curl', ['--version']).status === 0
    ? null
    : 'curl is missing (apt-get install curl)') ??
  (HAS_DIST ? null : 'dist is missing (npx tsc -p tsconfig.build.json)');

t.test(
  'up --tun in a simulated host: remote edge, bypass and DNS bound to the host address, no loop, clean teardown',
  { skip: missing ?? false, timeout: 100_000 },
  async (t) => {
    const rand = randomBytes(3).toString('hex');
    const hs = `gsaemu-${process.pid}-uh${rand}`;
    const rm_ = `gsaemu-${process.pid}-ur${rand}`;
    const etc = `/etc/netns/${hs}`;
    const state = await mkdtemp(join(tmpdir(), 'gsa-tun-up-'));
    const children = new Set<ChildProcess>();
    t.teardown(async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      spawnSync('ip', ['netns', 'del', hs]);
      spawnSync('ip', ['netns', 'del', rm_]);
      rmSync(etc, { recursive: true, force: true });
      await rm(state, { recursive: true, force: true });
    });
    simulatedHost(hs, rm_, `u${rand}`, ['198.51.100.1', '198.51.100.7']);
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'resolv.conf'), 'nameserver 198.51.100.1\n');

    // The remote side: edge, demo servers, DNS, a direct web server.
    const src = (f: string) => JSON.stringify(new URL(`../../src/${f}`, import.meta.url).href);
    const remoteDir = join(state, 'remote');
    const script = `
      import { createServer } from 'node:http';
      import { startDemo } from ${src('client/demo.ts')};
      import { startEdge } from ${src('edge/server.ts')};
      import { demoDnsHosts, startHostsDns } from ${src('client/tun-capture.ts')};
      const dir = ${JSON.stringify(remoteDir)};
      const demo = await startDemo({ stateDir: dir });
      const edge = await startEdge({ host: '198.51.100.1', port: 0, tls: false, stateDir: dir + '/edge',
        hostsMap: demo.edge.hostsMap, connectorHosts: demo.edge.connectorHosts, filtering: demo.edge.filtering,
        egress: { systemResolver: false, directIp: false }, logFile: dir + '/edge-traffic.jsonl',
        limits: { graceMs: 100, connectTimeoutMs: 2000 } });
      const dns = await startHostsDns({ ...demoDnsHosts(demo), 'bypass.example.test': '198.51.100.7' },
        { host: '198.51.100.1', port: 53 });
      const direct = createServer((q, s) => s.end('direct peer=' + q.socket.remoteAddress + '\\n'));
      await new Promise((r) => direct.listen(80, '198.51.100.7', r));
      console.log(JSON.stringify({ edge: edge.url }));
      process.on('SIGUSR1', () => { for (const x of edge.sessions) x.close(1001, 'test: reconnect'); });
      process.on('SIGTERM', async () => { direct.close(); await dns.close(); await edge.close({ graceMs: 50 }); await demo.close(); process.exit(0); });`;
    const remote = spawn('ip', tsInNsArgs(rm_, script), { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(remote);
    let remoteOut = '';
    remote.stdout!.on('data', (d) => {
      remoteOut += d;
    });
    const { edge: edgeUrl } = JSON.parse(
      await until(() => remoteOut.split('\n')[0]?.trim(), 'the remote side', 30_000),
    ) as { edge: string };

    const clientState = join(state, 'client');
    let upOut = '';
    let upErr = '';
    const startUp = (): ChildProcess => {
      upOut = '';
      upErr = '';
      const c = spawn(
        'ip',
        [
          'netns',
          'exec',
          hs,
          process.execPath,
          CLI,
          'up',
          '--tun',
          '--no-tty',
          '--edge',
          edgeUrl,
          '--state-dir',
          clientState,
          '--profile-poll',
          '500',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.add(c);
      c.stdout!.on('data', (d) => {
        upOut += d;
      });
      c.stderr!.on('data', (d) => {
        upErr += d;
      });
      return c;
    };
    const exited = (c: ChildProcess, ms: number) =>
      new Promise<number | null>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve(c.exitCode);
        const timer = setTimeout(() => resolve(null), ms);
        c.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
    const inHs = (cmd: string, args: string[]) =>
      collect(
        spawn('ip', ['netns', 'exec', hs, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
        15_000,
      );
    const curl = (args: string[]) => inHs('curl', ['-sS', '--max-time', '8', ...args]);
    const rules = () => sh(['-n', hs, '-4', 'rule', 'show']);
    const ourRules = () => rules().match(/^1000[0-3]:.*$/gm) ?? [];

    let up = startUp();
    await until(() => upOut.includes('Ctrl+C to stop.') || up.exitCode !== null, 'banner', 30_000);
    t.equal(up.exitCode, null, `up --tun is running ${upErr}`);
    t.match(upOut, /Global Secure Access Connected/, 'connected to the remote edge');
    t.match(upOut, /TUN\s+gsa0 10\.255\.0\.1\/30/);
    t.match(upOut, /own traffic bound to 192\.0\.2\.2/, 'source detected from the default route');
    t.match(upOut, /others -> 198\.51\.100\.1:53/, 'DNS upstream from resolv.conf');
    const admin = /admin API\s+http:\/\/(\S+)/.exec(upOut)![1]!;
    // The admin API wants the run's token (the token file next to client.json).
    const adminAuth = [
      '-H',
      `authorization: Bearer ${readFileSync(join(clientState, 'client.token'), 'utf8').trim()}`,
    ];
    t.same(
      ourRules(),
      [
        '10000:\tfrom 192.0.2.2 lookup main',
        '10001:\tfrom all ipproto udp dport 53 lookup 2025',
        '10002:\tfrom all lookup main suppress_prefixlength 0',
        '10003:\tfrom all lookup 2025',
      ],
      'the four rules',
    );
    t.match(
      sh(['-n', hs, '-4', 'route', 'get', '198.51.100.1']),
      /dev gsa0/,
      'an application to the edge address goes into the TUN',
    );

    const tunneled = await curl(['http://intranet.contoso.test/wiki']);
    t.equal(tunneled.code, 0, tunneled.err);
    t.match(tunneled.out, /gsa-emu demo: http:\/\/intranet\.contoso\.test\/wiki/);
    t.match(tunneled.out, /from the GSA edge/);
    const bypassed = await curl(['http://bypass.example.test/']);
    t.equal(bypassed.code, 0, bypassed.err);
    t.equal(
      bypassed.out,
      'direct peer=192.0.2.2\n',
      'bypass connected directly from the host address',
    );
    const blocked = await curl(['http://casino.test/']);
    t.equal(blocked.code, 56, `reset by the edge's web filtering: ${blocked.err}`);
    t.match(blocked.err, /reset/i);

    const flowsRun = await inHs('curl', [
      '-sS',
      '--max-time',
      '5',
      ...adminAuth,
      `http://${admin}/flows`,
    ]);
    t.equal(flowsRun.code, 0, flowsRun.err);
    const flows = (JSON.parse(flowsRun.out) as { flows: Array<Record<string, unknown>> }).flows;
    const by = (fqdn: string) => flows.filter((f) => f.destinationFqdn === fqdn);
    t.match(by('intranet.contoso.test'), [
      { action: 'Tunnel', channel: 'private', capture: 'tun' },
    ]);
    t.match(by('bypass.example.test'), [
      { action: 'Bypass', destinationIp: '198.51.100.7', capture: 'tun' },
    ]);
    t.match(by('casino.test'), [{ action: 'Block', capture: 'tun' }]);
    t.equal(flows.length, 3, 'exactly the three application flows: no own socket looped back');
    t.notOk(
      flows.some((f) => f.destinationIp === '198.51.100.1'),
      'the edge connections were never captured',
    );
    const intranet = by('intranet.contoso.test')[0]!;
    const edgeLog = readFileSync(join(remoteDir, 'edge-traffic.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    t.match(
      edgeLog.find((r) => r.connectionId === intranet.connectionId),
      { destinationFQDN: 'intranet.contoso.test', trafficType: 'private' },
      'the edge logged the tunneled flow with its FQDN',
    );
    // The edge drops every session: the client reconnects now that the routes are in place;
    // its new tunnels must not be captured either.
    const statusOf = async () => {
      const r = await inHs('curl', [
        '-sS',
        '--max-time',
        '5',
        ...adminAuth,
        `http://${admin}/status`,
      ]);
      return JSON.parse(r.out) as { state: string; channels: Array<{ up: boolean }> };
    };
    remote.kill('SIGUSR1');
    let st = await statusOf();
    for (let i = 0; i < 40 && st.state === 'Connected'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      st = await statusOf();
    }
    for (let i = 0; i < 100 && st.state !== 'Connected'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      st = await statusOf();
    }
    t.equal(st.state, 'Connected', 'reconnected to the edge');
    const after = await curl(['http://intranet.contoso.test/after-reconnect']);
    t.match(after.out, /from the GSA edge/, `tunneled over the new session ${after.err}`);
    const flows2 = (
      JSON.parse(
        (await inHs('curl', ['-sS', '--max-time', '5', ...adminAuth, `http://${admin}/flows`])).out,
      ) as {
        flows: Array<Record<string, unknown>>;
      }
    ).flows;
    t.equal(flows2.length, 4, 'one more application flow, nothing else');
    t.notOk(
      flows2.some((f) => f.destinationIp === '198.51.100.1'),
      'the new edge connections were not captured',
    );

    const hostnames = await inHs('curl', [
      '-sS',
      '--max-time',
      '5',
      ...adminAuth,
      `http://${admin}/hostnames`,
    ]);
    const rows = (JSON.parse(hostnames.out) as { hostnames: Array<{ fqdn: string }> }).hostnames;
    t.match(
      rows.find((h) => h.fqdn === 'intranet.contoso.test'),
      { acquired: true, generatedIp: /^6\.6\./ },
      '/hostnames: the acquisition table',
    );
    // The same table as `gsa-emu hostnames` prints it: the acquired row with its 6.6.x.y.
    const table = await inHs(process.execPath, [CLI, 'hostnames', '--state-dir', clientState]);
    t.equal(table.code, 0, `gsa-emu hostnames: ${table.err}`);
    t.match(table.out, /^TIME\s+FQDN\s+GENERATED IP\s+ACQUIRED\s+ORIGINAL IP\n/);
    t.match(table.out, /\n\d\d:\d\d:\d\dZ\s+intranet\.contoso\.test\s+6\.6\.\d+\.\d+\s+Y\b/);

    // A second `up --tun` in the same namespace is refused (the host-wide lock), changing nothing.
    const second = await collect(
      spawn(
        'ip',
        ['netns', 'exec', hs, process.execPath, CLI, 'up', '--tun', '--once', '--edge', edgeUrl],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, GSA_EMU_STATE_DIR: join(state, 'second') },
        },
      ),
      20_000,
    );
    t.equal(second.code, 1);
    t.match(second.err, /in use by `gsa-emu up --tun` \(pid \d+/);
    t.equal(ourRules().length, 4, 'rules untouched');

    // SIGTERM: stops, removes rules, routes and the device.
    up.kill('SIGTERM');
    t.equal(await exited(up, 15_000), 0, 'exit code 0 after SIGTERM');
    t.match(upOut, /stopped\. logs: /);
    t.same(ourRules(), [], 'rules removed');
    t.equal(sh(['-n', hs, '-4', 'route', 'show', 'table', '2025']).trim(), '', 'table 2025 empty');
    t.notMatch(sh(['-n', hs, 'link', 'show']), /gsa0/, 'TUN device gone');
    t.notOk(existsSync(join(clientState, 'client.json')), 'state file removed');
    t.notOk(
      existsSync(`/run/gsa-emu/host-tun-net-${statSync(`/var/run/netns/${hs}`).ino}.lock`),
      'lock released',
    );

    // SIGKILL leaves the rules; the next run removes them (stale lock) and Ctrl+C cleans up.
    up = startUp();
    await until(() => upOut.includes('Ctrl+C to stop.') || up.exitCode !== null, 'banner', 30_000);
    up.kill('SIGKILL');
    await exited(up, 5000);
    t.equal(ourRules().length, 4, 'a killed run leaves its rules');
    up = startUp();
    await until(() => upOut.includes('Ctrl+C to stop.') || up.exitCode !== null, 'banner', 30_000);
    t.equal(ourRules().length, 4, 'the next run replaced them (no duplicates)');
    const again = await curl(['http://intranet.contoso.test/']);
    t.match(again.out, /from the GSA edge/, 'and works');
    up.kill('SIGINT');
    t.equal(await exited(up, 15_000), 0, 'exit code 0 after SIGINT');
    t.same(ourRules(), [], 'rules removed after Ctrl+C');

    remote.kill('SIGTERM');
    await exited(remote, 5000);
  },
);

t.test(
  'up --tun with the in-process demo edge: the host reaches the demo world through the TUN',
  { skip: missing ?? false, timeout: 60_000 },
  async (t) => {
    const rand = randomBytes(3).toString('hex');
    const hs = `gsaemu-${process.pid}-ud${rand}`;
    const state = await mkdtemp(join(tmpdir(), 'gsa-tun-up-demo-'));
    let up: ChildProcess | null = null;
    t.teardown(async () => {
      if (up && up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      spawnSync('ip', ['netns', 'del', hs]);
      await rm(state, { recursive: true, force: true });
    });
    sh(['netns', 'add', hs]);
    sh(['-n', hs, 'link', 'set', 'lo', 'up']);
    let out = '';
    up = spawn(
      'ip',
      ['netns', 'exec', hs, process.execPath, CLI, 'up', '--tun', '--no-tty', '--state-dir', state],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const u = up;
    let err = '';
    u.stdout!.on('data', (d) => {
      out += d;
    });
    u.stderr!.on('data', (d) => {
      err += d;
    });
    await until(() => out.includes('Ctrl+C to stop.') || u.exitCode !== null, 'banner', 30_000);
    t.equal(u.exitCode, null, err);
    t.match(out, /own traffic loopback only/);
    t.match(out, /SOCKS5\s+off/, 'proxies off with --tun');
    t.match(
      out,
      /try \(any application on this host is captured\):[\s\S]*gsa-emu hostnames --state-dir /,
      'the banner suggests the hostname acquisition table',
    );
    const run = (args: string[]) =>
      collect(
        spawn('ip', ['netns', 'exec', hs, 'curl', '-sS', '--max-time', '8', ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
        15_000,
      );
    const r = await run(['http://intranet.contoso.test/']);
    t.match(r.out, /from the GSA edge/, r.err);
    const b = await run(['http://bypass.example.test/']);
    t.match(b.out, /peer: 127\.0\.0\.3:\d+, direct from the client/, b.err);
    t.notMatch(
      sh(['-n', hs, '-4', 'rule', 'show']),
      /^10000:/m,
      'no source rule: nothing of the emulator leaves loopback',
    );
    u.kill('SIGTERM');
    await until(() => u.exitCode !== null, 'exit', 15_000);
    t.equal(u.exitCode, 0);
    t.notMatch(sh(['-n', hs, '-4', 'rule', 'show']), /^1000[0-3]:/m, 'rules removed');
  },
);
