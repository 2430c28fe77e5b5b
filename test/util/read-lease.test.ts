/**
 * Lent reads (util/big-read.ts): a connectBigReads socket whose one consumer holds, keeps or
 * lets go of the views it is handed. The bytes a consumer still holds must never change, and
 * buffers must be reused once let go.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import {
  encodeData,
  encodeDgram,
  encodeFrame,
  encodeWindow,
  FrameParser,
  FrameType,
} from '../../src/tunnel/frame.js';
import { loadOrCreateTls } from '../../src/tunnel/tls.js';
import {
  activeLease,
  BigReader,
  connectBigReads,
  connectTlsBigReads,
  keepView,
  lendReads,
  type ReadLease,
} from '../../src/util/big-read.js';
import { prng } from '../classify/gen.js';

/** Deterministic bytes: byte i of stream `seed` (xorshift of seed and i). */
function bytesAt(seed: number, off: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) {
    let x = (seed * 0x9e3779b1 + (off + i) * 0x85ebca6b) >>> 0;
    x ^= x >>> 15;
    x = Math.imul(x, 0x2c1b3c6d) >>> 0;
    x ^= x >>> 12;
    b[i] = x & 0xff;
  }
  return b;
}

/** A loopback server that writes `parts` (each as its own write), then ends. */
async function sender(t: Test, parts: Buffer[]): Promise<number> {
  const server = net.createServer({ noDelay: true }, (s) => {
    s.on('error', () => {});
    for (const p of parts) s.write(p);
    s.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return (server.address() as AddressInfo).port;
}

async function lentSocket(port: number): Promise<net.Socket> {
  const sock = connectBigReads({ port, host: '127.0.0.1' });
  await once(sock, 'connect');
  return sock;
}

t.test('lendReads: only for connectBigReads sockets', async (t) => {
  const port = await sender(t, [Buffer.alloc(10)]);
  const plain = net.connect({ port, host: '127.0.0.1' });
  t.teardown(() => plain.destroy());
  t.equal(lendReads(plain), false, 'a plain socket is not lent');
  const big = await lentSocket(port);
  t.teardown(() => big.destroy());
  t.equal(lendReads(big), true, 'a connectBigReads socket is');
  t.equal(activeLease(), null, 'no lease outside a delivery');
  t.equal(keepView(Buffer.from('x')).toString(), 'x', 'keepView outside a delivery is identity');
});

/**
 * 24 MiB through a lent socket whose consumer holds every view and gives them back late and
 * out of order, checking each one then: the held bytes must not have changed.
 */
async function holdAndCheck(t: Test, sock: net.Socket, seed: number, total: number) {
  t.ok(lendReads(sock));
  const held: { view: Buffer; off: number; release: () => void }[] = [];
  const arrays = new Set<ArrayBufferLike>();
  let got = 0;
  let bad = 0;
  let reads = 0;
  let leased = 0;
  const check = (h: { view: Buffer; off: number }): void => {
    if (!h.view.equals(bytesAt(seed, h.off, h.view.length))) bad++;
  };
  sock.on('data', (c: Buffer) => {
    reads++;
    const lease = activeLease();
    if (lease !== null) leased++;
    arrays.add(c.buffer);
    const release = lease?.hold(c);
    held.push({ view: c, off: got, release: release ?? (() => {}) });
    got += c.length;
    if (held.length > 3) {
      const i = got % held.length;
      const [h] = held.splice(i, 1);
      check(h!);
      h!.release();
    }
  });
  await once(sock, 'end');
  for (const h of held) check(h);
  t.equal(got, total, 'every byte arrived');
  t.equal(bad, 0, 'no held view changed before it was given back');
  t.equal(leased, reads, 'every read was lent');
  t.ok(arrays.size < reads / 4, `buffers reused (${arrays.size} buffers for ${reads} reads)`);
}

const parts24 = (seed: number): Buffer[] => {
  const parts: Buffer[] = [];
  for (let off = 0; off < 24 * 1024 * 1024; off += 1024 * 1024) {
    parts.push(bytesAt(seed, off, 1024 * 1024));
  }
  return parts;
};

t.test('held views never change before they are given back; buffers are reused', async (t) => {
  const sock = await lentSocket(await sender(t, parts24(7)));
  t.teardown(() => sock.destroy());
  await holdAndCheck(t, sock, 7, 24 * 1024 * 1024);
});

t.test('the same over TLS (connectTlsBigReads: one record per read)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-lease-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const m = await loadOrCreateTls(dir);
  const server = tls.createServer({ key: m.key, cert: m.cert }, (s) => {
    s.on('error', () => {});
    for (const p of parts24(9)) s.write(p);
    s.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const sock = connectTlsBigReads({
    port: (server.address() as AddressInfo).port,
    host: '127.0.0.1',
    ca: m.ca,
  });
  t.teardown(() => sock.destroy());
  await once(sock, 'secureConnect');
  await holdAndCheck(t, sock, 9, 24 * 1024 * 1024);
});

t.test('keep: small views are copied, large ones pin the buffer', async (t) => {
  const parts = [bytesAt(3, 0, 400 * 1024), bytesAt(3, 400 * 1024, 400 * 1024)];
  const sock = await lentSocket(await sender(t, parts));
  t.teardown(() => sock.destroy());
  lendReads(sock);
  const kept: { view: Buffer; off: number; copied: boolean }[] = [];
  let off = 0;
  let sawLarge = false;
  sock.on('data', (c: Buffer) => {
    const lease = activeLease() as ReadLease;
    // A small piece and, when the read is large, the rest as one large piece.
    const small = c.subarray(0, Math.min(100, c.length));
    const k1 = lease.keep(small);
    kept.push({ view: k1, off, copied: k1.buffer !== c.buffer });
    if (c.length > 100) {
      const rest = c.subarray(100);
      const k2 = keepView(rest);
      if (rest.length >= 64 * 1024) sawLarge = true;
      kept.push({ view: k2, off: off + 100, copied: k2.buffer !== c.buffer });
    }
    t.equal(lease.keep(Buffer.alloc(100000)).length, 100000, 'foreign views pass through');
    off += c.length;
  });
  await once(sock, 'end');
  t.equal(off, 800 * 1024);
  t.ok(sawLarge, 'some reads were large');
  for (const k of kept) {
    t.ok(k.view.equals(bytesAt(3, k.off, k.view.length)), `kept bytes at ${k.off} unchanged`);
    if (k.view.length < 64 * 1024) t.ok(k.copied, `small view at ${k.off} was copied`);
    else t.notOk(k.copied, `large view at ${k.off} was kept in place (pinned)`);
  }
});

t.test('a second data listener turns lending off (views are never reused)', async (t) => {
  const parts: Buffer[] = [];
  for (let i = 0; i < 8; i++) parts.push(bytesAt(5, i * 512 * 1024, 512 * 1024));
  const sock = await lentSocket(await sender(t, parts));
  t.teardown(() => sock.destroy());
  lendReads(sock);
  const views: { view: Buffer; off: number }[] = [];
  let off = 0;
  let leases = 0;
  sock.on('data', (c: Buffer) => {
    if (activeLease() !== null) leases++;
    views.push({ view: c, off });
    off += c.length;
  });
  sock.on('data', () => {});
  await once(sock, 'end');
  t.equal(leases, 0, 'no read was lent');
  t.ok(
    views.every((v) => v.view.equals(bytesAt(5, v.off, v.view.length))),
    'every view kept its bytes',
  );
});

t.test('property: FrameParser on lent reads keeps every frame intact', async (t) => {
  for (let run = 0; run < 6; run++) {
    const seed = 1000 + run;
    const r = prng(seed);
    // A random frame sequence: DATA of many sizes on a few streams, small control frames,
    // datagrams, and frames that straddle reads.
    const frames: Buffer[] = [];
    const expectData = new Map<number, number>();
    const expectOther: { type: number; id: number; payload: Buffer }[] = [];
    for (let i = 0; i < 400; i++) {
      const id = 1 + 2 * Math.floor(r() * 4);
      const k = r();
      if (k < 0.6) {
        const n = r() < 0.3 ? Math.floor(r() * 300_000) : Math.floor(r() * 3000);
        const off = expectData.get(id) ?? 0;
        frames.push(encodeData(id, bytesAt(id, off, n)));
        expectData.set(id, off + n);
      } else if (k < 0.8) {
        const p = bytesAt(9000 + i, 0, Math.floor(r() * 1400));
        frames.push(encodeDgram(id, p));
        expectOther.push({ type: FrameType.DGRAM, id, payload: p });
      } else if (k < 0.9) {
        const inc = 1 + Math.floor(r() * 1e6);
        frames.push(encodeWindow(id, inc));
        const p = Buffer.alloc(4);
        p.writeUInt32BE(inc);
        expectOther.push({ type: FrameType.WINDOW, id, payload: p });
      } else {
        const p = bytesAt(7000 + i, 0, 4 + Math.floor(r() * 100)); // code + reason
        frames.push(encodeFrame(FrameType.RST, id, p));
        expectOther.push({ type: FrameType.RST, id, payload: p });
      }
    }
    // Written in random cuts, so frames and headers straddle reads.
    const all = Buffer.concat(frames);
    const parts: Buffer[] = [];
    for (let off = 0; off < all.length; ) {
      const n = Math.min(all.length - off, 1 + Math.floor(r() * 200_000));
      parts.push(all.subarray(off, off + n));
      off += n;
    }
    const sock = await lentSocket(await sender(t, parts));
    lendReads(sock);
    const dataOff = new Map<number, number>();
    const pending: { id: number; off: number; view: Buffer; release: () => void }[] = [];
    const others: { type: number; id: number; payload: Buffer }[] = [];
    let bad = 0;
    const settle = (p: (typeof pending)[number]): void => {
      if (!p.view.equals(bytesAt(p.id, p.off, p.view.length))) bad++;
      p.release();
    };
    const parser = new FrameParser(
      (type, id, payload) => {
        if (type === FrameType.DATA) {
          const off = dataOff.get(id) ?? 0;
          dataOff.set(id, off + payload.length);
          const release = activeLease()?.hold(payload) ?? (() => {});
          pending.push({ id, off, view: payload, release });
          // Give back in random order, a few at a time.
          while (pending.length > 2 && r() < 0.7) {
            settle(pending.splice(Math.floor(r() * pending.length), 1)[0]!);
          }
        } else {
          others.push({ type, id, payload: keepView(payload) });
        }
      },
      (code, message) => {
        bad++;
        t.fail(`parser error ${code}: ${message} (seed ${seed})`);
      },
      { partialData: true },
    );
    sock.on('data', (c: Buffer) => parser.push(c));
    await once(sock, 'end');
    sock.destroy();
    for (const p of pending) settle(p);
    t.equal(bad, 0, `seed ${seed}: every DATA piece intact until given back`);
    t.same(
      [...dataOff.entries()].sort(),
      [...expectData.entries()].sort(),
      `seed ${seed}: DATA byte counts per stream`,
    );
    t.equal(others.length, expectOther.length, `seed ${seed}: every other frame`);
    let same = true;
    for (let i = 0; i < others.length; i++) {
      const a = others[i]!;
      const b = expectOther[i]!;
      if (a.type !== b.type || a.id !== b.id || !a.payload.equals(b.payload)) same = false;
    }
    t.ok(same, `seed ${seed}: other frames intact after all reads`);
  }
});

/**
 * 32 MiB from a loopback source through a BigReader with reuse into a socket whose far end
 * reads slowly at times; returns what the far end saw and the buffers the writes used.
 */
async function reuseRun(
  t: Test,
  writableHighWaterMark?: number,
): Promise<{ got: number; total: number; bad: number; buffers: number; writes: number }> {
  const total = 32 * 1024 * 1024 + 5;
  const parts: Buffer[] = [];
  for (let off = 0; off < total; off += 1024 * 1024) {
    parts.push(bytesAt(11, off, Math.min(1024 * 1024, total - off)));
  }
  const srcPort = await sender(t, parts);
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const sink = net.connect({
    port: (server.address() as AddressInfo).port,
    host: '127.0.0.1',
    ...(writableHighWaterMark ? { writableHighWaterMark } : {}),
  });
  const [far] = (await once(server, 'connection')) as [net.Socket];
  t.teardown(() => far.destroy());
  const arrays = new Set<ArrayBufferLike>();
  let writes = 0;
  const write = sink.write.bind(sink) as (c: Buffer, cb?: (e?: Error | null) => void) => boolean;
  (sink as unknown as { write: typeof write }).write = (c, cb) => {
    arrays.add(c.buffer);
    writes++;
    return write(c, cb);
  };
  let got = 0;
  let bad = 0;
  far.on('data', (c: Buffer) => {
    if (!c.equals(bytesAt(11, got, c.length))) bad++;
    got += c.length;
    if (got % 5 === 0) {
      far.pause();
      setTimeout(() => far.resume(), 20);
    }
  });
  const ended = once(far, 'end');
  const reader = new BigReader(undefined, { reuse: true });
  const src = net.connect({ port: srcPort, host: '127.0.0.1', onread: reader.onread });
  t.teardown(() => src.destroy());
  await once(src, 'connect');
  reader.pipeTo(src, sink);
  await ended;
  return { got, total, bad, buffers: arrays.size, writes };
}

t.test(
  'BigReader reuse: lent to a socket sink, exact bytes, buffers read into again',
  async (t) => {
    const r = await reuseRun(t);
    t.equal(r.got, r.total, 'every byte');
    t.equal(r.bad, 0, 'no byte changed on the way');
    t.ok(r.buffers < r.writes / 4, `buffers reused (${r.buffers} buffers for ${r.writes} writes)`);
  },
);

t.test('BigReader reuse: a sink that says yes while it still holds the bytes', async (t) => {
  // A high-water mark far above the kernel's buffers: write() returns true while Node still
  // holds the bytes, so only the write callback tells when a buffer is free again.
  const r = await reuseRun(t, 64 * 1024 * 1024);
  t.equal(r.got, r.total, 'every byte');
  t.equal(r.bad, 0, 'no byte changed on the way');
});
