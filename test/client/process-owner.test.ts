/**
 * ProcessOwners against a fake /proc tree (net/tcp, net/tcp6, <pid>/fd symlinks, comm):
 * matching by port pair, IPv6, coalescing, caching, and a graceful null when disabled, when
 * /proc is missing, when a process's fds cannot be read, or when the socket is gone.
 */

import { once } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { addonInodeOf, ProcessOwners } from '../../src/client/process-owner.js';
import { fakeProc, tcp6Line, tcpLine } from './fake-proc.js';

t.test('finds the owner by the client port and the listener port (tcp and tcp6)', async (t) => {
  const f = fakeProc(t);
  // The proxy's own end of each connection (local 1080) belongs to pid 10 (gsa-emu).
  f.tcp(
    tcpLine(0, 1080, 0, 500) + // the listener
      tcpLine(1, 1080, 40001, 501) +
      tcpLine(2, 40001, 1080, 601) +
      tcpLine(3, 40002, 1080, 0), // TIME_WAIT: no inode
  );
  f.tcp6(tcp6Line(0, 40003, 1080, 701));
  f.proc(10, 'gsa-emu', [500, 501]);
  f.proc(20, 'curl', [601]);
  f.proc(30, 'wget', [701]);
  const o = new ProcessOwners({ enabled: true, procRoot: f.root });
  t.teardown(() => o.close());
  const [a, b, c, d] = await Promise.all([
    o.lookup(40001, 1080),
    o.lookup(40003, 1080),
    o.lookup(40002, 1080),
    o.lookup(40001, 8080),
  ]);
  t.same(a, { name: 'curl', pid: 20 });
  t.same(b, { name: 'wget', pid: 30 }, 'IPv6 (tcp6)');
  t.equal(c, null, 'a socket without an inode (closed) has no owner');
  t.equal(d, null, 'the listener port must match too');
  t.equal(o.scans, 1, 'concurrent lookups share one scan');

  t.same(await o.lookup(40001, 1080), { name: 'curl', pid: 20 });
  t.equal(o.scans, 1, 'a repeated lookup is answered from the cache');
});

t.test('cache entries expire; recent owners are searched first', async (t) => {
  const f = fakeProc(t);
  f.tcp(tcpLine(0, 40010, 1080, 801) + tcpLine(1, 40011, 1080, 802));
  f.proc(20, 'curl', [801, 802]);
  const o = new ProcessOwners({ enabled: true, procRoot: f.root, cacheMs: 0, minIntervalMs: 0 });
  t.teardown(() => o.close());
  t.same(await o.lookup(40010, 1080), { name: 'curl', pid: 20 });
  t.same(await o.lookup(40011, 1080), { name: 'curl', pid: 20 });
  t.equal(o.scans, 2);
  t.same(await o.lookup(40010, 1080), { name: 'curl', pid: 20 });
  t.equal(o.scans, 3, 'with cacheMs 0 every lookup scans');
});

t.test('null, never an error: disabled, no /proc, unreadable fds, bad ports', async (t) => {
  const f = fakeProc(t);
  f.tcp(tcpLine(0, 40020, 1080, 901));
  // pid 40's fd folder is not readable (as for another user's process without root).
  mkdirSync(join(f.root, '40'));
  writeFileSync(join(f.root, '40', 'fd'), 'not a folder');
  writeFileSync(join(f.root, '40', 'comm'), 'secret\n');

  const off = new ProcessOwners({ enabled: false, procRoot: f.root });
  t.equal(await off.lookup(40020, 1080), null, 'disabled (not Linux)');
  t.equal(off.scans, 0);

  const o = new ProcessOwners({ enabled: true, procRoot: f.root });
  t.teardown(() => o.close());
  t.equal(await o.lookup(40020, 1080), null, 'the owner cannot be read');
  t.equal(await o.lookup(0, 1080), null);
  t.equal(await o.lookup(40020, -1), null);

  const none = new ProcessOwners({ enabled: true, procRoot: join(f.root, 'missing') });
  t.teardown(() => none.close());
  t.equal(await none.lookup(40020, 1080), null, 'no /proc/net/tcp');

  // close() answers whatever waits.
  const c = new ProcessOwners({ enabled: true, procRoot: f.root, minIntervalMs: 10_000 });
  await c.lookup(1, 2); // one scan; the next waits 10 s
  const waiting = c.lookup(40020, 1080);
  c.close();
  t.equal(await waiting, null, 'close() answers pending lookups');
});

t.test('bounded: over maxPending a lookup is null at once; a slow scan times out', async (t) => {
  const f = fakeProc(t);
  f.tcp(tcpLine(0, 40030, 1080, 1001));
  f.proc(20, 'curl', [1001]);
  const o = new ProcessOwners({
    enabled: true,
    procRoot: f.root,
    maxPending: 2,
    timeoutMs: 200,
  });
  t.teardown(() => o.close());
  const all = await Promise.all([1, 2, 3, 4].map((i) => o.lookup(40030 + i - 1, 1080)));
  t.same(all[0], { name: 'curl', pid: 20 });
  t.equal(all[2], null);
  t.equal(all[3], null, 'beyond maxPending');
  t.equal(o.scans, 1);

  // A scan that cannot start before the timeout: the lookup still answers in time.
  const slow = new ProcessOwners({
    enabled: true,
    procRoot: f.root,
    minIntervalMs: 5000,
    timeoutMs: 100,
  });
  t.teardown(() => slow.close());
  await slow.lookup(40030, 1080);
  const t0 = Date.now();
  t.equal(await slow.lookup(40031, 1080), null);
  t.ok(Date.now() - t0 < 1000, 'answered within the timeout');
});

t.test(
  'a table of 20,000 sockets: only the wanted port pair matches, wherever it is',
  async (t) => {
    const f = fakeProc(t);
    const wantPeer = 40123;
    const listener = 1080;
    const lines: string[] = [];
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      // TIME_WAIT-like noise, including the proxy's own end (local 1080, remote the peer)
      // and the peer port paired with other listeners.
      const local = i % 3 === 0 ? listener : i % 3 === 1 ? wantPeer : 1024 + rnd(60_000);
      const remote = i % 3 === 0 ? wantPeer : i % 3 === 1 ? 1081 + rnd(100) : 1024 + rnd(60_000);
      if (local === wantPeer && remote === listener) continue;
      lines.push(tcpLine(i, local, remote, 100_000 + i));
    }
    const at = 12_345;
    lines.splice(at, 0, tcpLine(at, wantPeer, listener, 4242));
    f.tcp(lines.join(''));
    f.proc(30, 'gsa-emu', [100_000, 100_003]);
    f.proc(31, 'curl', [4242]);
    const owners = new ProcessOwners({ procRoot: f.root, enabled: true });
    t.teardown(() => owners.close());
    t.same(await owners.lookup(wantPeer, listener), { name: 'curl', pid: 31 });
    t.equal(await owners.lookup(wantPeer, 1079), null, 'another listener port: nobody');
  },
);

t.test(
  'sock_diag inodes: no /proc/net/tcp read; 0 is "no such socket"; errors fall back',
  async (t) => {
    const f = fakeProc(t);
    // No net/tcp at all: reading it would fail the lookup.
    rmSync(join(f.root, 'net'), { recursive: true });
    f.proc(50, 'curl', [4242]);
    const asked: unknown[][] = [];
    const o = new ProcessOwners({
      enabled: true,
      procRoot: f.root,
      inodeOf: (...a) => {
        asked.push(a);
        return a[2] === 40100 ? 4242 : 0;
      },
    });
    t.teardown(() => o.close());
    t.ok(o.fastInodes);
    const addr = { peerIp: '::ffff:127.0.0.1', listenerIp: '::ffff:127.0.0.1' };
    t.same(await o.lookup(40100, 1080, addr), { name: 'curl', pid: 50 });
    t.same(asked[0], [4, '127.0.0.1', 40100, '127.0.0.1', 1080], 'v4-mapped: asked as IPv4');
    const scans = o.scans;
    t.equal(await o.lookup(40101, 1080, addr), null, 'no such socket: null at once');
    t.equal(o.scans, scans, 'without a scan');

    const failing = new ProcessOwners({
      enabled: true,
      procRoot: f.root,
      inodeOf: () => {
        throw new Error('EPERM');
      },
    });
    t.teardown(() => failing.close());
    t.equal(await failing.lookup(40100, 1080, addr), null, 'falls back to /proc/net/tcp (absent)');
    t.equal(failing.scans, 1);
  },
);

const nativeInodeOf = addonInodeOf();
const noNative = nativeInodeOf
  ? false
  : process.platform !== 'linux'
    ? 'sock_diag is Linux-only'
    : 'the native addon is not built (native/tun/build/Release/tun.node): run node scripts/build-addon.mjs';

t.test('the native sock_diag lookup finds this process', { skip: noNative }, async (t) => {
  const inodeOf = nativeInodeOf!;
  const srv = createServer(() => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const port = (srv.address() as AddressInfo).port;
  const c = connect(port, '127.0.0.1');
  await once(c, 'connect');
  t.teardown(() => c.destroy());
  t.ok(inodeOf(4, '127.0.0.1', c.localPort!, '127.0.0.1', port) > 0, 'an inode');
  t.equal(inodeOf(4, '127.0.0.1', c.localPort!, '127.0.0.1', port === 65535 ? 1 : port + 1), 0);
  const o = new ProcessOwners({ enabled: true });
  t.teardown(() => o.close());
  t.ok(o.fastInodes, 'used by default');
  const p = await o.lookup(c.localPort!, port, { peerIp: '127.0.0.1', listenerIp: '127.0.0.1' });
  t.equal(p?.pid, process.pid, 'this process owns the socket');
});
