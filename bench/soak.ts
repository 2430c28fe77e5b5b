/**
 * Soak: leaves one `gsa-emu up` running under a steady, moderate mixed load for a bounded
 * time and samples what could grow without bound (docs/benchmarks.md, "Soak").
 *
 *   npm run bench:soak                       (builds with tsconfig.bench.json first)
 *   DURATION=1500 SAMPLE=30 OUT=soak.jsonl npm run bench:soak
 *
 * Load (about 5 to 6 new flows a second): curl through SOCKS5 (--socks5-hostname) and the
 * HTTP proxy (CONNECT and plain absolute-URI) to tunneled (Private Access, Microsoft 365,
 * Internet Access), bypassed and blocked names; SOCKS5 CONNECT from Node; UDP ASSOCIATE
 * (the `socks` client) to the private UDP echo, Exchange Online QUIC and a dropped QUIC
 * destination; clients that abort a large download part way (FIN or RST, tunneled and
 * bypassed); slow clients (a SOCKS greeting or HTTP head 4 bytes at a time, an idle
 * connection); malformed SOCKS greetings and HTTP requests; `toggle internet off` / `on` every 90 s; /metrics
 * every 5 s, `flows` and `status --health` every 30 s (one that exits non-zero prints its
 * failed checks on stderr).
 *
 * Samples (every SAMPLE s, after a forced GC through the inspector): RSS, heap used, open
 * fds, active handles and timers, the flow table (active flows and rows kept), the edge's
 * sessions, active flows and traffic-log records, and the size of every file in `<state-dir>/logs`.
 *
 * `up` runs with its own temporary state folder (removed at the end unless KEEP=1), any
 * free ports, `--log-max-size 1` (MiB) and the inspector on a free loopback port (for the
 * GC and the probe); the download server listens on the first free port of 127.0.0.1:8800
 * to 8999. Everything it starts (`up`, curl, the `gsa-emu` commands, the download server)
 * is stopped at the end, on Ctrl+C (exit 130), SIGTERM and SIGHUP. Exit 0 when the run
 * completed, 1 when `up` could not be started, died or stopped answering, 2 for a bad
 * setting.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SocksClient } from 'socks';
import WebSocket from 'ws';
import {
  exitWithParent,
  flagSetting,
  helpRequested,
  intSetting,
  settingsOrExit,
} from './settings.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const CLI_NODE = process.execPath;

helpRequested(`
soak: one \`gsa-emu up\` under a steady mixed load, sampled for growth (runs
dist/cli/main.js: npm run build first).
  DURATION  seconds of load (1500)
  SAMPLE    seconds between samples (30)
  OUT       a file for the samples, as JSON lines (none)
  UP_ARGS   more \`up\` flags, split on spaces
  KEEP=1    keep the state folder (its logs)
A quick check (about 45 s): DURATION=15 SAMPLE=5 npm run bench:soak
`);
const DURATION = settingsOrExit('bench:soak', () => intSetting(process.env, 'DURATION', 1500));
const SAMPLE = settingsOrExit('bench:soak', () => intSetting(process.env, 'SAMPLE', 30));
const OUT = process.env.OUT || null;
const KEEP = settingsOrExit('bench:soak', () => flagSetting(process.env, 'KEEP'));
/** After the load: time for the last flows (20 s at most each) to end before the last sample. */
const QUIET_MS = 25_000;
/** More `up` flags, split on spaces (`UP_ARGS='--token-ttl 20 --close-on-token-expiry'`). */
const UP_ARGS = (process.env.UP_ARGS ?? '').split(' ').filter((a) => a !== '');
if (!existsSync(CLI)) {
  process.stderr.write(`soak: ${CLI} is missing: npm run build first\n`);
  process.exit(2);
}
// Without curl, a third of the load (curl through SOCKS5 and the HTTP proxy) would fail
// silently at every spawn and the run would still report its figures.
if (spawnSync('curl', ['--version'], { stdio: 'ignore' }).error) {
  process.stderr.write('bench:soak needs curl (apt-get install curl)\n');
  process.exit(2);
}

// ---------------------------------------------------------------- what it starts

const children = new Set<ChildProcess>();
const timers = new Set<NodeJS.Timeout>();
const sockets = new Set<net.Socket>();
let stateDir = '';
let ownState = false;
let up: ChildProcess | null = null;
/** The inspector session: closed before `up` is stopped (Node waits for a debugger to leave). */
let inspector: { close(): void } | null = null;
let big: net.Server | null = null;
let stopping = false;

function every(ms: number, fn: () => void): void {
  timers.add(setInterval(() => !stopping && fn(), ms));
}
function track<T extends net.Socket>(s: T, maxMs = 20_000): T {
  sockets.add(s);
  s.on('error', () => {});
  const t = setTimeout(() => s.destroy(), maxMs);
  s.once('close', () => {
    clearTimeout(t);
    sockets.delete(s);
  });
  return s;
}
/**
 * Runs a command (at most 30 s); once stopping, only `always` ones (the final stop).
 * `onFail`: keep what it prints (the last 64 KiB of each stream) and give it to `onFail`
 * when it exits non-zero.
 */
function run(
  args: string[],
  bin = CLI_NODE,
  always = false,
  onFail?: (code: number, out: string, err: string) => void,
): Promise<number> {
  return new Promise((resolve) => {
    if (stopping && !always) return resolve(-1);
    const c = spawn(bin, args, { stdio: onFail ? ['ignore', 'pipe', 'pipe'] : 'ignore' });
    children.add(c);
    let out = '';
    let err = '';
    c.stdout?.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-65536)));
    c.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-65536)));
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('error', () => {});
    c.on('close', (code) => {
      clearTimeout(t);
      children.delete(c);
      if (onFail && code !== 0) onFail(code ?? -1, out, err);
      resolve(code ?? -1);
    });
  });
}

/** The failed checks of `status --health --json`'s output (else the output as it is). */
function failedChecks(out: string): string {
  try {
    const j = JSON.parse(out) as {
      state?: string;
      health?: { status: string; name: string; detail: string }[];
    };
    const failed = (j.health ?? []).filter((c) => c.status === 'fail');
    return [`state: ${j.state}`, ...failed.map((c) => `FAIL ${c.name}: ${c.detail}`)].join('\n');
  } catch {
    return out;
  }
}

let cleaning: Promise<void> | null = null;
/** Stops what the run started (once; a signal during it waits for the same). */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    stopping = true;
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
    for (const c of children) c.kill('SIGKILL');
    big?.close();
    inspector?.close();
    if (up && up.exitCode === null && up.signalCode === null) {
      const exited = once(up, 'exit');
      // As Ctrl+C would (gsa-emu stop waits until it has exited; after a Ctrl+C in the
      // terminal `up` has had the SIGINT too and may be stopping already), SIGKILL if it
      // has not exited 15 s later.
      await run([CLI, 'stop', '--state-dir', stateDir, '--wait', '15'], CLI_NODE, true);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
      if (up.exitCode === null && up.signalCode === null) {
        up.kill('SIGKILL');
        await exited;
      }
    }
    if (ownState && stateDir) rmSync(stateDir, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const [sig, n] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
  ['SIGHUP', 1],
] as const) {
  process.on(sig, () => {
    process.stderr.write(`\ninterrupted (${sig}): stopping what the soak started\n`);
    void cleanup().finally(() => process.exit(128 + n));
  });
}
// SIGTERM to `npm run bench:soak` stops npm's shell but not this process: stop with it.
exitWithParent(() => void cleanup().finally(() => process.exit(129)));

// ---------------------------------------------------------------- a large download

/** Listens on a port the Quick Access segment (TCP 8000-8999 of *.contoso.test) tunnels. */
async function startBig(): Promise<number> {
  const chunk = randomBytes(64 * 1024);
  for (let port = 8800; port < 9000; port++) {
    const srv = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 16777216\r\nconnection: close\r\n\r\n');
        let left = 256;
        const pump = (): void => {
          while (left > 0 && !s.destroyed) {
            left--;
            if (!s.write(chunk)) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      });
    });
    try {
      srv.listen(port, '127.0.0.1');
      await once(srv, 'listening');
      big = srv;
      return port;
    } catch {
      srv.close();
    }
  }
  throw new Error('no free port in 8800-8999 for the download server');
}

// ---------------------------------------------------------------- load

interface Ports {
  socks: number;
  http: number;
  admin: number;
  token: string;
  edge: string;
  pid: number;
}
const port = (hp: string): number => Number(hp.slice(hp.lastIndexOf(':') + 1));

const HTTP_NAMES = [
  'intranet.contoso.test',
  'wiki.contoso.test',
  'outlook.office365.com',
  'graph.microsoft.com',
  'www.example.test',
  'news.test',
  'shop.test',
  'bypass.example.test',
  'casino.test',
];
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const counts: Record<string, number> = {};
const count = (k: string): void => {
  counts[k] = (counts[k] ?? 0) + 1;
};

function curlLoad(p: Ports): void {
  const ca = join(stateDir, 'demo-tls', 'ca.pem');
  const name = pick(HTTP_NAMES);
  const tls = Math.random() < 0.5 && name !== 'casino.test';
  const url = `${tls ? 'https' : 'http'}://${name}/`;
  const via =
    Math.random() < 0.5
      ? ['--socks5-hostname', `127.0.0.1:${p.socks}`]
      : ['-x', `http://127.0.0.1:${p.http}`];
  count(`curl ${via[0]} ${tls ? 'https' : 'http'}`);
  void run(['-s', '-o', '/dev/null', '-m', '10', '--cacert', ca, ...via, url], 'curl');
}

function socksGet(p: Ports, host: string, dport: number, abort: 'fin' | 'rst' | null): void {
  SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: p.socks, type: 5 },
    command: 'connect',
    destination: { host, port: dport },
    timeout: 10_000,
  }).then(
    ({ socket }) => {
      track(socket);
      let got = 0;
      socket.on('data', (b: Buffer) => {
        got += b.length;
        if (abort && got > 256 * 1024) {
          if (abort === 'rst') socket.resetAndDestroy();
          else socket.destroy();
        }
      });
      socket.write(`GET / HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
    },
    () => count('socks connect refused'),
  );
}

function httpAbort(p: Ports, bigPort: number): void {
  const s = track(net.connect(p.http, '127.0.0.1'));
  let got = 0;
  s.write(
    `GET http://big.contoso.test:${bigPort}/ HTTP/1.1\r\nhost: big.contoso.test:${bigPort}\r\n\r\n`,
  );
  s.on('data', (b: Buffer) => {
    got += b.length;
    if (got > 128 * 1024) s.destroy();
  });
}

function udpAssociate(p: Ports): void {
  const [host, dport] = pick([
    ['udp-echo.contoso.test', 7000],
    ['outlook.office365.com', 443],
    ['news.test', 443], // dropped: QUIC only for Exchange Online
  ] as const);
  count(`udp ${host}`);
  // createConnection() only does CONNECT: an association is an instance's 'established'.
  const client = new SocksClient({
    proxy: { host: '127.0.0.1', port: p.socks, type: 5 },
    command: 'associate',
    destination: { host: '0.0.0.0', port: 0 },
    timeout: 10_000,
  });
  client.on('error', () => count('udp associate refused'));
  client.on('established', ({ socket, remoteHost }) => {
    track(socket);
    const u = dgram.createSocket('udp4');
    u.on('error', () => {});
    const done = (): void => {
      try {
        u.close();
      } catch {}
      socket.destroy();
    };
    const t = setTimeout(done, 2_000);
    u.on('message', () => {
      clearTimeout(t);
      count('udp replies');
      done();
    });
    socket.once('close', () => {
      clearTimeout(t);
      try {
        u.close();
      } catch {}
    });
    const frame = SocksClient.createUDPFrame({
      remoteHost: { host, port: dport },
      data: Buffer.from('soak'),
    });
    u.send(frame, remoteHost!.port, '127.0.0.1');
  });
  client.connect();
}

const BAD_SOCKS: Buffer[] = [
  Buffer.from([0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0]), // SOCKS4
  Buffer.from([0x05, 0x00]), // no methods
  Buffer.from([0x05, 0x01, 0x03]), // an unknown method only
  Buffer.from([0x05, 0xff, 0x00]), // truncated
  Buffer.from('GET / HTTP/1.1\r\n\r\n'),
];
const BAD_HTTP = [
  'GARBAGE\r\n\r\n',
  'GET http://intranet.contoso.test/ HTTP/9.9\r\n\r\n',
  'CONNECT nohostport HTTP/1.1\r\n\r\n',
  'GET /relative HTTP/1.1\r\nhost: x\r\n\r\n',
  `GET http://intranet.contoso.test/ HTTP/1.1\r\nx: ${'a'.repeat(70_000)}\r\n\r\n`,
  'CONNECT intranet.contoso.test:80 HTTP/1.1\r\ncontent-length: -1\r\n\r\n',
  'GET http://[::1 HTTP/1.1\r\n\r\n',
];
function malformed(p: Ports): void {
  const socks = Math.random() < 0.5;
  const s = track(net.connect(socks ? p.socks : p.http, '127.0.0.1'), 3_000);
  count(socks ? 'bad socks' : 'bad http');
  s.on('data', () => {});
  s.write(socks ? pick(BAD_SOCKS) : pick(BAD_HTTP));
  if (Math.random() < 0.5) s.end();
}

function slow(p: Ports): void {
  const kind = pick(['greeting', 'idle', 'http-head'] as const);
  count(`slow ${kind}`);
  if (kind === 'idle') {
    const s = track(net.connect(Math.random() < 0.5 ? p.socks : p.http, '127.0.0.1'));
    setTimeout(() => s.end(), 8_000);
    return;
  }
  const s = track(net.connect(kind === 'greeting' ? p.socks : p.http, '127.0.0.1'));
  s.on('data', () => {});
  const bytes =
    kind === 'greeting'
      ? Buffer.concat([
          Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 21]),
          Buffer.from('intranet.contoso.test'),
          Buffer.from([0, 80]),
          Buffer.from('GET / HTTP/1.1\r\nhost: intranet.contoso.test\r\n\r\n'),
        ])
      : Buffer.from('GET http://news.test/ HTTP/1.1\r\nhost: news.test\r\n\r\n');
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed || i >= bytes.length) return clearInterval(t);
    s.write(bytes.subarray(i, i + 4));
    i += 4;
  }, 150);
  s.once('close', () => clearInterval(t));
}

// ---------------------------------------------------------------- sampling

function adminGet(p: Ports, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port: p.admin, path, headers: { authorization: `Bearer ${p.token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve(body));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
function edgeHealth(p: Ports): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${p.edge}/health`, { rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as Record<string, unknown>);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A forced GC in `up`, then its memory and active resources, through the inspector. */
class Inspector {
  private ws: WebSocket;
  private id = 0;
  private wait = new Map<number, (r: unknown) => void>();
  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (m) => {
      const msg = JSON.parse(String(m)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) this.wait.get(msg.id)?.(msg.result);
    });
  }
  static async open(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await once(ws, 'open');
    return new Inspector(ws);
  }
  call(method: string, params: object = {}): Promise<unknown> {
    const id = ++this.id;
    return new Promise((resolve) => {
      this.wait.set(id, (r) => {
        this.wait.delete(id);
        resolve(r);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
  async probe(): Promise<{ heapUsed: number; resources: Record<string, number> }> {
    await this.call('HeapProfiler.collectGarbage');
    const r = (await this.call('Runtime.evaluate', {
      expression:
        'JSON.stringify({heapUsed: process.memoryUsage().heapUsed, resources: process.getActiveResourcesInfo()})',
      returnByValue: true,
    })) as { result: { value: string } };
    const v = JSON.parse(r.result.value) as { heapUsed: number; resources: string[] };
    const resources: Record<string, number> = {};
    for (const k of v.resources) resources[k] = (resources[k] ?? 0) + 1;
    return { heapUsed: v.heapUsed, resources };
  }
  close(): void {
    this.ws.close();
  }
}

function proc(pid: number): { rssMiB: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssMiB: Math.round(rss / 102.4) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
}
function logSizes(): Record<string, number> {
  const dir = join(stateDir, 'logs');
  const out: Record<string, number> = {};
  for (const f of readdirSync(dir)) out[f] = statSync(join(dir, f)).size;
  return out;
}

type Sample = Awaited<ReturnType<typeof sample>>;

async function sample(p: Ports, insp: Inspector, t0: number) {
  const { heapUsed, resources } = await insp.probe();
  const metrics = await adminGet(p, '/metrics');
  const active = Number(/^gsa_client_flows_active (\d+)/m.exec(metrics)?.[1] ?? -1);
  const flows = JSON.parse(await adminGet(p, '/flows')) as unknown[] | { flows: unknown[] };
  const rows = Array.isArray(flows) ? flows.length : flows.flows.length;
  const edge = await edgeHealth(p);
  const s = {
    t: Math.round((Date.now() - t0) / 1000),
    ...proc(p.pid),
    heapMiB: Math.round(heapUsed / 104857.6) / 10,
    resources,
    flowsActive: active,
    flowRows: rows,
    edgeSessions: edge.sessions,
    edgeActiveFlows: edge.activeFlows,
    edgeLogRecords: edge.logRecords,
    logs: logSizes(),
  };
  process.stdout.write(`${JSON.stringify(s)}\n`);
  if (OUT) appendFileSync(OUT, `${JSON.stringify(s)}\n`);
  return s;
}

const logBytes = (s: Sample): number => Object.values(s.logs).reduce((a, b) => a + b, 0);
/** The first sample against the last (after the quiet period), and the peaks between. */
function summary(all: Sample[]): string {
  const a = all[0]!;
  const z = all[all.length - 1]!;
  const peak = (f: (s: Sample) => number): number => Math.max(...all.map(f));
  return [
    `summary (first sample -> last, after ${QUIET_MS / 1000} s without load; peak):`,
    `  RSS ${a.rssMiB} -> ${z.rssMiB} MiB (${peak((s) => s.rssMiB)})`,
    `  heap after GC ${a.heapMiB} -> ${z.heapMiB} MiB (${peak((s) => s.heapMiB)})`,
    `  open fds ${a.fds} -> ${z.fds} (${peak((s) => s.fds)})`,
    `  timers ${a.resources.Timeout ?? 0} -> ${z.resources.Timeout ?? 0} (${peak((s) => s.resources.Timeout ?? 0)})`,
    `  active flows ${a.flowsActive} -> ${z.flowsActive} (${peak((s) => s.flowsActive)}), flow rows ${a.flowRows} -> ${z.flowRows} (${peak((s) => s.flowRows)})`,
    `  edge sessions ${a.edgeSessions} -> ${z.edgeSessions}, edge active flows ${a.edgeActiveFlows} -> ${z.edgeActiveFlows}, edge log records ${a.edgeLogRecords} -> ${z.edgeLogRecords}`,
    `  log files ${logBytes(a)} -> ${logBytes(z)} bytes (${peak(logBytes)})`,
  ].join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  stateDir = mkdtempSync(join(os.tmpdir(), 'gsa-soak-'));
  ownState = !KEEP;
  const bigPort = await startBig();
  up = spawn(
    process.execPath,
    [
      '--inspect=127.0.0.1:0',
      CLI,
      'up',
      '--state-dir',
      stateDir,
      '--no-tty',
      '--quiet',
      '--socks-port',
      '0',
      '--http-port',
      '0',
      '--log-max-size',
      '1',
      '--add-host',
      'big.contoso.test=127.0.0.1',
      '--add-host',
      'big.mine.test=127.0.0.1',
      ...UP_ARGS,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let inspectUrl = '';
  let stderr = '';
  up.stderr!.setEncoding('utf8');
  up.stderr!.on('data', (c: string) => {
    stderr = (stderr + c).slice(-8192);
    inspectUrl ||= /ws:\/\/\S+/.exec(stderr)?.[0] ?? '';
  });
  up.on('exit', (code, sig) => {
    if (!stopping) {
      process.stderr.write(`soak: up exited (${code ?? sig}) during the run:\n${stderr}\n`);
      void cleanup().finally(() => process.exit(1));
    }
  });
  if ((await run([CLI, 'status', '--state-dir', stateDir, '--wait', '60'])) !== 0 || !inspectUrl) {
    throw new Error(`up did not become ready:\n${stderr}`);
  }
  const cj = JSON.parse(readFileSync(join(stateDir, 'client.json'), 'utf8')) as Record<
    string,
    string | number
  >;
  const p: Ports = {
    socks: port(String(cj.socks)),
    http: port(String(cj.http)),
    admin: port(String(cj.admin)),
    token: String(cj.adminToken),
    edge: String(cj.edge),
    pid: Number(cj.pid),
  };
  const insp = await Inspector.open(inspectUrl);
  inspector = insp;
  const t0 = Date.now();
  process.stdout.write(
    `soak: ${DURATION} s, a sample every ${SAMPLE} s; up pid ${p.pid}, state ${stateDir}\n`,
  );
  const all = [await sample(p, insp, t0)];

  every(500, () => curlLoad(p));
  every(500, () => {
    count('socks get');
    socksGet(p, pick(HTTP_NAMES.filter((n) => n !== 'casino.test')), 80, null);
  });
  every(2_000, () => {
    const host = pick(['big.contoso.test', 'big.mine.test']);
    const how = pick(['fin', 'rst'] as const);
    count(`abort ${host} ${how}`);
    socksGet(p, host, bigPort, how);
  });
  every(4_000, () => {
    count('abort http');
    httpAbort(p, bigPort);
  });
  every(2_000, () => udpAssociate(p));
  every(400, () => malformed(p));
  every(3_000, () => slow(p));
  every(5_000, () => void adminGet(p, '/metrics').catch(() => count('metrics failed')));
  every(30_000, () => {
    void run([CLI, 'flows', '--state-dir', stateDir]);
    // A failed call's output goes to stderr: which check failed, and why.
    const at = Math.round((Date.now() - t0) / 1000);
    void run(
      [CLI, 'status', '--health', '--json', '--state-dir', stateDir],
      CLI_NODE,
      false,
      (code, out, err) => {
        count('health failed');
        process.stderr.write(
          `soak: status --health at ${at} s exited ${code}:\n${err}${failedChecks(out)}\n`,
        );
      },
    );
  });
  let internet = true;
  every(90_000, () => {
    internet = !internet;
    void run([CLI, 'toggle', 'internet', internet ? 'on' : 'off', '--state-dir', stateDir]);
  });

  const deadline = t0 + DURATION * 1000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(SAMPLE * 1000, deadline - Date.now())));
    if (Date.now() < deadline) all.push(await sample(p, insp, t0));
  }
  // Quiesce: no new load; let the last flows finish, then the final sample.
  for (const t of timers) clearInterval(t);
  timers.clear();
  if (!internet) await run([CLI, 'toggle', 'internet', 'on', '--state-dir', stateDir]);
  await new Promise((r) => setTimeout(r, QUIET_MS));
  all.push(await sample(p, insp, t0));
  process.stdout.write(`load: ${JSON.stringify(counts)}\n${summary(all)}\n`);
}

main().then(
  () => cleanup().then(() => process.exit(0)),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`);
    void cleanup().finally(() => process.exit(1));
  },
);
