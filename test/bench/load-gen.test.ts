/**
 * bench:proxy's load generator (bench/load-gen.ts) against small fake SOCKS5 proxies on
 * loopback: the clock stops at the last byte, wrong bytes fail the run, a proxy that closes
 * early fails it instead of hanging it, and medians of even counts are right. No benchmark
 * runs; every server is stopped by its test.
 */
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { Target } from '../../bench/load-gen.js';
import * as bench from '../../bench/load-gen.js';

interface FakeOptions {
  /** After the destination ends: wait this long before ending the client's side. */
  holdFinMs?: number;
  /** Rewrite each chunk from the destination (same length). */
  mangle?: (b: Buffer) => Buffer;
  /** Reply success to CONNECT, then end the client's side without connecting. */
  replyThenClose?: boolean;
  /** End the client's side right after the method reply, before any CONNECT reply. */
  closeAfterGreeting?: boolean;
}

/** A SOCKS5 no-auth CONNECT relay (IPv4 only) with the misbehaviours of FakeOptions. */
async function fakeProxy(t: Test, o: FakeOptions = {}): Promise<Target> {
  const socks = new Set<Socket>();
  const server = net.createServer((c) => {
    socks.add(c);
    c.on('error', () => {});
    c.once('data', () => {
      c.write(Buffer.from([5, 0]));
      if (o.closeAfterGreeting) {
        c.end();
        return;
      }
      c.once('data', (r: Buffer) => {
        const ok = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
        if (o.replyThenClose) {
          c.write(ok);
          c.once('data', () => c.end());
          return;
        }
        const d = net.connect({ host: `${r[4]}.${r[5]}.${r[6]}.${r[7]}`, port: r.readUInt16BE(8) });
        socks.add(d);
        d.on('error', () => c.destroy());
        d.once('connect', () => {
          c.write(ok);
          c.on('data', (b: Buffer) => d.write(b));
          d.on('data', (b: Buffer) => c.write(o.mangle ? o.mangle(b) : b));
          d.on('end', () => {
            if (o.holdFinMs) setTimeout(() => c.end(), o.holdFinMs);
            else c.end();
          });
          c.on('close', () => d.destroy());
        });
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of socks) s.destroy();
    server.close();
  });
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

async function source(t: Test): Promise<Target> {
  const src = await bench.startSource();
  t.teardown(() => src.close());
  return { host: '127.0.0.1', port: src.port };
}

/** Settles like p, or rejects after ms. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

const MiB = 2 ** 20;

t.test(
  'throughput stops the clock at the last byte, not when the proxy relays the FIN',
  async (t) => {
    const dst = await source(t);
    const holding = await fakeProxy(t, { holdFinMs: 1000 });
    const bytes = 8 * MiB;
    const rate = await bench.throughput((d) => bench.socksConnect(holding, d), dst, 1, bytes);
    // 8 MiB through a loopback relay takes tens of ms here; the FIN comes 1 s after it.
    const secs = bytes / (rate * 1e9);
    t.ok(secs < 0.5, `8 MiB measured as ${secs.toFixed(3)} s`);
  },
);

t.test('throughput rejects a proxy that delivers the right number of wrong bytes', async (t) => {
  const dst = await source(t);
  const zeroing = await fakeProxy(t, { mangle: (b) => Buffer.alloc(b.length) });
  await t.rejects(
    within(
      bench.throughput((d) => bench.socksConnect(zeroing, d), dst, 1, 4 * MiB),
      5000,
    ),
  );
});

t.test('connRate fails, not hangs, when a proxy closes without relaying the answer', async (t) => {
  const dst = await source(t);
  const proxy = await fakeProxy(t, { replyThenClose: true });
  await t.rejects(
    within(
      bench.connRate((d) => bench.socksConnect(proxy, d), dst, 1),
      2000,
    ),
    { message: /^(?!still pending)/ },
  );
});

t.test('socksConnect fails, not hangs, when a proxy closes before its CONNECT reply', async (t) => {
  const dst = await source(t);
  const proxy = await fakeProxy(t, { closeAfterGreeting: true });
  await t.rejects(within(bench.socksConnect(proxy, dst), 2000), {
    message: /^(?!still pending)/,
  });
});

t.test('connRate through a working proxy still completes (control)', async (t) => {
  const dst = await source(t);
  const proxy = await fakeProxy(t);
  const rate = await within(
    bench.connRate((d) => bench.socksConnect(proxy, d), dst, 20),
    5000,
  );
  t.ok(rate > 0, `${rate.toFixed(0)} conn/s`);
});

t.test('the median of an even number of runs is the mean of the middle two', async (t) => {
  t.equal(bench.median([1, 2, 3, 4]), 2.5);
  t.equal(bench.median([5, 1, 3]), 3);
});
