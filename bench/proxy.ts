/**
 * SOCKS proxy benchmark, on loopback, side by side in one run:
 *   - throughput: one stream, and 8 parallel streams (download from a TCP source);
 *   - sequential connections per second (SOCKS5 handshake + CONNECT + 1 byte + close);
 * for: direct loopback (no proxy), gsa-emu bypassed flows, gsa-emu tunneled flows (client
 * -> edge over ws and over wss, edge -> destination), and, when installed, microsocks,
 * dante and v2ray (SOCKS -> freedom, and the SOCKS -> VLESS/ws -> freedom chain, with and without v2ray's mux).
 *
 * Processes: the load generator and the TCP source run here; the gsa-emu client, the
 * gsa-emu edge and each peer proxy run in processes of their own. Everything listens on
 * 127.0.0.1. Medians of RUNS runs (default 3), interleaved: every row's processes stay up
 * and each round measures every row once, so the host's drift hits all rows alike.
 *
 *   npm run bench:proxy             (builds with tsconfig.bench.json first)
 *   QUICK=1 npm run bench:proxy     (smaller transfers, fewer connections)
 *   RUNS=3 CONNS=1000 ONLY=<regex of row names> PHASES=single,multi,conns CLIENT=curl
 *   CPU_REPORT=1 ALT=<other build's dist-bench/bench/proxy.js>: docs/benchmarks.md, "Settings".
 * Peers that are not installed are skipped with a line saying what to install.
 *
 * Writes bench/results/proxy.json and the "Proxy" section of docs/benchmarks.md (with QUICK=1,
 * bench/results/proxy.quick.tmp.json instead).
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startClient } from '../src/client/client.js';
import { startEdge } from '../src/edge/server.js';
import { type EdgeThreadOptions, startEdgeThread } from '../src/edge/thread.js';
import {
  connRate,
  curlThroughput,
  median,
  type Opener,
  openDirect,
  startSource,
  type Target,
  throughput,
  viaSocks,
} from './load-gen.js';
import {
  BenchSettingError,
  benchCommand,
  choiceSetting,
  flagSetting,
  helpRequested,
  interruptible,
  intSetting,
  onExit,
  regexSetting,
  setSetting,
  settingsOrExit,
  stopOnExit,
  writeQuickResults,
} from './settings.js';

helpRequested(`
npm run bench:proxy: download GB/s (1 and 8 streams) and SOCKS5 connections/s through
gsa-emu (bypassed, tunneled) and, when installed, microsocks, dante, v2ray and the floors.
  RUNS=3           rounds, medians reported (1 with QUICK)
  CONNS=1000       sequential connections per round (300 with QUICK)
  QUICK=1          smaller transfers, fewer warm-up connections
  ONLY=<regex>     rows whose name matches (nothing written)
  PHASES=single,multi,conns   measurements to run (a subset: nothing written)
  CLIENT=curl      throughput with curl instead of the Node.js generator
  CPU_REPORT=1     CPU per connection of each process
  ALT=<other build>/dist-bench/bench/proxy.js   A/B rows of another build
  PROCESS_LOOKUP=1 gsa-emu's /proc lookup of the process column on (off by default)
  CPU_PROF=<dir>, CHILD_ARGS=...   CPU profiles of, and Node options for, gsa-emu's processes
A quick check (about 1 min): QUICK=1 npm run bench:proxy (its figures go to bench/results/proxy.quick.tmp.json, not over the recorded ones)
`);
// The benchmark, not one of its child roles (edge, client, world).
if (process.argv[2] === undefined) interruptible();
const QUICK = settingsOrExit('bench:proxy', () => flagSetting(process.env, 'QUICK'));
const CPU_REPORT = settingsOrExit('bench:proxy', () => flagSetting(process.env, 'CPU_REPORT'));
const PROCESS_LOOKUP = settingsOrExit('bench:proxy', () =>
  flagSetting(process.env, 'PROCESS_LOOKUP'),
);
const env = process.env;
const RUNS = settingsOrExit('bench:proxy', () => intSetting(env, 'RUNS', QUICK ? 1 : 3));
const SINGLE = (QUICK ? 128 : 512) * 2 ** 20;
const MULTI = (QUICK ? 32 : 128) * 2 ** 20; // per stream, 8 streams
const CONNS = settingsOrExit('bench:proxy', () => intSetting(env, 'CONNS', QUICK ? 300 : 1000));
/** Unrecorded connections per row before its recorded runs (see warmUp). */
const WARM_CONNS = QUICK ? 1000 : 4000;
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

// ------------------------------------------------------------------------------------------
// Child roles: the gsa-emu edge and the gsa-emu client, each in its own process.

/** CPU_REPORT=1: each gsa-emu process prints the CPU time it used, on exit. */
function cpuReport(role: string): void {
  if (!CPU_REPORT) return;
  const u = process.resourceUsage();
  process.stderr.write(
    `${role}: user ${(u.userCPUTime / 1e6).toFixed(2)} s, system ${(u.systemCPUTime / 1e6).toFixed(2)} s, ${u.voluntaryContextSwitches} voluntary context switches\n`,
  );
}

/** The edge: bench.contoso.test:8000 (a private app) is the source on 127.0.0.1. */
function benchEdgeOptions(tls: boolean, srcPort: number, dir: string): EdgeThreadOptions {
  return {
    stateDir: dir,
    tls,
    persistKey: false,
    connectorHosts: { 'bench.contoso.test:8000': `127.0.0.1:${srcPort}` },
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 100 },
  };
}

function benchEdge(tls: boolean, srcPort: number, dir: string) {
  return startEdge(benchEdgeOptions(tls, srcPort, dir));
}

/** A client with only a SOCKS listener, its profile from the edge, connected. */
async function benchClient(url: string, ca: string | null) {
  const client = await startClient({
    edge: { url, ca },
    tenant: 'edge',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    resolver: { system: false },
    limits: { keepClosedFlows: 100 },
    // The data path only: the process column's /proc lookup (off the data path, at most
    // about a tenth of a core) is left out unless PROCESS_LOOKUP=1.
    processLookup: PROCESS_LOOKUP,
  });
  await client.waitConnected(10_000);
  return client;
}

async function roleEdge(): Promise<void> {
  const [tls, srcPort, dir] = [
    process.argv[3] === 'tls',
    Number(process.argv[4]),
    process.argv[5]!,
  ];
  const edge = await benchEdge(tls, srcPort, dir);
  process.send!({ url: edge.url, ca: edge.caPem });
  process.on('disconnect', () => {
    cpuReport('edge');
    void edge.kill().then(() => process.exit(0));
  });
}

async function roleClient(): Promise<void> {
  const url = process.argv[3]!;
  const caFile = process.argv[4];
  const ca = caFile && caFile !== '-' ? readFileSync(caFile, 'utf8') : null;
  const client = await benchClient(url, ca);
  process.send!({ socks: client.addresses.socks });
  process.on('disconnect', () => {
    cpuReport('client');
    void client.close().then(() => process.exit(0));
  });
}

/**
 * The edge and the client in one process: the edge on its own worker thread, as `gsa-emu
 * up` runs it (`thread`), or on the client's thread (`same`, for comparison).
 */
async function roleWorld(): Promise<void> {
  const [tls, srcPort, dir, where] = [
    process.argv[3] === 'tls',
    Number(process.argv[4]),
    process.argv[5]!,
    process.argv[6] === 'same' ? 'same' : 'thread',
  ];
  const edge =
    where === 'same'
      ? await benchEdge(tls, srcPort, dir)
      : await startEdgeThread({ ...benchEdgeOptions(tls, srcPort, dir) });
  const client = await benchClient(edge.url, edge.caPem ?? null);
  process.send!({ socks: client.addresses.socks });
  process.on('disconnect', () => {
    // resourceUsage() counts every thread of the process.
    cpuReport('client+edge');
    void client
      .close()
      .then(() => edge.close({ graceMs: 0 }))
      .then(() => process.exit(0));
  });
}

// ------------------------------------------------------------------------------------------
// Peers

async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as AddressInfo).port;
  s.close();
  return p;
}

async function waitPort(port: number, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} never opened`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

interface Peer {
  name: string;
  socks: Target;
  procs: ChildProcess[];
  version: string;
}

/**
 * The floor for any Node.js proxy here: a SOCKS5 CONNECT relay in ~30 lines (no policy, no
 * flow table, no error handling beyond closing), run with this same node binary.
 */
async function startNodeFloor(): Promise<Peer | null> {
  const port = await freePort();
  const p = stopOnExit(
    spawn(process.execPath, [join(here, 'node-floor-socks.js'), String(port)], {
      stdio: 'ignore',
    }),
  );
  await waitPort(port);
  return {
    name: 'node floor (minimal SOCKS relay)',
    socks: { host: '127.0.0.1', port },
    procs: [p],
    version: `bench/node-floor-socks.ts, ${process.version}`,
  };
}

/**
 * The floor for the tunneled topology in Node.js: bench/node-floor-tunnel.ts, a SOCKS client
 * process and an edge process with one `ws` WebSocket between them carrying a minimal
 * multiplexed tunnel (tunnel-floor.c's frames and hops; no policy, no flow table), run with
 * this same node binary. `early`: the client answers CONNECT once it has sent OPEN.
 */
async function startNodeTunnelFloor(early: boolean): Promise<Peer | null> {
  const script = join(here, 'node-floor-tunnel.js');
  const tunnelPort = await freePort();
  let port = await freePort();
  while (port === tunnelPort) port = await freePort();
  // The client connects to the edge at startup (retrying) and opens its SOCKS port after.
  const edge = stopOnExit(
    spawn(process.execPath, [script, 'edge', String(tunnelPort)], { stdio: 'ignore' }),
  );
  const client = stopOnExit(
    spawn(
      process.execPath,
      [script, 'client', String(port), String(tunnelPort), ...(early ? ['early'] : [])],
      { stdio: 'ignore' },
    ),
  );
  await waitPort(port);
  return {
    name: early
      ? 'node tunnel floor, early reply'
      : 'node tunnel floor (bench/node-floor-tunnel.ts)',
    socks: { host: '127.0.0.1', port },
    procs: [client, edge],
    version: `two Node.js processes, ws mux, same hops as tunneled, ${process.version}${early ? '; SOCKS reply before the edge connects' : ''}`,
  };
}

/**
 * The floor for the tunneled topology, independent of Node.js: bench/tunnel-floor.c, a SOCKS
 * client process and an edge process in C (epoll loops) with one WebSocket-framed
 * multiplexed tunnel between them, the same serial hops as gsa-emu's tunneled path.
 * `early`: the client answers CONNECT once it has sent OPEN, before the edge connects (as
 * v2ray does). Compiled with cc into `dir` on first use; skipped without cc.
 */
async function startTunnelFloor(dir: string, early: boolean): Promise<Peer | null> {
  const cc = which('cc');
  if (!cc) return notInstalled('the C tunnel floor rows', 'cc', 'gcc');
  const bin = join(dir, 'tunnel-floor');
  if (!existsSync(bin)) {
    const src = join(root, 'bench', 'tunnel-floor.c');
    const r = spawnSync(cc, ['-O2', '-o', bin, src], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cc bench/tunnel-floor.c failed:\n${r.stderr}`);
  }
  const tunnelPort = await freePort();
  let port = await freePort();
  while (port === tunnelPort) port = await freePort();
  // The client connects to the edge at startup (retrying) and opens its SOCKS port after.
  const edge = stopOnExit(spawn(bin, ['edge', String(tunnelPort)], { stdio: 'ignore' }));
  const client = stopOnExit(
    spawn(bin, ['client', String(port), String(tunnelPort), ...(early ? ['early'] : [])], {
      stdio: 'ignore',
    }),
  );
  await waitPort(port);
  return {
    name: early ? 'C tunnel floor, early reply' : 'C tunnel floor (bench/tunnel-floor.c)',
    socks: { host: '127.0.0.1', port },
    procs: [client, edge],
    version: `two C processes, ws-framed mux, same hops as tunneled${early ? '; SOCKS reply before the edge connects' : ''}`,
  };
}

async function startMicrosocks(): Promise<Peer | null> {
  const bin = which('microsocks');
  if (!bin) return notInstalled('microsocks', 'microsocks', 'microsocks');
  const port = await freePort();
  const p = stopOnExit(spawn(bin, ['-i', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' }));
  await waitPort(port);
  return {
    name: 'microsocks',
    socks: { host: '127.0.0.1', port },
    procs: [p],
    version: 'microsocks (Debian 1.0.3)',
  };
}

async function startDante(dir: string): Promise<Peer | null> {
  const bin = which('danted');
  if (!bin) return notInstalled('dante', 'danted', 'dante-server');
  const port = await freePort();
  const conf = join(dir, 'danted.conf');
  writeFileSync(
    conf,
    [
      'logoutput: /dev/null',
      `internal: 127.0.0.1 port = ${port}`,
      'external: 127.0.0.1',
      'clientmethod: none',
      'socksmethod: none',
      'user.privileged: root',
      'user.unprivileged: nobody',
      'client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
      'socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }',
      '',
    ].join('\n'),
  );
  const p = stopOnExit(
    spawn(bin, ['-f', conf, '-p', join(dir, 'danted.pid')], { stdio: 'ignore' }),
  );
  try {
    await waitPort(port);
  } catch (err) {
    p.kill();
    return peerFailed('dante', err);
  }
  const v = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return {
    name: 'dante',
    socks: { host: '127.0.0.1', port },
    procs: [p],
    version: (v.stdout || v.stderr).trim().split('\n')[0] ?? 'dante',
  };
}

/** The v2ray rows' names, by mode (startV2ray). */
const V2RAY_ROWS = {
  freedom: 'v2ray socks->freedom',
  chain: 'v2ray socks->vless/ws->freedom',
  mux: 'v2ray socks->vless/ws (mux)->freedom',
} as const;

/** Peers installed here that did not start (named in the report, not silently left out). */
const failedPeers: string[] = [];

/** Peers skipped because their program is not installed (said once each, and in the report). */
const missingPeers: string[] = [];

/** A peer whose program is not on PATH: said on stderr (once) and in the report. */
function notInstalled(what: string, program: string, pkg: string): null {
  const line = `${what}: ${program} not installed (apt-get install ${pkg})`;
  if (!missingPeers.includes(line)) {
    missingPeers.push(line);
    process.stderr.write(`skipped: ${line}\n`);
  }
  return null;
}

/** A peer that is installed but did not start: said on stderr and in the report. */
function peerFailed(name: string, err: unknown): null {
  const why = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${name}: installed, but did not start: ${why}\n`);
  failedPeers.push(`${name} (${why})`);
  return null;
}

/**
 * v2ray as SOCKS -> freedom (`freedom`), or as the issue's SOCKS -> VLESS over WebSocket ->
 * freedom chain (`chain`: a new WebSocket per flow, v2ray's default), or that chain with
 * v2ray's mux (`mux`: flows multiplexed over few WebSockets, as gsa-emu's one tunnel).
 */
async function startV2ray(dir: string, mode: 'freedom' | 'chain' | 'mux'): Promise<Peer | null> {
  const chain = mode !== 'freedom';
  const bin = which('v2ray');
  if (!bin) return notInstalled('the v2ray rows', 'v2ray', 'v2ray');
  const socksPort = await freePort();
  const procs: ChildProcess[] = [];
  const run = async (name: string, cfg: object, port: number): Promise<void> => {
    const f = join(dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(cfg));
    const p = stopOnExit(spawn(bin, ['-config', f], { stdio: 'ignore' }));
    procs.push(p);
    await waitPort(port);
  };
  const socksIn = {
    listen: '127.0.0.1',
    port: socksPort,
    protocol: 'socks',
    settings: { auth: 'noauth', udp: false },
  };
  const log = { loglevel: 'none' };
  try {
    if (!chain) {
      await run(
        'v2ray-socks',
        { log, inbounds: [socksIn], outbounds: [{ protocol: 'freedom' }] },
        socksPort,
      );
    } else {
      const id = randomUUID();
      const wsPort = await freePort();
      const ws = { network: 'ws', wsSettings: { path: '/ws' } };
      await run(
        'v2ray-server',
        {
          log,
          inbounds: [
            {
              listen: '127.0.0.1',
              port: wsPort,
              protocol: 'vless',
              settings: { clients: [{ id }], decryption: 'none' },
              streamSettings: ws,
            },
          ],
          outbounds: [{ protocol: 'freedom' }],
        },
        wsPort,
      );
      await run(
        'v2ray-client',
        {
          log,
          inbounds: [socksIn],
          outbounds: [
            {
              protocol: 'vless',
              settings: {
                vnext: [
                  { address: '127.0.0.1', port: wsPort, users: [{ id, encryption: 'none' }] },
                ],
              },
              streamSettings: ws,
              ...(mode === 'mux' ? { mux: { enabled: true, concurrency: 8 } } : {}),
            },
          ],
        },
        socksPort,
      );
    }
  } catch (err) {
    for (const p of procs) p.kill();
    return peerFailed(`v2ray (${mode})`, err);
  }
  const v = spawnSync(bin, ['version'], { encoding: 'utf8' });
  return {
    name: V2RAY_ROWS[mode],
    socks: { host: '127.0.0.1', port: socksPort },
    procs,
    version: v.stdout.split('\n')[0]?.trim() ?? 'v2ray',
  };
}

function forkRole(
  args: string[],
  script: string = fileURLToPath(import.meta.url),
): Promise<{ child: ChildProcess; msg: Record<string, string> }> {
  const child = fork(script, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // CPU_PROF=dir writes a V8 CPU profile of each gsa-emu process (client, edge) there;
    // CHILD_ARGS passes Node options to them (e.g. --perf-basic-prof for `perf record`).
    execArgv: [
      ...(process.env.CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CPU_PROF}`] : []),
      ...(process.env.CHILD_ARGS ? process.env.CHILD_ARGS.split(' ').filter(Boolean) : []),
    ],
  });
  stopOnExit(child);
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ child, msg: m as Record<string, string> }));
    child.once('exit', (c) => reject(new Error(`${args[0]} exited ${c}`)));
  });
}

// ------------------------------------------------------------------------------------------

interface Row {
  path: string;
  single: number;
  multi: number;
  conns: number;
  note: string;
}

/**
 * CLIENT=curl: the throughput phases download with curl, as the issue measured (2 GiB in one
 * stream; 8 streams of 256 MiB), instead of the Node.js load generator. Connections are
 * always the generator's (a curl process per connection would measure curl's start-up).
 */
const CURL =
  settingsOrExit('bench:proxy', () => choiceSetting(env, 'CLIENT', ['curl'] as const)) === 'curl';
const CURL_SINGLE = (QUICK ? 256 : 2048) * 2 ** 20;

/** ONLY=regex measures only the rows whose name matches (for profiling one path). */
const ONLY = settingsOrExit('bench:proxy', () => regexSetting(env, 'ONLY'));
/** PHASES=single,multi,conns (default all) picks the measurements (with ONLY, for profiling). */
const PHASES = settingsOrExit('bench:proxy', () =>
  setSetting(env, 'PHASES', ['single', 'multi', 'conns']),
);

/** One row of the table: a path to measure and what it measured so far. */
interface Entry {
  name: string;
  open: Opener;
  dst: Target;
  note: string;
  /** The processes whose CPU per connection CPU_REPORT prints (none: the kernel only). */
  procs: Array<{ role: string; pid: number }>;
  s: number[];
  m: number[];
  c: number[];
}

/** Warm up (JIT, sessions, pools): one unrecorded run of each measurement. */
async function warmUp(e: Entry): Promise<void> {
  await throughput(e.open, e.dst, 1, 16 * 2 ** 20);
  // The generator's and every Node.js proxy's CPU per connection falls for the first few
  // thousand connections (gsa-emu's client: ~1,100 us over the first 1,000, ~350 us after
  // 4,000; CPU_REPORT=1 shows it).
  if (PHASES.has('conns')) await connRate(e.open, e.dst, WARM_CONNS, e.procs);
  else await connRate(e.open, e.dst, 50, e.procs);
}

/** One recorded run of each measurement. */
async function measureOnce(e: Entry): Promise<void> {
  if (CURL) {
    // The issue's method: curl, 2 GiB in all per measurement.
    const proxy = e.open.proxy ?? null;
    if (PHASES.has('single')) e.s.push(await curlThroughput(proxy, e.dst, 1, CURL_SINGLE));
    if (PHASES.has('multi')) e.m.push(await curlThroughput(proxy, e.dst, 8, CURL_SINGLE / 8));
  } else {
    if (PHASES.has('single')) e.s.push(await throughput(e.open, e.dst, 1, SINGLE));
    if (PHASES.has('multi')) e.m.push(await throughput(e.open, e.dst, 8, MULTI));
  }
  if (PHASES.has('conns')) e.c.push(await connRate(e.open, e.dst, CONNS, e.procs));
}

function rowOf(e: Entry): Row {
  const med = (xs: number[]): number => (xs.length ? median(xs) : Number.NaN);
  const row = { path: e.name, single: med(e.s), multi: med(e.m), conns: med(e.c), note: e.note };
  const fig = (x: number, digits: number) => (Number.isNaN(x) ? '-' : x.toFixed(digits));
  const runs = (xs: number[], digits: number) =>
    xs.length ? ` [${xs.map((x) => x.toFixed(digits)).join(', ')}]` : '';
  process.stderr.write(
    // A phase this run left out (PHASES) shows as "-", not NaN.
    `${e.name.padEnd(42)} 1 stream ${fig(row.single, 2)} GB/s${runs(e.s, 2)}, 8 streams ${fig(row.multi, 2)} GB/s${runs(e.m, 2)}, ${fig(row.conns, 0)} conn/s${runs(e.c, 0)}\n`,
  );
  return row;
}

/**
 * The ratio of two rows round by round (their runs in one round ran a few seconds apart, so
 * the host's drift over minutes largely cancels), and its median: printed for the issue's
 * ratio targets when both rows ran.
 */
function pairedRatios(entries: Entry[]): void {
  const find = (name: string) => entries.find((e) => e.name === name);
  const pairs: Array<[string, string, 's' | 'm' | 'c', string]> = [
    ['gsa-emu SOCKS, tunneled (ws)', V2RAY_ROWS.chain, 's', 'tunneled / VLESS-ws chain, 1 stream'],
    ['gsa-emu SOCKS, tunneled (ws)', V2RAY_ROWS.chain, 'm', 'tunneled / VLESS-ws chain, 8 streams'],
    ['gsa-emu SOCKS, bypassed', V2RAY_ROWS.freedom, 's', 'bypassed / v2ray freedom, 1 stream'],
    ['gsa-emu SOCKS, tunneled (ws)', 'microsocks', 'c', 'tunneled / microsocks, conn/s'],
    [
      'gsa-emu SOCKS, tunneled (ws), ALT',
      'gsa-emu SOCKS, tunneled (ws)',
      's',
      'ALT / this build, 1 stream',
    ],
    [
      'gsa-emu SOCKS, tunneled (ws), ALT',
      'gsa-emu SOCKS, tunneled (ws)',
      'c',
      'ALT / this build, conn/s',
    ],
  ];
  for (const [a, b, phase, label] of pairs) {
    const ea = find(a);
    const eb = find(b);
    if (!ea || !eb || ea[phase].length === 0 || ea[phase].length !== eb[phase].length) continue;
    const r = ea[phase].map((x, i) => x / eb[phase][i]!);
    process.stderr.write(
      `paired ${label}: median x${median(r).toFixed(2)} [${r.map((x) => x.toFixed(2)).join(', ')}]\n`,
    );
  }
}

/** The rows that run client and edge in one process (`gsa-emu up`). */
const UP = 'gsa-emu SOCKS, tunneled (wss), one process';
const UP_PLAIN = 'gsa-emu SOCKS, tunneled (ws), one process';
const UP_THREAD = 'gsa-emu SOCKS, tunneled (wss), edge thread';

/** The private app every tunneled row downloads from (the edge maps it to the source). */
const TUNNELED: Target = { host: 'bench.contoso.test', port: 8000 };

/** Connections through the SOCKS5 proxy at `addr` (host:port). */
function socksOpener(addr: string): Opener {
  const [h, p] = addr.split(':');
  return viaSocks({ host: h!, port: Number(p) });
}

/**
 * Every row's processes are started first and stay up; then each row is warmed up, and the
 * recorded runs go round the rows RUNS times (row 1, row 2, ..., row 1, row 2, ...). The
 * host's speed drifts over minutes (microsocks measured 1,202 to 6,172 conn/s between
 * invocations), so interleaving puts that drift into every row alike instead of into the
 * ratios between rows.
 */
async function main(): Promise<void> {
  if (CURL && !which('curl')) {
    throw new BenchSettingError('CLIENT=curl: curl not installed (apt-get install curl)');
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'gsa-bench-proxy-'));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  const src = await startSource();
  const children: ChildProcess[] = [];
  const entries: Entry[] = [];
  const peers: Peer[] = [];
  /** Every row this run could measure (ONLY picks among them). */
  const rowNames: string[] = [];
  const wanted = (name: string): boolean => {
    rowNames.push(name);
    return !ONLY || ONLY.test(name);
  };
  const add = (
    name: string,
    open: Opener,
    dst: Target,
    note: string,
    procs: Entry['procs'],
  ): void => {
    if (wanted(name)) entries.push({ name, open, dst, note, procs, s: [], m: [], c: [] });
  };
  try {
    const direct: Target = { host: '127.0.0.1', port: src.port };
    add('direct loopback (no proxy)', openDirect, direct, 'kernel only', []);

    // gsa-emu over ws (plain) and wss (TLS): edge and client in their own processes.
    // ALT=<another build's dist-bench/bench/proxy.js> adds the tunneled (ws) and bypassed
    // rows of that build, measured interleaved with this one's (A/B comparisons of a change).
    const alt = process.env.ALT;
    for (const [tls, script] of [
      [false, undefined],
      [true, undefined],
      ...(alt ? [[false, alt] as const] : []),
    ] as const) {
      const tunneled = `gsa-emu SOCKS, tunneled (${tls ? 'wss' : 'ws'})${script ? ', ALT' : ''}`;
      const bypassed = `gsa-emu SOCKS, bypassed${script ? ', ALT' : ''}`;
      if (!wanted(tunneled) && (tls || !wanted(bypassed))) continue;
      const edge = await forkRole(
        ['edge', tls ? 'tls' : 'plain', String(src.port), join(dir, `edge-${tls}-${!!script}`)],
        script,
      );
      children.push(edge.child);
      let caFile = '-';
      if (edge.msg.ca) {
        caFile = join(dir, `ca-${tls}.pem`);
        writeFileSync(caFile, edge.msg.ca);
      }
      const client = await forkRole(['client', edge.msg.url!, caFile], script);
      children.push(client.child);
      const procs = [
        { role: 'client', pid: client.child.pid! },
        { role: 'edge', pid: edge.child.pid! },
      ];
      const open = socksOpener(client.msg.socks!);
      if (!tls) {
        // 127.0.0.1 is in the Default Bypass list: the client connects directly.
        add(bypassed, open, direct, 'Default Bypass 127.0.0.0/8; one Node process', procs);
      }
      add(
        tunneled,
        open,
        TUNNELED,
        `Private Access Quick Access *.contoso.test; client and edge processes${tls ? ', TLS' : ''}`,
        procs,
      );
    }

    const worlds = [
      {
        tls: true,
        where: 'same',
        name: UP,
        note: 'how gsa-emu up runs: client and edge in one process and thread, wss between them',
      },
      {
        tls: false,
        where: 'same',
        name: UP_PLAIN,
        note: 'gsa-emu up --plain-edge: as above over plain ws',
      },
      {
        tls: true,
        where: 'thread',
        name: UP_THREAD,
        note: 'gsa-emu up --edge-thread: the edge on a worker thread, wss',
      },
    ];
    for (const w of worlds) {
      if (!wanted(w.name)) continue;
      const world = await forkRole([
        'world',
        w.tls ? 'tls' : 'plain',
        String(src.port),
        join(dir, `world-${w.tls}-${w.where}`),
        w.where,
      ]);
      children.push(world.child);
      add(w.name, socksOpener(world.msg.socks!), TUNNELED, w.note, [
        { role: 'client+edge', pid: world.child.pid! },
      ]);
    }

    const starters: Array<() => Promise<Peer | null>> = [
      () => startNodeFloor(),
      () => startNodeTunnelFloor(false),
      () => startTunnelFloor(dir, false),
      () => startTunnelFloor(dir, true),
      () => startMicrosocks(),
      () => startDante(dir),
      () => startV2ray(dir, 'freedom'),
      () => startV2ray(dir, 'chain'),
      () => startV2ray(dir, 'mux'),
    ];
    for (const start of starters) {
      const peer = await start();
      if (!peer) continue;
      peers.push(peer);
      if (!wanted(peer.name)) {
        for (const p of peer.procs) p.kill();
        continue;
      }
      add(
        peer.name,
        viaSocks(peer.socks),
        direct,
        peer.version,
        peer.procs.map((p, i) => ({ role: `process ${i + 1}`, pid: p.pid! })),
      );
    }

    if (entries.length === 0) {
      throw new BenchSettingError(
        `ONLY=${ONLY?.source} matches no row; the rows here are: ${[...new Set(rowNames)].join('; ')}`,
      );
    }
    // A failure names its row (which proxy stopped answering), not only the socket's error.
    const named = async (e: Entry, what: string, f: () => Promise<void>): Promise<void> => {
      try {
        await f();
      } catch (err) {
        throw new Error(`${e.name}, ${what}: ${err instanceof Error ? err.message : err}`);
      }
    };
    process.stderr.write(
      `warming up ${entries.length} ${entries.length === 1 ? 'row' : 'rows'} (${(PHASES.has('conns') ? WARM_CONNS : 50).toLocaleString('en-US')} unrecorded connections each)\n`,
    );
    for (const e of entries) await named(e, 'warm-up', () => warmUp(e));
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`round ${i + 1} of ${RUNS}\n`);
      for (const e of entries) await named(e, `round ${i + 1}`, () => measureOnce(e));
    }
  } finally {
    for (const c of children) if (c.connected) c.disconnect();
    // Give the children time to exit on their own (and write CPU profiles) before killing.
    await Promise.all(
      children.map((c) =>
        c.exitCode !== null
          ? null
          : Promise.race([once(c, 'exit'), new Promise((r) => setTimeout(r, 5000))]),
      ),
    );
    for (const c of children) c.kill();
    for (const p of peers) for (const c of p.procs) c.kill();
    src.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = entries.map(rowOf);
  pairedRatios(entries);
  const full = ['single', 'multi', 'conns'].every((ph) => PHASES.has(ph));
  if (ONLY || !full || process.env.ALT) {
    // A partial run (some rows or phases, or another build's row) does not overwrite the
    // recorded results.
    for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  report(rows);
}

/** The figures of a run, as bench/results/proxy.json records them. */
function resultsOf(rows: Row[]) {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown CPU',
    cores: os.cpus().length,
    runs: RUNS,
    bytes: { single: SINGLE, multiPerStream: MULTI, streams: 8 },
    connections: CONNS,
    rows,
  };
}

function report(rows: Row[]): void {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const when = new Date().toISOString().slice(0, 16);
  const results = resultsOf(rows);
  const get = (p: string) =>
    rows.find((r) => r.path === p) ?? rows.find((r) => r.path.startsWith(p));
  const bypass = get('gsa-emu SOCKS, bypassed');
  const tun = get('gsa-emu SOCKS, tunneled (ws)');
  const tunTls = get('gsa-emu SOCKS, tunneled (wss)');
  const v2 = get(V2RAY_ROWS.freedom);
  const chain = get(V2RAY_ROWS.chain);
  const mux = get(V2RAY_ROWS.mux);
  const micro = get('microsocks');
  const floor = get('node floor');
  const cFloor = get('C tunnel floor (');
  const cEarly = get('C tunnel floor, early');
  const nodeTun = get('node tunnel floor');
  const one = get(UP_PLAIN);
  const up = get(UP);
  const thread = get(UP_THREAD);
  const f2 = (x: number) => x.toFixed(2);
  const lines = [
    '<!-- proxy:begin -->',
    '## Proxy',
    '',
    `\`${benchCommand('bench:proxy', ['QUICK', 'RUNS', 'CONNS', 'CLIENT', 'CPU_REPORT', 'PROCESS_LOOKUP', 'CHILD_ARGS', 'CPU_PROF'])}\` (bench/proxy.ts; ${process.version}, ${cpu}, ${os.cpus().length} cores; median of ${RUNS} ${RUNS === 1 ? 'run' : 'runs'}; ${when}Z). Raw data: bench/results/proxy.json.`,
    '',
    `${CURL ? `Download with curl (the issue's method: \`curl -o /dev/null --socks5-hostname\`, HTTP from a source on 127.0.0.1) through each SOCKS5 proxy: one stream of ${CURL_SINGLE / 2 ** 20} MiB, and 8 parallel curls of ${CURL_SINGLE / 8 / 2 ** 20} MiB, timed from the first curl's start to the last one's exit; each curl must get HTTP 200 and every byte` : `Download from a TCP source on 127.0.0.1 through each SOCKS5 proxy by the Node.js load generator: one stream of ${SINGLE / 2 ** 20} MiB, and 8 parallel streams of ${MULTI / 2 ** 20} MiB; the clock stops when a stream's last byte has arrived (not at the proxy's FIN, which v2ray holds for about a second), and every read is checked against the source's pattern (byte i is i mod 251)`}; sequential connections: SOCKS5 handshake (method reply, then CONNECT) + 8-byte request + 1-byte answer + close, ${CONNS} in a row (each row after an unrecorded warm-up run of ${WARM_CONNS.toLocaleString('en-US')}). Every proxy stays up for the whole run and the recorded runs are interleaved (each round measures every row once), so the host's drift over minutes falls on all rows alike. The load generator and the source share one process (its sockets read into one shared buffer, copying nothing); the gsa-emu client, the gsa-emu edge and each peer proxy run in their own processes (2 vCPUs for all of them). gsa-emu runs with the process column's /proc lookup off (\`PROCESS_LOOKUP=1\` includes it).`,
    '',
    '| path | 1 stream GB/s | 8 streams GB/s | conn/s | notes |',
    '|---|---:|---:|---:|---|',
    ...rows.map(
      (r) => `| ${r.path} | ${f2(r.single)} | ${f2(r.multi)} | ${r.conns.toFixed(0)} | ${r.note} |`,
    ),
    '',
    'Issue targets:',
  ];
  if (bypass && v2) {
    lines.push(
      `- bypassed >= v2ray (socks->freedom) throughput: ${f2(bypass.single)} vs ${f2(v2.single)} GB/s (1 stream, x${(bypass.single / v2.single).toFixed(2)}), ${f2(bypass.multi)} vs ${f2(v2.multi)} (8 streams, x${(bypass.multi / v2.multi).toFixed(2)}).`,
    );
  }
  if (tun && chain) {
    const x = (a: number, b: number) => `x${(a / b).toFixed(1)}`;
    lines.push(
      `- tunneled >= 3x the VLESS/ws chain: ws ${f2(tun.single)} vs ${f2(chain.single)} GB/s (1 stream, ${x(tun.single, chain.single)}), ${f2(tun.multi)} vs ${f2(chain.multi)} (8 streams, ${x(tun.multi, chain.multi)})${tunTls ? `; wss ${f2(tunTls.single)} and ${f2(tunTls.multi)} GB/s` : ''}${mux ? `; against the chain with v2ray's mux (one WebSocket for many flows, as gsa-emu's tunnel): ${f2(mux.single)} and ${f2(mux.multi)} GB/s (${x(tun.single, mux.single)}, ${x(tun.multi, mux.multi)})` : ''}. The issue measured the chain at 0.33 GB/s elsewhere (curl): ws is ${x(tun.single, 0.33)} of that.`,
    );
  }
  if (tun && micro) {
    lines.push(
      `- sequential tunneled conn/s >= microsocks (~2,650/s in the issue): ${tun.conns.toFixed(0)}/s vs microsocks ${micro.conns.toFixed(0)}/s here (x${(tun.conns / micro.conns).toFixed(2)}).`,
    );
  }
  if (up && chain && micro) {
    lines.push(
      `- exactly as \`gsa-emu up\` runs (one process, wss): ${f2(up.single)} GB/s (x${(up.single / chain.single).toFixed(1)} the chain, which is plain ws), ${f2(up.multi)} GB/s with 8 streams, ${up.conns.toFixed(0)} conn/s (x${(up.conns / micro.conns).toFixed(2)} of microsocks)${thread ? `; \`--edge-thread\`: ${f2(thread.single)} GB/s, ${f2(thread.multi)} with 8 streams, ${thread.conns.toFixed(0)} conn/s` : ''}.`,
    );
  }
  if (one && chain && micro) {
    lines.push(
      `- \`gsa-emu up --plain-edge\` (one process, plain ws): ${f2(one.single)} GB/s (x${(one.single / chain.single).toFixed(1)} the chain), ${f2(one.multi)} GB/s with 8 streams, ${one.conns.toFixed(0)} conn/s (x${(one.conns / micro.conns).toFixed(2)} of microsocks).`,
    );
  }
  if (floor && micro) {
    lines.push(
      `- for scale: the minimal Node.js SOCKS relay (one process, no tunnel, no policy) reaches ${floor.conns.toFixed(0)} conn/s, x${(floor.conns / micro.conns).toFixed(2)} of microsocks; gsa-emu bypassed ${bypass ? `${bypass.conns.toFixed(0)}/s (x${(bypass.conns / floor.conns).toFixed(2)} of that floor)` : 'n/a'}, tunneled ${tun ? `${tun.conns.toFixed(0)}/s (x${(tun.conns / floor.conns).toFixed(2)})` : 'n/a'}. A tunneled connection crosses two Node.js processes (client and edge) and four loopback TCP hops instead of two.`,
    );
  }
  if (cFloor && micro && tun) {
    lines.push(
      `- the tunneled topology's own floor: the same two processes and hops in C (bench/tunnel-floor.c, ws-framed mux, no policy) reach ${cFloor.conns.toFixed(0)} conn/s (x${(cFloor.conns / micro.conns).toFixed(2)} of microsocks)${cEarly ? `, ${cEarly.conns.toFixed(0)} (x${(cEarly.conns / micro.conns).toFixed(2)}) with the SOCKS reply sent before the edge connects` : ''}; gsa-emu tunneled (ws) is x${(tun.conns / cFloor.conns).toFixed(2)} of that floor, so what separates it from microsocks is Node.js's per-connection cost, not the topology${nodeTun ? `; the same topology in minimal Node.js (bench/node-floor-tunnel.ts) reaches ${nodeTun.conns.toFixed(0)} conn/s (x${(nodeTun.conns / cFloor.conns).toFixed(2)} of the C floor), and gsa-emu tunneled (ws) is x${(tun.conns / nodeTun.conns).toFixed(2)} of it` : ''}.`,
    );
  }
  if (missingPeers.length) {
    lines.push(`- not measured, not installed here: ${missingPeers.join('; ')}.`);
  }
  if (failedPeers.length) {
    lines.push(`- not measured, installed but did not start: ${failedPeers.join('; ')}.`);
  }
  lines.push('<!-- proxy:end -->');
  const section = lines.join('\n');
  if (QUICK) {
    // A quick run's figures say little: shown, not put in place of the recorded ones.
    process.stdout.write(`${section}\n`);
    writeQuickResults(root, 'proxy', results);
    return;
  }
  writeFileSync(
    join(root, 'bench', 'results', 'proxy.json'),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  const file = join(root, 'docs', 'benchmarks.md');
  let doc = readFileSync(file, 'utf8');
  const re = /<!-- proxy:begin -->[\s\S]*?<!-- proxy:end -->/;
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, doc);
  process.stdout.write(`${section}\n`);
}

const role = process.argv[2];
if (role === 'edge') await roleEdge();
else if (role === 'client') await roleClient();
else if (role === 'world') await roleWorld();
else {
  try {
    await main();
  } catch (err) {
    process.stderr.write(`bench:proxy: ${err instanceof Error ? err.message : err}\n`);
    process.exit(err instanceof BenchSettingError ? 2 : 1);
  }
}
