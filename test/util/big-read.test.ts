import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { BIG_READ_SIZE, BigReader, connectBigReads } from '../../src/util/big-read.js';

/** A server on loopback that sends `data` to each client, then ends. Stopped by the test. */
async function sender(t: Test, data: Buffer): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.end(data);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return (server.address() as AddressInfo).port;
}

/** A sink that takes `delayMs` per chunk, with a small high-water mark, recording chunks. */
function slowSink(delayMs: number, highWaterMark = 64 * 1024) {
  const chunks: Buffer[] = [];
  let maxBuffered = 0;
  let ended = false;
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      maxBuffered = Math.max(maxBuffered, sink.writableLength);
      if (delayMs > 0) setTimeout(cb, delayMs);
      else cb();
    },
    final(cb) {
      ended = true;
      cb();
    },
  });
  return {
    sink,
    chunks,
    get maxBuffered() {
      return maxBuffered;
    },
    get ended() {
      return ended;
    },
  };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * Sends `data` from a loopback server and relays it through a BigReader into a slow sink;
 * resolves once the sink finished. `waitMs` delays pipeTo (input arriving before it).
 */
async function relay(
  t: Test,
  data: Buffer,
  o: { delayMs?: number; highWaterMark?: number; waitMs?: number } = {},
): Promise<ReturnType<typeof slowSink>> {
  const port = await sender(t, data);
  const reader = new BigReader();
  const sock = net.connect({ port, host: '127.0.0.1', onread: reader.onread });
  t.teardown(() => sock.destroy());
  await once(sock, 'connect');
  if (o.waitMs) await new Promise((r) => setTimeout(r, o.waitMs));
  const s = slowSink(o.delayMs ?? 0, o.highWaterMark);
  reader.pipeTo(sock, s.sink);
  await once(s.sink, 'finish');
  return s;
}

t.test('relays every byte in order and ends the sink', async (t) => {
  const data = randomBytes(6 * 1024 * 1024 + 17);
  const s = await relay(t, data);
  const got = Buffer.concat(s.chunks);
  t.equal(got.length, data.length, 'length');
  t.equal(sha(got), sha(data), 'content');
  t.ok(s.ended, 'end of input ended the sink');
  t.ok(
    s.chunks.some((c) => c.length > 64 * 1024),
    `some reads are larger than 64 KiB (largest ${Math.max(...s.chunks.map((c) => c.length))})`,
  );
  t.ok(
    s.chunks.every((c) => c.length <= BIG_READ_SIZE),
    'no chunk exceeds the buffer',
  );
});

t.test('small reads are copied out; large ones are views of a buffer not reused', async (t) => {
  const data = randomBytes(3 * 1024 * 1024);
  const s = await relay(t, data);
  const seen = new Set<ArrayBufferLike>();
  for (const c of s.chunks) {
    if (c.length < BIG_READ_SIZE / 4) {
      t.ok(
        c.buffer.byteLength < BIG_READ_SIZE,
        `small chunk of ${c.length} does not pin the buffer`,
      );
    } else {
      t.notOk(seen.has(c.buffer), 'a large chunk owns its buffer (never overwritten)');
      seen.add(c.buffer);
    }
  }
  t.equal(sha(Buffer.concat(s.chunks)), sha(data), 'content intact after later reads');
});

t.test('backpressure: a slow sink pauses reading (bounded buffering)', async (t) => {
  const data = randomBytes(4 * 1024 * 1024);
  const s = await relay(t, data, { delayMs: 2, highWaterMark: 64 * 1024 });
  t.equal(sha(Buffer.concat(s.chunks)), sha(data), 'content');
  // One read past the high-water mark at most before reading pauses.
  t.ok(s.maxBuffered <= 64 * 1024 + BIG_READ_SIZE, `sink buffered at most ${s.maxBuffered} bytes`);
});

t.test('input that arrives before pipeTo is kept', async (t) => {
  const data = randomBytes(100_000);
  // Let the bytes (and the FIN) arrive first.
  const s = await relay(t, data, { waitMs: 50 });
  t.equal(sha(Buffer.concat(s.chunks)), sha(data), 'content');
});

t.test('connectBigReads: large reads as ordinary data events; pause and resume', async (t) => {
  const data = randomBytes(5 * 1024 * 1024);
  const port = await sender(t, data);
  const sock = connectBigReads({ port, host: '127.0.0.1' });
  t.teardown(() => sock.destroy());
  const chunks: Buffer[] = [];
  let paused = 0;
  sock.on('data', (c: Buffer) => {
    chunks.push(c);
    if (chunks.length % 3 === 0) {
      // A consumer that pauses now and then (as ws does when its receiver is full).
      paused++;
      sock.pause();
      setTimeout(() => sock.resume(), 2);
    }
  });
  await once(sock, 'end');
  t.equal(sha(Buffer.concat(chunks)), sha(data), 'content');
  t.ok(paused > 0, `paused ${paused} times`);
  t.ok(
    chunks.some((c) => c.length > 64 * 1024),
    `reads larger than 64 KiB (largest ${Math.max(...chunks.map((c) => c.length))})`,
  );
});

t.test(
  "an RST behind queued input does not end the sink: the socket's error says it",
  async (t) => {
    // The sender resets with bytes still queued on the reader's side, which libuv reports as
    // an end of input once those bytes are read (util/reset.ts whenEndIsFin).
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.write(Buffer.alloc(4 * 1024 * 1024, 0x61));
      setTimeout(() => s.resetAndDestroy(), 100);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => server.close());
    const reader = new BigReader();
    const sock = net.connect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      allowHalfOpen: true,
      onread: reader.onread,
    });
    t.teardown(() => sock.destroy());
    const how = new Promise<string>((resolve) => {
      sock.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      sock.once('close', () => resolve('close'));
    });
    await once(sock, 'connect');
    // Not read until the reset came (the first read waits for pipeTo).
    await new Promise((r) => setTimeout(r, 300));
    const s = slowSink(0);
    reader.pipeTo(sock, s.sink);
    let timer: NodeJS.Timeout | undefined;
    const none = new Promise<string>((r) => {
      timer = setTimeout(() => r('neither error nor close'), 3000);
    });
    t.equal(await Promise.race([how, none]), 'ECONNRESET', 'the socket reports the reset');
    clearTimeout(timer);
    t.notOk(s.ended, 'the sink was not ended as if the input were complete');
    t.ok(Buffer.concat(s.chunks).length > 0, 'the bytes before the reset went on');
  },
);
