/**
 * TUN data-path benchmark (Linux, root, iperf3). In one run, side by side:
 *  - veth: iperf3 between two namespaces joined by a veth pair (the kernel-only ceiling);
 *  - tun-bypass: iperf3 client in a namespace whose only route is the TUN, through the
 *    system stack (TUN -> NAT -> kernel listener) and a bypass socket in the host
 *    namespace to an iperf3 server on loopback.
 * Measures single-flow and 4-flow TCP throughput, packets per second through the TUN,
 * request/response latency (added latency = tun - veth), and the emulator's CPU seconds
 * per GiB (process.cpuUsage). Writes bench/results/tun.json.
 *
 *   npm run bench:tun            (BENCH_SECONDS=5 by default)
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipeTcp } from '../src/capture/tun/glue.js';
import { createNetns, harnessUnavailable, type Netns } from '../src/capture/tun/netns.js';
import { createTunStack, type TunStack } from '../src/capture/tun/stack.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const RR_ROUNDS = Number(process.env.BENCH_RR ?? 5000);
const GiB = 1024 ** 3;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; out: string; err: string }> {
  const c: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  c.stdout!.on('data', (d) => {
    out += d;
  });
  c.stderr!.on('data', (d) => {
    err += d;
  });
  const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    c.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

interface Throughput {
  gbps: number;
  bytes: number;
  retransmits: number;
}

async function iperf(
  nsName: string,
  host: string,
  port: number,
  streams: number,
  extra: string[] = [],
): Promise<Throughput> {
  const args = ['netns', 'exec', nsName, 'iperf3', '-c', host, '-p', String(port), '-J'];
  args.push('-t', String(SECONDS), '-P', String(streams), ...extra);
  const r = await run('ip', args, (SECONDS + 30) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 failed: ${r.err || r.out.slice(0, 500)}`);
  const j = JSON.parse(r.out);
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    bytes: j.end.sum_received.bytes,
    retransmits: j.end.sum_sent.retransmits ?? 0,
  };
}

function iperfServer(nsName: string | null, bind: string, port: number): ChildProcess {
  const args = ['-s', '-B', bind, '-p', String(port)];
  const c = nsName
    ? spawn('ip', ['netns', 'exec', nsName, 'iperf3', ...args], { stdio: 'ignore' })
    : spawn('iperf3', args, { stdio: 'ignore' });
  return c;
}

const RR_CLIENT = (host: string, port: number, rounds: number) => `
const s=require('net').connect(${port},'${host}');s.setNoDelay(true);const lat=[];let t0=0,i=0;
const b=Buffer.alloc(1);
s.on('connect',()=>{t0=process.hrtime.bigint();s.write(b)});
s.on('data',()=>{const t=process.hrtime.bigint();lat.push(Number(t-t0)/1e3);
 if(++i>=${rounds}){lat.sort((a,b)=>a-b);console.log(JSON.stringify({p50:lat[lat.length>>1],p99:lat[Math.floor(lat.length*0.99)]}));s.destroy();return}
 t0=process.hrtime.bigint();s.write(b)});`;

async function rr(
  nsName: string,
  host: string,
  port: number,
): Promise<{ p50: number; p99: number }> {
  const r = await run(
    'ip',
    ['netns', 'exec', nsName, process.execPath, '-e', RR_CLIENT(host, port, RR_ROUNDS)],
    120_000,
  );
  if (r.code !== 0) throw new Error(`rr client: ${r.err}`);
  return JSON.parse(r.out);
}

function echoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.pipe(s);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as net.AddressInfo).port }),
    ),
  );
}

async function vethCase(port: number) {
  const id = `${process.pid}`;
  const a = `gsaemu-${id}-bva`;
  const b = `gsaemu-${id}-bvb`;
  const cleanup = () => {
    spawnSync('ip', ['netns', 'del', a]);
    spawnSync('ip', ['netns', 'del', b]);
  };
  cleanup();
  try {
    sh('ip', ['netns', 'add', a]);
    sh('ip', ['netns', 'add', b]);
    sh('ip', [
      'link',
      'add',
      `bva${id}`.slice(0, 15),
      'type',
      'veth',
      'peer',
      'name',
      `bvb${id}`.slice(0, 15),
    ]);
    sh('ip', ['link', 'set', `bva${id}`.slice(0, 15), 'netns', a]);
    sh('ip', ['link', 'set', `bvb${id}`.slice(0, 15), 'netns', b]);
    for (const [ns, dev, addr] of [
      [a, `bva${id}`.slice(0, 15), '10.254.0.1/30'],
      [b, `bvb${id}`.slice(0, 15), '10.254.0.2/30'],
    ] as const) {
      sh('ip', ['-n', ns, 'addr', 'add', addr, 'dev', dev]);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const srv = iperfServer(b, '10.254.0.2', port);
    const echo = spawn(
      'ip',
      [
        'netns',
        'exec',
        b,
        process.execPath,
        '-e',
        `require('net').createServer(s=>{s.setNoDelay(true);s.pipe(s)}).listen(7,'10.254.0.2')`,
      ],
      { stdio: 'ignore' },
    );
    await new Promise((r) => setTimeout(r, 500));
    try {
      const one = await iperf(a, '10.254.0.2', port, 1);
      const four = await iperf(a, '10.254.0.2', port, 4);
      const lat = await rr(a, '10.254.0.2', 7);
      return { single: one, four, latencyUs: lat };
    } finally {
      srv.kill();
      echo.kill();
    }
  } finally {
    cleanup();
  }
}

async function tunCase(port: number, echoPort: number) {
  let ns: Netns | null = null;
  let stack: TunStack | null = null;
  const srv = iperfServer(null, '127.0.0.1', port);
  try {
    ns = createNetns();
    stack = await createTunStack({
      device: ns.device,
      netns: ns.name,
      hooks: {
        onTcp: (sock, info) =>
          pipeTcp(sock, info, (i) => ({
            host: '127.0.0.1',
            port: i.dstPort === 7 ? echoPort : port,
          })),
      },
    });
    await new Promise((r) => setTimeout(r, 500));
    const measure = async <T>(fn: () => Promise<T>) => {
      const c0 = process.cpuUsage();
      const s0 = { ...stack!.counters };
      const t0 = performance.now();
      const result = await fn();
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(c0);
      const c1 = stack!.counters;
      const pkts = c1.rxPackets - s0.rxPackets + (c1.txPackets - s0.txPackets);
      return {
        result,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        packets: pkts,
        pps: pkts / secs,
        avgPacket: (c1.rxBytes - s0.rxBytes + c1.txBytes - s0.txBytes) / Math.max(1, pkts),
        perBatch: (c1.rxPackets - s0.rxPackets) / Math.max(1, c1.batches - s0.batches),
      };
    };
    const one = await measure(() => iperf(ns!.name, '203.0.113.50', port, 1));
    const four = await measure(() => iperf(ns!.name, '203.0.113.50', port, 4));
    // Small segments (128-byte writes, no Nagle): the packet rate the TUN path sustains.
    const small = await measure(() =>
      iperf(ns!.name, '203.0.113.50', port, 1, ['-l', '128', '-N']),
    );
    const lat = await rr(ns.name, '203.0.113.7', 7);
    const perGiB = (m: { cpuSeconds: number; result: Throughput }) =>
      m.cpuSeconds / (m.result.bytes / GiB);
    return {
      single: {
        ...one.result,
        cpuSecondsPerGiB: perGiB(one),
        pps: one.pps,
        avgPacketBytes: one.avgPacket,
        packetsPerBatch: one.perBatch,
      },
      four: {
        ...four.result,
        cpuSecondsPerGiB: perGiB(four),
        pps: four.pps,
        avgPacketBytes: four.avgPacket,
        packetsPerBatch: four.perBatch,
      },
      smallSegments: {
        ...small.result,
        pps: small.pps,
        avgPacketBytes: small.avgPacket,
        packetsPerBatch: small.perBatch,
      },
      latencyUs: lat,
      counters: stack.snapshot(),
    };
  } finally {
    await stack?.close();
    ns?.destroy();
    srv.kill();
  }
}

async function main(): Promise<void> {
  const missing = harnessUnavailable();
  if (missing) {
    console.error(`bench:tun needs root, /dev/net/tun and iproute2: ${missing}`);
    process.exit(2);
  }
  if (spawnSync('iperf3', ['--version']).status !== 0) {
    console.error('bench:tun needs iperf3 (apt-get install iperf3)');
    process.exit(2);
  }
  const port = 25201 + (process.pid % 1000);
  const { server: echo, port: echoPort } = await echoServer();
  try {
    console.log(`veth: iperf3 ${SECONDS}s x (1, 4 flows), ${RR_ROUNDS} round trips ...`);
    const veth = await vethCase(port);
    console.log(`tun-bypass: same through the TUN system stack ...`);
    const tun = await tunCase(port + 1, echoPort);
    const OPENVPN_CLEARTEXT_GBPS = 0.98; // measured elsewhere (issue 5), same machine class
    const result = {
      date: new Date().toISOString(),
      host: {
        cpus: os.cpus().length,
        model: os.cpus()[0]?.model,
        kernel: os.release(),
        node: process.version,
      },
      seconds: SECONDS,
      veth,
      tun,
      ratios: {
        tunVsVethSingle: tun.single.gbps / veth.single.gbps,
        tunVsOpenvpnSingle: tun.single.gbps / OPENVPN_CLEARTEXT_GBPS,
        tunVsOpenvpnFour: tun.four.gbps / OPENVPN_CLEARTEXT_GBPS,
        addedLatencyUsP50: tun.latencyUs.p50 - veth.latencyUs.p50,
      },
      reference: {
        openvpnCleartextGbps: OPENVPN_CLEARTEXT_GBPS,
        note: 'from the issue, not measured in this run',
      },
    };
    const here = dirname(fileURLToPath(import.meta.url));
    const root = here.includes('dist-bench') ? join(here, '..', '..') : join(here, '..');
    const out = join(root, 'bench', 'results', 'tun.json');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    const f = (n: number) => n.toFixed(2);
    console.log(`
                      veth (kernel)   tun-bypass (gsa-emu)
  1 flow  Gbit/s      ${f(veth.single.gbps).padStart(8)}        ${f(tun.single.gbps).padStart(8)}
  4 flows Gbit/s      ${f(veth.four.gbps).padStart(8)}        ${f(tun.four.gbps).padStart(8)}
  RR p50 / p99 us     ${f(veth.latencyUs.p50)} / ${f(veth.latencyUs.p99)}   ${f(tun.latencyUs.p50)} / ${f(tun.latencyUs.p99)}
  TUN packets/s (1 flow, 4 flows, 128-byte writes): ${Math.round(tun.single.pps)}, ${Math.round(tun.four.pps)}, ${Math.round(tun.smallSegments.pps)}
  CPU s/GiB (1 flow, 4 flows): ${f(tun.single.cpuSecondsPerGiB)}, ${f(tun.four.cpuSecondsPerGiB)}
  vs OpenVPN cleartext 0.98 Gbit/s: x${f(result.ratios.tunVsOpenvpnSingle)} (1 flow), x${f(result.ratios.tunVsOpenvpnFour)} (4 flows)
  written ${out}`);
  } finally {
    echo.close();
  }
}

await main();
