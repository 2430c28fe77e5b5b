/**
 * Tunnel benchmark, on loopback, side by side in one run:
 *   - throughput, 1 and 8 parallel streams: direct TCP, tunnel over ws, tunnel over wss,
 *     one WebSocket per flow (and the tunnel with the edge's egress TCP hop, 1 stream);
 *   - sequential connections per second (open + 32-byte echo + close) and connect latency
 *     p50/p99 through a TCP echo destination (the edge / per-flow WS server connects to it);
 *   - memory per idle tunnel stream (10,000 streams; client and edge process, with gc).
 * The far end (TCP sink/echo, tunnel edge, per-flow WS server) runs in a child process, so
 * each side has its own core and event loop. Medians of RUNS runs.
 *
 *   npm run bench:tunnel              (builds with tsconfig.bench.json, runs with --expose-gc)
 *   QUICK=1 npm run bench:tunnel      (256 MiB per case, fewer connections)
 *   RUNS=3 CONNS=1000 IDLE=10000 ONLY=<part of a row's name>: docs/benchmarks.md, "Settings".
 *
 * Writes bench/results/tunnel.json and the "Tunnel" section of docs/benchmarks.md (not when
 * ONLY picks some rows: that run prints its figures only; nor with QUICK=1:
 * bench/results/tunnel.quick.tmp.json instead).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import WebSocket, { createWebSocketStream, WebSocketServer } from 'ws';
import { TunnelClient } from '../src/tunnel/client.js';
import { createTunnelServer } from '../src/tunnel/server.js';
import type { Session } from '../src/tunnel/session.js';
import { loadOrCreateTls } from '../src/tunnel/tls.js';
import type { InboundTunnelStream, OpenMeta } from '../src/tunnel/types.js';
import {
  BenchSettingError,
  benchCommand,
  flagSetting,
  helpRequested,
  interruptible,
  intSetting,
  settingsOrExit,
  stopOnExit,
  writeQuickResults,
} from './settings.js';

helpRequested(`
npm run bench:tunnel: tunnel throughput (Gbit/s, 1 and 8 streams), connections/s and connect
latency, memory per idle stream; against direct TCP and one WebSocket per flow.
  RUNS=3           runs, medians reported (1 with QUICK)
  CONNS=1000       sequential connections per run (300 with QUICK)
  QUICK=1          256 MiB per throughput run (default 1024)
  IDLE=10000       idle streams for the memory figure
  ONLY=<text>      rows whose name contains <text> (nothing written)
  CHILD_ARGS=...   Node options for the far end's process
  DATA_FRAME, HW, WINDOW   tunnel limits in bytes
A quick check (10-20 s): QUICK=1 npm run bench:tunnel (its figures go to bench/results/tunnel.quick.tmp.json, not over the recorded ones)
`);
// The benchmark, not its far end (`serve`).
if (process.argv[2] !== 'serve') interruptible();
const QUICK = settingsOrExit('bench:tunnel', () => flagSetting(process.env, 'QUICK'));
const env = process.env;
const RUNS = settingsOrExit('bench:tunnel', () => intSetting(env, 'RUNS', QUICK ? 1 : 3));
const TOTAL = (QUICK ? 256 : 1024) * 2 ** 20;
const CONNS = settingsOrExit('bench:tunnel', () => intSetting(env, 'CONNS', QUICK ? 300 : 1000));
const IDLE = settingsOrExit('bench:tunnel', () => intSetting(env, 'IDLE', 10_000));
/** Tunnel limits for experiments (bytes): DATA_FRAME, HW (send high water), WINDOW. */
const LIMITS = settingsOrExit('bench:tunnel', () => {
  const opt = (name: string) => (env[name] ? intSetting(env, name, 0) : undefined);
  const [dataFrame, hw, window] = [opt('DATA_FRAME'), opt('HW'), opt('WINDOW')];
  return {
    ...(dataFrame ? { maxDataFrame: dataFrame } : {}),
    ...(hw ? { sendHighWater: hw } : {}),
    ...(window ? { initialWindow: window } : {}),
  };
});
const CHUNK = 256 * 1024;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))]!;
};
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

// ------------------------------------------------------------------------------------------
// Far end (child process)

interface Ports {
  tcpSink: number;
  tcpEcho: number;
  ws: number;
  wss: number;
  flowWs: number;
  ca: string;
}

async function serve(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'gsa-bench-tls-'));
  const tls = await loadOrCreateTls(dir, []);
  rmSync(dir, { recursive: true, force: true });
  const listen = async (srv: net.Server): Promise<number> => {
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    return (srv.address() as AddressInfo).port;
  };
  // TCP sink: count until FIN, then FIN back. TCP echo.
  const tcpSink = net.createServer((s) => {
    s.on('data', () => {});
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  const tcpEcho = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  const sinkPort = await listen(tcpSink);
  const echoPort = await listen(tcpEcho);
  tcpSink.on('connection', (s) => s.setNoDelay(true));
  tcpEcho.on('connection', (s) => s.setNoDelay(true));

  const egress = (
    stream: Duplex & { accept(): void; reset(c: number, r?: string): void },
    port: number,
  ) => {
    const sock = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => {
      stream.accept();
      stream.pipe(sock);
      sock.pipe(stream);
    });
    sock.on('error', (e) => stream.reset(1, e.message));
    stream.on('error', () => sock.destroy());
  };
  const onStream = (_s: Session, stream: InboundTunnelStream): void => {
    stream.on('error', () => {});
    const host = stream.meta.host;
    if (host === 'sink') {
      stream.accept();
      stream.on('data', () => {});
      stream.on('end', () => stream.end());
    } else if (host === 'idle') {
      stream.accept();
    } else if (host === 'echo') {
      stream.accept();
      stream.pipe(stream);
    } else if (host === 'tcp-sink') egress(stream, sinkPort);
    else egress(stream, echoPort);
  };
  const limits = {
    maxConcurrentStreams: 100_000,
    keepaliveInterval: 0,
    ...LIMITS,
  };
  const authenticate = async () => ({ tenantId: 't', userId: 'u', channel: 'internet' as const });
  const http = createHttp();
  createTunnelServer({ server: http, authenticate, onStream, limits });
  const https = createHttps({ cert: tls.cert, key: tls.key });
  createTunnelServer({ server: https, authenticate, onStream, limits });
  // One WebSocket per flow: /sink counts messages until a text 'end', /echo connects to the
  // TCP echo destination and relays.
  const flowHttp = createHttp();
  const wss = new WebSocketServer({ server: flowHttp, perMessageDeflate: false });
  wss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    if (req.url === '/sink') {
      ws.on('message', () => {});
    } else {
      const sock = net.connect({ host: '127.0.0.1', port: echoPort, noDelay: true });
      const pending: Buffer[] = [];
      let up = false;
      sock.on('connect', () => {
        up = true;
        for (const p of pending) sock.write(p);
      });
      ws.on('message', (d: Buffer) => (up ? sock.write(d) : pending.push(d)));
      sock.on('data', (d) => ws.send(d));
      sock.on('error', () => ws.terminate());
      ws.on('close', () => sock.destroy());
    }
  });
  const ports: Ports = {
    tcpSink: sinkPort,
    tcpEcho: echoPort,
    ws: await listen(http),
    wss: await listen(https),
    flowWs: await listen(flowHttp),
    ca: tls.ca,
  };
  let base = { heap: 0, rss: 0 };
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'mem-base') {
      gc();
      gc();
      base = { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
      process.send!({ cmd: 'mem-base' });
    } else if (m.cmd === 'mem') {
      gc();
      gc();
      const u = process.memoryUsage();
      process.send!({ cmd: 'mem', heap: u.heapUsed - base.heap, rss: u.rss - base.rss });
    } else if (m.cmd === 'exit') process.exit(0);
  });
  // The bench process ended (done, failed or interrupted): nothing is left listening.
  process.on('disconnect', () => process.exit(0));
  process.send!({ cmd: 'ready', ports });
}

// ------------------------------------------------------------------------------------------
// Client side

function meta(host: string, i = 0): OpenMeta {
  return {
    proto: 'tcp',
    host,
    ip: null,
    port: 443,
    flowId: `b${i}`,
    connectionId: `c${i}`,
    channel: 'internet',
    ruleId: null,
    policyId: null,
    srcIp: '127.0.0.1',
    srcPort: 40000,
  };
}

const payload = Buffer.alloc(CHUNK, 0x5a);

/** Writes `bytes` to `s` with backpressure, ends it, resolves when the far end ended too. */
function pump(s: Duplex, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = bytes;
    s.on('error', reject);
    s.on('data', () => {});
    s.once('end', () => resolve());
    const go = (): void => {
      while (left > 0) {
        const n = Math.min(left, CHUNK);
        left -= n;
        const ok = s.write(n === CHUNK ? payload : payload.subarray(0, n));
        if (left === 0) {
          s.end();
          return;
        }
        if (!ok) {
          s.once('drain', go);
          return;
        }
      }
    };
    go();
  });
}

type Opener = (kind: 'sink' | 'echo' | 'tcp-sink', i: number) => Promise<Duplex>;

/** Seconds to move TOTAL bytes over `streams` parallel streams. */
async function throughput(
  open: Opener,
  streams: number,
  kind: 'sink' | 'tcp-sink' = 'sink',
): Promise<number> {
  const per = Math.floor(TOTAL / streams);
  const ss = await Promise.all(Array.from({ length: streams }, (_, i) => open(kind, i)));
  const t0 = performance.now();
  await Promise.all(ss.map((s) => pump(s, per)));
  return (per * streams) / ((performance.now() - t0) / 1000);
}

/** Sequential open + 32-byte echo + close: connections/s and latency (open -> echo) in ms. */
async function connect(open: Opener, n: number): Promise<{ cps: number; lat: number[] }> {
  const msg = Buffer.alloc(32, 0x41);
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const a = performance.now();
    const s = await open('echo', i);
    s.write(msg);
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      s.on('error', reject);
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= msg.length) resolve();
      });
    });
    lat.push(performance.now() - a);
    s.end();
    s.destroy();
  }
  return { cps: n / ((performance.now() - t0) / 1000), lat };
}

function tcpOpener(ports: Ports): Opener {
  return (kind) =>
    new Promise((resolve, reject) => {
      const port = kind === 'echo' ? ports.tcpEcho : ports.tcpSink;
      const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
      if (kind === 'echo') {
        // Write at once like the others do (the data leaves with the connection).
        resolve(s);
        return;
      }
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
}

function tunnelOpener(client: TunnelClient): Opener {
  return async (kind, i) => {
    const s = client.open(meta(kind === 'echo' ? 'tcp-echo' : kind, i));
    s.on('error', () => {});
    return s;
  };
}

/** One WebSocket per flow (ws's createWebSocketStream). */
function flowWsOpener(ports: Ports): Opener {
  return (kind) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(
        `ws://127.0.0.1:${ports.flowWs}/${kind === 'echo' ? 'echo' : 'sink'}`,
        {
          perMessageDeflate: false,
          generateMask: (m: Buffer) => {
            m.fill(0);
          },
        },
      );
      ws.once('error', reject);
      ws.once('open', () => {
        // end() sends the close frame after the data; the server's close ends the readable:
        // the far end has received everything.
        const s = createWebSocketStream(ws, { allowHalfOpen: true });
        s.on('error', () => {});
        resolve(s);
      });
    });
}

function fmtRate(bps: number): string {
  return `${((bps * 8) / 1e9).toFixed(2)} Gbit/s`;
}

interface Row {
  name: string;
  tp1: number;
  tp8: number;
  cps: number;
  p50: number;
  p99: number;
}

async function main(): Promise<void> {
  const child: ChildProcess = stopOnExit(
    fork(fileURLToPath(import.meta.url), ['serve'], {
      execArgv: [
        '--expose-gc',
        ...(process.env.CHILD_ARGS ? process.env.CHILD_ARGS.split(' ') : []),
      ],
    }),
  );
  const ask = <T>(cmd: string): Promise<T> =>
    new Promise((r) => {
      const on = (m: { cmd: string }) => {
        if (m.cmd === cmd) {
          child.off('message', on);
          r(m as T);
        }
      };
      child.on('message', on);
      child.send({ cmd });
    });
  const [ready] = (await once(child, 'message')) as [{ ports: Ports }];
  const ports = ready.ports;
  const limits = {
    keepaliveInterval: 0,
    ...LIMITS,
  };
  const mk = async (url: string, ca?: string): Promise<TunnelClient> => {
    const c = new TunnelClient({
      url,
      channel: 'internet',
      getToken: async () => 'x',
      limits,
      ...(ca ? { ca } : {}),
    });
    c.start();
    await c.waitUp(5000);
    return c;
  };
  const wsClient = await mk(`ws://127.0.0.1:${ports.ws}`);
  const wssClient = await mk(`wss://127.0.0.1:${ports.wss}`, ports.ca);
  const cases: Array<[string, Opener]> = [
    ['direct TCP', tcpOpener(ports)],
    ['tunnel (ws)', tunnelOpener(wsClient)],
    ['tunnel (wss)', tunnelOpener(wssClient)],
    ['WebSocket per flow (ws)', flowWsOpener(ports)],
  ];
  const rows: Row[] = [];
  console.log(
    `tunnel bench: ${TOTAL / 2 ** 20} MiB per throughput run, ${CONNS} connections, ${RUNS} ${RUNS === 1 ? 'run' : 'runs'}, node ${process.version}, ${os.cpus().length} CPUs`,
  );
  // Runs interleave the cases, so each case sees the same machine load (medians per case).
  const only = process.env.ONLY;
  const active = cases.filter(([name]) => !only || name.includes(only));
  if (active.length === 0) {
    throw new BenchSettingError(
      `ONLY=${only} is part of no row's name; the rows are: ${cases.map(([n]) => n).join('; ')}`,
    );
  }
  const samples = new Map<
    string,
    { tp1: number[]; tp8: number[]; cps: number[]; p50: number[]; p99: number[] }
  >();
  for (const [name] of active) samples.set(name, { tp1: [], tp8: [], cps: [], p50: [], p99: [] });
  const egress: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    for (const [name, open] of active) {
      const m = samples.get(name)!;
      m.tp1.push(await throughput(open, 1));
      m.tp8.push(await throughput(open, 8));
      await connect(open, 50); // warm-up
      const c = await connect(open, CONNS);
      m.cps.push(c.cps);
      m.p50.push(pct(c.lat, 50));
      m.p99.push(pct(c.lat, 99));
      if (name === 'tunnel (ws)') egress.push(await throughput(open, 1, 'tcp-sink'));
    }
    console.log(`run ${r + 1}/${RUNS} done`);
  }
  for (const [name] of cases) {
    const m = samples.get(name);
    const row = m
      ? {
          name,
          tp1: median(m.tp1),
          tp8: median(m.tp8),
          cps: median(m.cps),
          p50: median(m.p50),
          p99: median(m.p99),
        }
      : {
          name,
          tp1: Number.NaN,
          tp8: Number.NaN,
          cps: Number.NaN,
          p50: Number.NaN,
          p99: Number.NaN,
        };
    rows.push(row);
    if (!m) continue; // left out by ONLY
    console.log(
      `${name.padEnd(26)} 1 stream ${fmtRate(row.tp1).padStart(14)}  8 streams ${fmtRate(row.tp8).padStart(14)}  ${row.cps.toFixed(0).padStart(6)} conn/s  p50 ${row.p50.toFixed(3)} ms  p99 ${row.p99.toFixed(3)} ms`,
    );
  }
  const egressTp = egress.length > 0 ? median(egress) : Number.NaN;
  if (egress.length > 0)
    console.log(`tunnel (ws) + edge egress TCP, 1 stream: ${fmtRate(egressTp)}`);

  // Memory per idle stream (tunnel over ws; a fresh session so nothing else is in it).
  const memClient = await mk(`ws://127.0.0.1:${ports.ws}`);
  await ask('mem-base');
  gc();
  gc();
  const before = process.memoryUsage();
  const idle = Array.from({ length: IDLE }, (_, i) => memClient.open(meta('idle', i)));
  for (const s of idle) s.on('error', () => {});
  await Promise.all(idle.map((s) => s.opened));
  gc();
  gc();
  const after = process.memoryUsage();
  const edgeMem = await ask<{ heap: number; rss: number }>('mem');
  const mem = {
    streams: IDLE,
    clientHeapPerStream: (after.heapUsed - before.heapUsed) / IDLE,
    clientRssPerStream: (after.rss - before.rss) / IDLE,
    edgeHeapPerStream: edgeMem.heap / IDLE,
    edgeRssPerStream: edgeMem.rss / IDLE,
  };
  console.log(
    `idle streams: ${IDLE}: client heap ${(mem.clientHeapPerStream / 1024).toFixed(2)} KiB/stream (rss ${(mem.clientRssPerStream / 1024).toFixed(2)}), edge heap ${(mem.edgeHeapPerStream / 1024).toFixed(2)} KiB/stream (rss ${(mem.edgeRssPerStream / 1024).toFixed(2)})`,
  );
  for (const s of idle) s.destroy();
  await memClient.close();
  await wsClient.close();
  await wssClient.close();
  const exited = once(child, 'exit');
  child.send({ cmd: 'exit' });
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);

  const direct = rows[0]!;
  const tun = rows[1]!;
  const targets = {
    singleStreamRatio: tun.tp1 / direct.tp1,
    singleStreamRatioOk: tun.tp1 / direct.tp1 >= 0.5,
    addedConnectP50Ms: tun.p50 - direct.p50,
    addedConnectP50Ok: tun.p50 - direct.p50 < 1,
    idleStreamBytes: mem.clientHeapPerStream + mem.edgeHeapPerStream,
    idleStreamOk: mem.clientHeapPerStream < 16 * 1024 && mem.edgeHeapPerStream < 16 * 1024,
  };
  if (!only) {
    console.log(
      `targets: 1-stream tunnel/direct ${(targets.singleStreamRatio * 100).toFixed(0)}% (>= 50%: ${targets.singleStreamRatioOk}), added p50 ${targets.addedConnectP50Ms.toFixed(3)} ms (< 1 ms: ${targets.addedConnectP50Ok}), idle stream < 16 KiB: ${targets.idleStreamOk}`,
    );
  }
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    bytesPerThroughputRun: TOTAL,
    connections: CONNS,
    runs: RUNS,
    rows: rows.map((r) => ({
      name: r.name,
      throughput1BytesPerSec: Math.round(r.tp1),
      throughput8BytesPerSec: Math.round(r.tp8),
      connectionsPerSec: Math.round(r.cps),
      connectP50Ms: +r.p50.toFixed(4),
      connectP99Ms: +r.p99.toFixed(4),
    })),
    tunnelWithEgress1BytesPerSec: Math.round(egressTp),
    idle: mem,
    targets,
  };
  if (only) {
    // Some rows only: the recorded results and docs/benchmarks.md stay as they were.
    console.log(
      'ONLY picks some rows: bench/results/tunnel.json and docs/benchmarks.md not written',
    );
    process.exit(0);
  }
  if (QUICK) {
    writeQuickResults(root, 'tunnel', result);
    process.exit(0);
  }
  writeFileSync(
    join(root, 'bench', 'results', 'tunnel.json'),
    `${JSON.stringify(result, null, 2)}\n`,
  );
  writeDocs(rows, egressTp, mem, targets);
  console.log('written bench/results/tunnel.json and the Tunnel section of docs/benchmarks.md');
  process.exit(0);
}

function writeDocs(
  rows: Row[],
  egressTp: number,
  mem: {
    clientHeapPerStream: number;
    clientRssPerStream: number;
    edgeHeapPerStream: number;
    edgeRssPerStream: number;
    streams: number;
  },
  targets: { singleStreamRatio: number; addedConnectP50Ms: number },
): void {
  const direct = rows[0]!;
  const lines = [
    '<!-- tunnel:begin -->',
    '## Tunnel',
    '',
    `\`${benchCommand('bench:tunnel', ['QUICK', 'RUNS', 'CONNS', 'IDLE', 'CHILD_ARGS', 'DATA_FRAME', 'HW', 'WINDOW'])}\` (bench/tunnel.ts), ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), loopback.`,
    `Client in the bench process, far end (TCP sink/echo, tunnel edge, per-flow WebSocket server) in a child process. ${RUNS === 1 ? 'One run' : `Medians of ${RUNS} runs`}; ${TOTAL / 2 ** 20} MiB per throughput run (split across the streams); ${CONNS} sequential connections.`,
    'Throughput: the far end of the tunnel is the edge itself (a sink), so it measures the tunnel; "with egress" adds the edge\'s TCP hop to a sink. Connections: open, 32-byte echo, close; through a TCP echo destination that the edge (or per-flow WebSocket server) connects to.',
    '',
    '| path | 1 stream | 8 streams | vs direct (1 stream) | conn/s | connect p50 | connect p99 | added p50 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmtRate(r.tp1)} | ${fmtRate(r.tp8)} | ${((r.tp1 / direct.tp1) * 100).toFixed(0)}% | ${r.cps.toFixed(0)} | ${r.p50.toFixed(3)} ms | ${r.p99.toFixed(3)} ms | ${(r.p50 - direct.p50).toFixed(3)} ms |`,
    ),
    `| tunnel (ws) + edge egress TCP | ${fmtRate(egressTp)} | | ${((egressTp / direct.tp1) * 100).toFixed(0)}% | | | | |`,
    '',
    `Memory per idle tunnel stream (${mem.streams} streams opened and accepted, gc before and after): client ${(mem.clientHeapPerStream / 1024).toFixed(2)} KiB heap (${(mem.clientRssPerStream / 1024).toFixed(2)} KiB RSS), edge ${(mem.edgeHeapPerStream / 1024).toFixed(2)} KiB heap (${(mem.edgeRssPerStream / 1024).toFixed(2)} KiB RSS).`,
    '',
    `Targets: tunneled single-stream throughput >= 50% of direct TCP: ${(targets.singleStreamRatio * 100).toFixed(0)}%; added connect latency p50 < 1 ms: ${targets.addedConnectP50Ms.toFixed(3)} ms; < 16 KiB per idle stream: see above.`,
    '<!-- tunnel:end -->',
  ];
  const file = join(root, 'docs', 'benchmarks.md');
  let doc = '';
  try {
    doc = readFileSync(file, 'utf8');
  } catch {
    doc = '# Benchmarks\n';
  }
  const section = lines.join('\n');
  const re = /<!-- tunnel:begin -->[\s\S]*?<!-- tunnel:end -->/;
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, doc);
}

if (process.argv[2] === 'serve') void serve();
else {
  main().catch((err) => {
    if (!(err instanceof BenchSettingError)) throw err;
    process.stderr.write(`bench:tunnel: ${err.message}\n`);
    process.exit(2);
  });
}
