import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import type { Test } from 'tap';
import { addonPath, FakeDevice } from '../../src/capture/tun/device.js';
import { harnessUnavailable } from '../../src/capture/tun/netns.js';
import { TunStack, type TunStackOptions, type UdpFlow } from '../../src/capture/tun/stack.js';
import { checksum, pseudo4, wr16, wr32 } from '../../src/parse/checksum.js';
import * as v4 from '../../src/parse/ipv4.js';
import { decodePacket, newPacket } from '../../src/parse/packet.js';
import { parseIPv4 } from '../../src/util/ip.js';
import { tsEvalArgs } from '../util/ts-child.js';

/** Runs `ip ...args`; throws with ip's stderr when it fails; returns its stdout. */
export function ipCmd(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Arguments for `ip` that run a TypeScript module `script` (ESM, given inline) with this
 * node inside namespace `ns`, through tap's TypeScript loader.
 */
export function tsInNsArgs(ns: string, script: string): string[] {
  return ['netns', 'exec', ns, process.execPath, ...tsEvalArgs(script)];
}

/**
 * A simulated host for host-mode TUN tests: namespace `host` (192.0.2.2/24) joined by a
 * veth pair (`<tag>h`, `<tag>f`) to namespace `far` (192.0.2.1/24, with each of `farLo` on
 * its loopback), the host's default route via 192.0.2.1. Creates both namespaces; the
 * caller removes them (`ip netns del`) in its teardown.
 */
export function simulatedHost(host: string, far: string, tag: string, farLo: string[]): void {
  ipCmd(['netns', 'add', host]);
  ipCmd(['netns', 'add', far]);
  ipCmd(['link', 'add', `${tag}h`, 'type', 'veth', 'peer', 'name', `${tag}f`]);
  ipCmd(['link', 'set', `${tag}h`, 'netns', host]);
  ipCmd(['link', 'set', `${tag}f`, 'netns', far]);
  ipCmd(['-n', host, 'addr', 'add', '192.0.2.2/24', 'dev', `${tag}h`]);
  ipCmd(['-n', far, 'addr', 'add', '192.0.2.1/24', 'dev', `${tag}f`]);
  for (const [ns, dev] of [
    [host, `${tag}h`],
    [far, `${tag}f`],
  ] as const) {
    ipCmd(['-n', ns, 'link', 'set', dev, 'up']);
    ipCmd(['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  for (const a of farLo) ipCmd(['-n', far, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
  ipCmd(['-n', host, 'route', 'add', 'default', 'via', '192.0.2.1']);
}

export const ip = (s: string): number => parseIPv4(s);

/** A well-formed IPv4/TCP packet (checksums computed from scratch). */
export function tcp4(
  src: string,
  sport: number,
  dst: string,
  dport: number,
  flags: number,
  seq = 1000,
  ack = 0,
  payload: Uint8Array = new Uint8Array(0),
): Buffer {
  const len = 40 + payload.length;
  const b = Buffer.alloc(len);
  b[0] = 0x45;
  wr16(b, 2, len);
  wr16(b, 4, 7);
  wr16(b, 6, 0x4000);
  b[8] = 64;
  b[9] = 6;
  wr32(b, 12, ip(src));
  wr32(b, 16, ip(dst));
  wr16(b, 10, checksum(b, 0, 20));
  wr16(b, 20, sport);
  wr16(b, 22, dport);
  wr32(b, 24, seq);
  wr32(b, 28, ack);
  b[32] = 5 << 4;
  b[33] = flags;
  wr16(b, 34, 65535);
  b.set(payload, 40);
  wr16(b, 36, checksum(b, 20, len - 20, pseudo4(ip(src), ip(dst), 6, len - 20)));
  return b;
}

/** A well-formed IPv4/UDP packet. */
export function udp4(
  src: string,
  sport: number,
  dst: string,
  dport: number,
  payload: Uint8Array,
): Buffer {
  const len = 28 + payload.length;
  const b = Buffer.alloc(len);
  b[0] = 0x45;
  wr16(b, 2, len);
  b[8] = 64;
  b[9] = 17;
  wr32(b, 12, ip(src));
  wr32(b, 16, ip(dst));
  wr16(b, 10, checksum(b, 0, 20));
  wr16(b, 20, sport);
  wr16(b, 22, dport);
  wr16(b, 24, len - 20);
  b.set(payload, 28);
  wr16(b, 26, checksum(b, 20, len - 20, pseudo4(ip(src), ip(dst), 17, len - 20)) || 0xffff);
  return b;
}

/** Decode and verify both checksums of an IPv4 TCP/UDP/ICMP packet. */
export function verify(b: Buffer): { ok: boolean; rec: ReturnType<typeof newPacket> } {
  const rec = newPacket();
  const v = decodePacket(b, rec);
  if (v !== 'ok' || rec.family !== 4) return { ok: false, rec };
  if (!v4.headerChecksumOk(b, 0)) return { ok: false, rec };
  const ps = rec.proto === 1 ? 0 : pseudo4(rec.src4, rec.dst4, rec.proto, rec.l4Len);
  return { ok: checksum(b, rec.l4Off, rec.l4Len, ps) === 0, rec };
}

/**
 * A node script (`node -e`) for inside a namespace: a connected UDP socket (dgram
 * connect(), then send) to `host:port` (an address or a name), sending again after 300 ms;
 * prints the error code and its delay in ms (`ECONNREFUSED 12`), `reply`, or `timeout`
 * after `timeoutMs`.
 */
export const connectedUdpClient = (host: string, port: number, timeoutMs = 1500): string =>
  `const s=require('dgram').createSocket('udp4');
  s.connect(${port},'${host}',()=>{const t0=Date.now();s.send('first');
    s.on('error',e=>{console.log(e.code, Date.now()-t0);process.exit(0)});
    s.on('message',()=>{console.log('reply');process.exit(0)});
    setTimeout(()=>{s.send('retry')},300);
    setTimeout(()=>{console.log('timeout');process.exit(0)},${timeoutMs})});`;

/** A DNS query for `name` (A), with the 2-byte length prefix of DNS over TCP (RFC 7766). */
export function dnsTcpFrame(id: number, name: string): Buffer {
  const m = dnsPacket.encode({
    id,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name }],
  });
  const b = Buffer.alloc(2 + m.length);
  b.writeUInt16BE(m.length, 0);
  m.copy(b, 2);
  return b;
}

/**
 * An upstream DNS server on 127.0.0.1 (UDP), closed at teardown: it answers each query with
 * the address `answer(name, type)` gives (none: an empty answer), after `delayMs`.
 */
export async function dnsUpstream(
  t: Test,
  answer: (name: string, type: string) => string | null,
  delayMs = 0,
): Promise<{ port: number; queries(): number }> {
  const sock = dgram.createSocket('udp4');
  let queries = 0;
  sock.on('message', (m, rinfo) => {
    queries++;
    const q = dnsPacket.decode(m);
    const qq = q.questions![0]!;
    const a = answer(qq.name, qq.type);
    const reply = dnsPacket.encode({
      id: q.id,
      type: 'response',
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: a === null ? [] : [{ type: 'A', name: qq.name, ttl: 60, data: a }],
    });
    const send = () => sock.send(reply, rinfo.port, rinfo.address);
    if (delayMs > 0) setTimeout(send, delayMs);
    else send();
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => sock.close());
  return { port: sock.address().port, queries: () => queries };
}

/**
 * Why a test cannot use a real TUN device here (not Linux, not root, no /dev/net/tun or
 * `ip`: harnessUnavailable; the addon not built), or null.
 */
export function tunMissing(): string | null {
  return (
    harnessUnavailable() ??
    (existsSync(addonPath())
      ? null
      : `the addon is not built (${addonPath()}): node scripts/build-addon.mjs`)
  );
}

/**
 * A TunStack on a FakeDevice with no listener (listen port 4000) whose onUdp hook collects
 * the UDP flows it is given; `opts` replaces any option. Closed by `t`'s teardown.
 */
export function udpStack(t: Test, opts: Partial<TunStackOptions> = {}) {
  const dev = new FakeDevice();
  const flows: UdpFlow[] = [];
  const stack = new TunStack({
    device: dev,
    listen: false,
    listenPort: 4000,
    hooks: { onUdp: (f) => void flows.push(f) },
    ...opts,
  });
  t.teardown(() => stack.close());
  return { dev, stack, flows };
}
