/**
 * Real kernel tests: a namespace whose only route is the TUN, the stack in this process
 * (host namespace), clients inside the namespace. Skipped, saying what is missing, without
 * root, /dev/net/tun, iproute2 or the built addon. Nothing leaves the machine: every
 * destination is answered by this test's own consumers or loopback servers.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import t, { type Test } from 'tap';
import { pipeTcp, relayUdp } from '../../src/capture/tun/glue.js';
import { createNetns, type Netns, runInNetns } from '../../src/capture/tun/netns.js';
import {
  createTunStack,
  type TunStack,
  type TunStackOptions,
  unaccounted,
} from '../../src/capture/tun/stack.js';
import { connectedUdpClient, dnsTcpFrame, dnsUpstream, tunMissing } from './helpers.js';

// What is missing here (tap shows it on each skipped test), or false.
const skip = tunMissing() ?? false;

async function setup(
  t: Test,
  opts: Omit<TunStackOptions, 'device' | 'netns'> = {},
): Promise<{ ns: Netns; stack: TunStack }> {
  const ns = createNetns();
  t.teardown(() => ns.destroy());
  const stack = await createTunStack({ ...opts, device: ns.device, netns: ns.name });
  t.teardown(() => stack.close());
  return { ns, stack };
}

interface Run {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

/** Run a command inside the namespace, killed after `timeoutMs` (bounded). */
function runIn(ns: Netns, cmd: string, args: string[], timeoutMs = 10_000): Promise<Run> {
  const t0 = performance.now();
  const c: ChildProcess = ns.spawn(cmd, args, { stdio: 'pipe' });
  let out = '';
  let err = '';
  c.stdout!.on('data', (d) => (out += d));
  c.stderr!.on('data', (d) => (err += d));
  const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    c.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, ms: performance.now() - t0 });
    });
  });
}

const nodeIn = (ns: Netns, script: string, timeoutMs?: number) =>
  runIn(ns, process.execPath, ['-e', script], timeoutMs);

function listen(server: net.Server | dgram.Socket, t: Test): Promise<number> {
  return new Promise((resolve) => {
    if (server instanceof net.Server) {
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
      t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    } else {
      server.bind(0, '127.0.0.1', () => resolve(server.address().port));
      t.teardown(() => server.close());
    }
  });
}

const HAS_CURL = spawnSync('curl', ['--version']).status === 0;

t.test(
  'TCP to an outside-looking address reaches the listener; the consumer answers',
  { skip },
  async (t) => {
    const infos: unknown[] = [];
    const { ns, stack } = await setup(t, {
      hooks: {
        onTcp(sock, info) {
          infos.push({
            dstIp: info.dstIp,
            dstPort: info.dstPort,
            srcIp: info.srcIp,
            host: info.host,
          });
          sock.once('data', () => sock.end('HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello'));
        },
      },
    });
    const r = HAS_CURL
      ? await runIn(ns, 'curl', ['-sS', '-m', '5', 'http://203.0.113.10/'])
      : await nodeIn(
          ns,
          `const s=require('net').connect(80,'203.0.113.10',()=>s.write('GET / HTTP/1.0\\r\\n\\r\\n'));let b='';s.on('data',d=>b+=d);s.on('end',()=>{console.log(b.split('\\r\\n\\r\\n')[1]);});`,
        );
    t.equal(r.code, 0, r.err);
    t.equal(r.out.trim(), 'hello');
    t.match(infos, [{ dstIp: '203.0.113.10', dstPort: 80, srcIp: '10.255.0.1', host: null }]);
    t.equal(stack.counters.tcpFlows, 1);
    t.equal(stack.counters.tcpAccepted, 1);
    t.ok(stack.counters.tcpOut >= 3 && stack.counters.tcpIn >= 3, 'packets rewritten both ways');
    t.equal(unaccounted(stack.counters), 0);
  },
);

t.test(
  'bypass from the host namespace reaches a loopback server without entering the TUN',
  { skip },
  async (t) => {
    let peer = '';
    const server = net.createServer((s) => {
      peer = s.remoteAddress ?? '';
      s.end('from-host-loopback');
    });
    const port = await listen(server, t);
    const { ns, stack } = await setup(t, {
      hooks: { onTcp: (sock, info) => pipeTcp(sock, info, () => ({ host: '127.0.0.1', port })) },
    });
    const r = await nodeIn(
      ns,
      `const s=require('net').connect(443,'198.51.100.20');let b='';s.on('data',d=>b+=d);s.on('end',()=>console.log(b));s.on('error',e=>{console.log(e.code);process.exit(3)})`,
    );
    t.equal(r.code, 0, r.err);
    t.equal(r.out.trim(), 'from-host-loopback');
    t.equal(peer, '127.0.0.1', 'the bypass socket lives in the host namespace');
    t.equal(stack.counters.tcpFlows, 1, 'only the application flow crossed the TUN');
    // The namespace cannot reach the host's loopback server directly, and only the TUN routes.
    const direct = await nodeIn(
      ns,
      `require('net').connect(${port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',e=>{console.log(e.code);process.exit(4)})`,
    );
    t.equal(direct.code, 4);
    t.equal(direct.out.trim(), 'ECONNREFUSED');
    const routes = spawnSync('ip', ['-n', ns.name, '-4', 'route', 'show'], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    t.same(
      routes.map((l) => l.split(' ')[0]),
      ['default', '10.255.0.0/30'],
      `routes: ${routes.join(' | ')}`,
    );
    t.ok(
      routes.every((l) => l.includes(`dev ${ns.tunName}`)),
      'every route goes through the TUN',
    );
  },
);

t.test(
  'DNS: acquired names resolve to 6.6.x.y and flows carry the name; others via upstream',
  { skip },
  async (t) => {
    const upstream = await dnsUpstream(t, (name, type) =>
      type === 'A' && name === 'plain.example.test' ? '192.0.2.80' : null,
    );
    const uport = upstream.port;
    const hosts: (string | null)[] = [];
    const { ns, stack } = await setup(t, {
      dns: { upstream: { host: '127.0.0.1', port: uport }, resolveOriginal: false },
      hooks: {
        acquire: (n) => n === 'app.contoso.test',
        onTcp(sock, info) {
          hosts.push(info.host);
          sock.end(`${info.host} ${info.dstIp}`);
        },
      },
    });
    const r = await nodeIn(
      ns,
      `const dns=require('dns');const net=require('net');
     dns.lookup('app.contoso.test',{family:4},(e,a)=>{ if(e){console.log('ERR',e.code);process.exit(2)}
       console.log(a);
       dns.lookup('plain.example.test',{family:4},(e2,b)=>{ console.log(e2?e2.code:b);
         const s=net.connect(443,'app.contoso.test');let d='';s.on('data',x=>d+=x);s.on('end',()=>console.log(d));});});`,
    );
    t.equal(r.code, 0, r.err);
    const [synth, plain, reply] = r.out.trim().split('\n');
    t.match(synth, /^6\.6\.\d+\.\d+$/, 'synthetic address for the acquired name');
    t.equal(plain, '192.0.2.80', 'the upstream answer for a name no rule acquires');
    t.equal(reply, `app.contoso.test ${synth}`, 'the TCP flow to the synthetic IP knows its FQDN');
    t.same(hosts, ['app.contoso.test']);
    t.ok(upstream.queries() >= 1, 'the plain name went upstream');
    const table = stack.acquisitionTable();
    t.match(
      table.find((r) => r.fqdn === 'app.contoso.test'),
      { acquired: true, generatedIp: synth },
    );
    t.match(
      table.find((r) => r.fqdn === 'plain.example.test'),
      { acquired: false, generatedIp: '', originalIp: '192.0.2.80' },
    );
    t.equal(stack.hostFor(0xc0000250), 'plain.example.test', 'IP -> FQDN recorded');
  },
);

t.test(
  'DNS over TCP to the synthetic resolver; other ports of the resolver are refused',
  { skip },
  async (t) => {
    const uport = (await dnsUpstream(t, () => '192.0.2.81')).port;
    let consumed = 0;
    const { ns, stack } = await setup(t, {
      dns: { upstream: { host: '127.0.0.1', port: uport }, resolveOriginal: false },
      hooks: {
        acquire: (n) => n === 'app.contoso.test',
        onTcp(sock) {
          consumed++;
          sock.destroy();
        },
      },
    });
    const frame = (id: number, name: string): string => dnsTcpFrame(id, name).toString('hex');
    // Two queries in one segment; answers are read back by their length prefix.
    const queries = frame(7, 'app.contoso.test') + frame(8, 'plain.example.test');
    const r = await nodeIn(
      ns,
      `const net=require('net');const s=net.connect(53,'6.6.255.254');let b=Buffer.alloc(0);const out=[];
       s.on('connect',()=>s.write(Buffer.from('${queries}','hex')));
       s.on('data',d=>{b=Buffer.concat([b,d]);while(b.length>=2&&b.length>=2+b.readUInt16BE(0)){out.push(b.subarray(2,2+b.readUInt16BE(0)).toString('hex'));b=b.subarray(2+b.readUInt16BE(0))}
         if(out.length===2){s.end();console.log(out.join(' '));
           const x=net.connect(80,'6.6.255.254');x.on('connect',()=>console.log('connected'));x.on('error',e=>console.log(e.code))}});
       s.on('error',e=>console.log('dns',e.code))`,
    );
    const [a1, a2, refused] = r.out.trim().split(/\s+/);
    const answers = [a1, a2].map((h) => dnsPacket.decode(Buffer.from(h ?? '', 'hex')));
    const byId = new Map(answers.map((a) => [a.id, a]));
    t.match(
      byId.get(7)?.answers?.[0],
      { name: 'app.contoso.test', data: /^6\.6\.\d+\.\d+$/ },
      'the acquired name: a synthetic address, as over UDP',
    );
    t.match(
      byId.get(8)?.answers?.[0],
      { name: 'plain.example.test', data: '192.0.2.81' },
      'another name: the upstream answer',
    );
    t.equal(
      refused,
      'ECONNREFUSED',
      'the resolver refuses other ports (never forwarded to the real 6.6.255.254)',
    );
    t.equal(stack.counters.dnsTcpConnections, 1);
    t.equal(stack.counters.resolverRefused, 1);
    t.equal(consumed, 0, 'neither flow reached the consumer (never forwarded)');
    t.equal(unaccounted(stack.counters), 0);
  },
);

t.test(
  'UDP echo through the userspace NAT to a host-side loopback echo server',
  { skip },
  async (t) => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) =>
      echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address),
    );
    const eport = await listen(echo, t);
    const { ns, stack } = await setup(t, {
      hooks: { onUdp: relayUdp(() => ({ host: '127.0.0.1', port: eport })) },
    });
    const r = await nodeIn(
      ns,
      `const s=require('dgram').createSocket('udp4');let n=0;s.on('message',m=>{console.log(m.toString());if(++n===3)s.close()});
     for(const w of ['a','bb','ccc'])s.send(w,7777,'198.51.100.7');setTimeout(()=>process.exit(5),8000).unref()`,
    );
    t.equal(r.code, 0, r.err);
    t.same(r.out.trim().split('\n').sort(), ['echo:a', 'echo:bb', 'echo:ccc']);
    t.equal(stack.counters.udpFlows, 1);
    t.equal(stack.counters.udpIn, 3);
  },
);

t.test(
  "a 'reset' flow is refused at once (RST from the TUN), never reaching the listener",
  { skip },
  async (t) => {
    let accepted = 0;
    const { ns, stack } = await setup(t, {
      hooks: {
        classify: (f) => (f.port === 81 ? 'reset' : 'accept'),
        onTcp: (s) => {
          accepted++;
          s.destroy();
        },
      },
    });
    const r = await nodeIn(
      ns,
      `const t0=Date.now();require('net').connect(81,'192.0.2.1').on('error',e=>{console.log(e.code, Date.now()-t0)}).on('connect',()=>console.log('connected'))`,
    );
    const [code, ms] = r.out.trim().split(' ');
    t.equal(code, 'ECONNREFUSED');
    t.ok(Number(ms) < 500, `refused in ${ms} ms`);
    t.equal(accepted, 0);
    t.equal(stack.counters.tcpResetVerdicts, 1);
    t.equal(stack.counters.natEntries, 0);
  },
);

const QUIC_CLIENT = connectedUdpClient('198.51.100.9', 443);

t.test('QUIC (UDP 443) dropped silently', { skip }, async (t) => {
  const { ns, stack } = await setup(t, {
    hooks: { classify: (f) => (f.proto === 17 && f.port === 443 ? 'drop' : 'accept') },
  });
  const r = await nodeIn(ns, QUIC_CLIENT);
  t.equal(r.out.trim(), 'timeout');
  t.ok(stack.counters.dropUdpDeny >= 1);
  t.equal(stack.counters.icmpSent, 0);
});

t.test(
  'QUIC (UDP 443) with icmpOnDrop: ICMP admin-prohibited reaches the socket',
  { skip },
  async (t) => {
    const { ns, stack } = await setup(t, {
      icmpOnDrop: true,
      hooks: { classify: (f) => (f.proto === 17 && f.port === 443 ? 'drop' : 'accept') },
    });
    const r = await nodeIn(ns, QUIC_CLIENT);
    const [what, ms] = r.out.trim().split(' ');
    t.equal(what, 'EHOSTUNREACH', 'the kernel maps code 13 to EHOSTUNREACH on a connected socket');
    t.ok(Number(ms) < 1000, `error after ${ms} ms`);
    t.ok(stack.counters.icmpSent >= 1);
  },
);

t.test(
  'UDP to a closed host-side port: the app gets ECONNREFUSED at once (ICMP port unreachable)',
  { skip },
  async (t) => {
    // Nothing listens on 127.0.0.1:18201 (UDP) in the host namespace: checked by binding it.
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind(18201, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((r) => probe.close(() => r()));
    const { ns, stack } = await setup(t, {
      hooks: { onUdp: relayUdp(() => ({ host: '127.0.0.1', port: 18201 })) },
    });
    const r = await nodeIn(ns, connectedUdpClient('198.51.100.7', 7777));
    const [what, ms] = r.out.trim().split(' ');
    t.equal(what, 'ECONNREFUSED', `the app's connected socket was refused (${r.out.trim()})`);
    t.ok(Number(ms) < 1000, `error after ${ms} ms`);
    t.equal(stack.counters.icmpPortUnreachable, 1, 'one ICMP 3/3 (the app stopped at the first)');
    t.equal(stack.counters.icmpSent, 1);
    t.equal(unaccounted(stack.counters), 0);
  },
);

const HAS_IPERF3 = spawnSync('iperf3', ['--version']).status === 0;
t.test(
  'iperf3 TCP through the TUN to a host-side iperf3 server',
  { skip: skip || (HAS_IPERF3 ? false : 'needs iperf3 (apt-get install iperf3)') },
  async (t) => {
    const port = 15201 + (process.pid % 1000);
    // Our own child (not daemonized), stopped by its pid.
    const srv = spawn('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(() => {
      if (srv.exitCode === null) srv.kill();
    });
    await new Promise((r) => {
      srv.stdout!.once('data', r); // "Server listening on ..."
      setTimeout(r, 2000);
    });
    const { ns, stack } = await setup(t, {
      hooks: { onTcp: (sock, info) => pipeTcp(sock, info, () => ({ host: '127.0.0.1', port })) },
    });
    const bytes = 64 * 1024 * 1024;
    const r = await runIn(
      ns,
      'iperf3',
      ['-c', '203.0.113.50', '-p', String(port), '-n', String(bytes), '-J'],
      60_000,
    );
    t.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    t.equal(j.end.sum_sent.bytes, bytes, 'sent');
    // iperf3's server stops counting at TEST_END, so bytes still in socket buffers along
    // the path are not in sum_received; the byte-exact check is the SHA-256 test below.
    t.ok(
      j.end.sum_received.bytes > bytes * 0.5,
      `received ${j.end.sum_received.bytes} by TEST_END`,
    );
    t.comment(
      `iperf3 through the TUN: ${(j.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`,
    );
    t.ok(stack.counters.tcpFlows >= 2, 'control and data connections');
    t.equal(stack.counters.dropTcpNoFlow, 0);
  },
);

t.test(
  '64 MiB of random bytes through TUN + bypass arrive byte-exact (SHA-256 both ends)',
  { skip },
  async (t) => {
    const { createHash } = await import('node:crypto');
    let got = '';
    let gotBytes = 0;
    const done = new Promise<void>((resolve) => {
      const sink = net.createServer((s) => {
        const h = createHash('sha256');
        s.on('data', (d: Buffer) => {
          gotBytes += d.length;
          h.update(d);
        });
        s.on('end', () => {
          got = h.digest('hex');
          s.end(got);
          resolve();
        });
        s.on('close', () => resolve()); // bounded: a reset connection ends the wait too
      });
      listen(sink, t).then((port) => (sinkPort = port));
    });
    let sinkPort = 0;
    while (!sinkPort) await new Promise((r) => setTimeout(r, 5));
    const { ns } = await setup(t, {
      hooks: {
        onTcp: (sock, info) => pipeTcp(sock, info, () => ({ host: '127.0.0.1', port: sinkPort })),
      },
    });
    const r = await nodeIn(
      ns,
      `const c=require('crypto');const h=c.createHash('sha256');const s=require('net').connect(9,'198.51.100.99');
     let left=64;const chunk=()=>{while(left>0){const b=c.randomBytes(1<<20);h.update(b);left--;if(!s.write(b))return s.once('drain',chunk)}s.end()};
     s.on('connect',chunk);let back='';s.on('data',d=>back+=d);s.on('end',()=>{console.log(h.digest('hex')+' '+back)})`,
      60_000,
    );
    await done;
    const [sent, echoed] = r.out.trim().split(' ');
    t.equal(gotBytes, 64 * 1024 * 1024);
    t.equal(got, sent, 'digest of what arrived = digest of what was sent');
    t.equal(echoed, sent, 'and the answer came back through the TUN');
  },
);

t.test(
  '200 concurrent connections; NAT entries expire after the kernel closes them',
  { skip },
  async (t) => {
    const { ns, stack } = await setup(t, {
      tcpClosedMs: 100,
      hooks: {
        onTcp(sock, info) {
          sock.once('data', (d) => sock.end(`${info.dstPort}:${d}`));
        },
      },
    });
    const r = await nodeIn(
      ns,
      `const net=require('net');let ok=0,bad=0,left=200;
     for(let i=0;i<200;i++){const port=1000+i;const s=net.connect(port,'203.0.113.'+(1+i%50));let b='';
       s.on('connect',()=>s.write('x'+i));s.on('data',d=>b+=d);
       s.on('close',()=>{if(b===port+':x'+i)ok++;else bad++;if(--left===0)console.log(ok+' '+bad)});s.on('error',()=>{})}`,
      30_000,
    );
    t.equal(r.out.trim(), '200 0', r.err);
    t.equal(stack.counters.tcpFlows, 200);
    t.equal(stack.counters.tcpAccepted, 200);
    await new Promise((res) => setTimeout(res, 400));
    stack.sweep();
    t.equal(stack.counters.natEntries, 0, 'every entry released after FIN both ways + tcpClosedMs');
    t.equal(unaccounted(stack.counters), 0);
  },
);

t.test('an idled-out NAT entry resets its connection on both sides', { skip }, async (t) => {
  // The flow's upstream: an echo server on loopback, reached by pipeTcp as `up` does.
  let upstreamClosed = false;
  const echo = net.createServer((s) => {
    s.on('data', (d) => s.write(d.toString().toUpperCase()));
    s.on('error', () => {});
    s.once('close', () => (upstreamClosed = true));
  });
  const echoPort = await listen(echo, t);
  let closed = false;
  const { ns, stack } = await setup(t, {
    tcpIdleMs: 200,
    hooks: {
      onTcp(sock, info) {
        sock.once('close', () => (closed = true));
        pipeTcp(sock, info, () => ({ host: '127.0.0.1', port: echoPort }));
      },
    },
  });
  // The application talks, idles past tcpIdleMs (the test sweeps meanwhile), talks again.
  const run = nodeIn(
    ns,
    `const s=require('net').connect(7,'203.0.113.7');let b='';
     s.on('connect',()=>s.write('a'));
     s.on('data',d=>{b+=d;if(b==='A')setTimeout(()=>s.write('b'),1200)});
     s.on('error',e=>console.log(b+' '+e.code));s.on('close',()=>console.log('closed'))`,
    10_000,
  );
  for (let i = 0; i < 100 && stack.counters.tcpAccepted < 1; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(stack.counters.tcpAccepted, 1, 'accepted');
  await new Promise((r) => setTimeout(r, 500));
  stack.sweep();
  t.equal(stack.counters.natEntries, 0, 'the idle entry is released');
  t.equal(stack.counters.tcpIdleResets, 1, 'and counted');
  for (let i = 0; i < 50 && !closed; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(closed, 'the accepted socket is closed, not left open');
  for (let i = 0; i < 50 && !upstreamClosed; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(upstreamClosed, "and so is the flow's upstream connection");
  const r = await run;
  t.match(r.out, /^A ECONNRESET/, `the application's next segment is reset: ${r.out} ${r.err}`);
  t.equal(unaccounted(stack.counters), 0);
});

t.test(
  'runInNetns: exit code, DNS through resolv.conf, everything removed afterwards',
  { skip },
  async (t) => {
    let nsName = '';
    const code = await runInNetns({
      command: 'sh',
      args: ['-c', 'grep -q "nameserver 6.6.255.254" /etc/resolv.conf && exit 7'],
      stdio: 'ignore',
      onReady: (_s, ns) => {
        nsName = ns.name;
      },
    });
    t.equal(code, 7);
    t.notOk(existsSync(`/var/run/netns/${nsName}`), 'namespace removed');
    t.notOk(existsSync(`/etc/netns/${nsName}`), '/etc/netns entry removed');
    // 128 + the signal's own number (SIGUSR1 is 10), and 127 for a command not found.
    const usr1 = await runInNetns({
      command: 'sh',
      args: ['-c', 'kill -USR1 $$'],
      stdio: 'ignore',
    });
    t.equal(usr1, 138, 'died of SIGUSR1: 138');
    const nf = await runInNetns({ command: 'no-such-command-gsa', stdio: 'ignore' });
    t.equal(nf, 127, 'not found: 127');
  },
);

t.test('runInNetns: SIGTERM to the harness removes the namespace', { skip }, async (t) => {
  const script = `
    import { runInNetns } from ${JSON.stringify(new URL('../../src/capture/tun/netns.ts', import.meta.url).href)};
    const code = await runInNetns({ command: 'sleep', args: ['30'], stdio: 'ignore',
      onReady: (_s, ns) => console.log('READY ' + ns.name) });
    console.log('EXIT ' + code);`;
  const tsImport = new URL(
    '../../node_modules/@tapjs/typescript/dist/esm/import.mjs',
    import.meta.url,
  ).href;
  const c = spawn(process.execPath, ['--import', tsImport, '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  c.stderr.on('data', (d) => (err += d));
  const name = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve(''), 20_000);
    c.stdout.on('data', (d) => {
      out += d;
      const m = /READY (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  t.ok(name, `harness ready ${err}`);
  t.ok(existsSync(`/var/run/netns/${name}`));
  c.kill('SIGTERM');
  const exit = await new Promise<number | null>((r) => c.once('close', (code) => r(code)));
  t.match(out, /EXIT 143/, 'the command died of SIGTERM: 128 + 15');
  t.equal(exit, 0);
  t.notOk(existsSync(`/var/run/netns/${name}`), 'namespace removed after SIGTERM');
  t.notOk(existsSync(`/etc/netns/${name}`));
});
