/**
 * Stream.spliceTo(socket): incoming DATA written straight into a socket, with credit returned
 * as the socket writes, the peer's FIN ending the socket, and bytes that came first kept in
 * order.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { Stream } from '../../src/tunnel/stream.js';
import { meta, pair, random, sha } from './helpers.js';

/**
 * A loopback socket pair: `near` is what the stream splices into, `far` reads what arrives
 * (slowly when `pauseMs` > 0). Resolves the far side's bytes and whether it saw the end.
 */
async function socketPair(
  t: Test,
  pauseMs = 0,
): Promise<{ near: net.Socket; received: Promise<{ sha: string; n: number; ended: boolean }> }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const near = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [far] = (await once(server, 'connection')) as [net.Socket];
  await once(near, 'connect');
  t.teardown(() => {
    near.destroy();
    far.destroy();
  });
  const received = new Promise<{ sha: string; n: number; ended: boolean }>((resolve) => {
    const h = createHash('sha256');
    let n = 0;
    far.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
      if (pauseMs > 0 && n % 3 === 0) {
        far.pause();
        setTimeout(() => far.resume(), pauseMs);
      }
    });
    let done = false;
    const finish = (ended: boolean): void => {
      if (done) return;
      done = true;
      resolve({ sha: h.digest('hex'), n, ended });
    };
    far.once('end', () => finish(true));
    far.once('close', () => finish(false));
  });
  return { near, received };
}

/** An opened stream pair over in-memory transports: the client's end and the server's. */
async function streams(t: Test): Promise<{ local: Stream; remote: Stream }> {
  const { client, server } = pair();
  t.teardown(() => {
    client.close();
    server.close();
  });
  const remoteP = once(server, 'stream') as Promise<[Stream]>;
  const local = client.open(meta()) as Stream;
  const [remote] = await remoteP;
  // Teardown closes the sessions, which resets what is still open.
  local.on('error', () => {});
  remote.on('error', () => {});
  remote.accept();
  await local.opened;
  return { local, remote };
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref(),
    ),
  ]);

t.test('spliced: many windows of data arrive exactly, FIN ends the socket', async (t) => {
  const { local, remote } = await streams(t);
  const { near, received } = await socketPair(t, 2);
  const streamEnded = once(local, 'end');
  local.spliceTo(near);
  const data = random(6 * 1024 * 1024 + 7); // far beyond the 256 KiB initial window
  remote.end(data);
  const r = await within(received, 20_000, 'spliced transfer');
  t.equal(r.n, data.length, 'byte count');
  t.equal(r.sha, sha(data), 'bytes');
  t.ok(r.ended, "the peer's FIN ended the socket");
  await within(streamEnded, 5000, "the stream's Readable ends too");
  t.equal(local.bytesReceived, data.length, 'bytesReceived');
});

t.test('bytes that came before spliceTo go first, in order; then the rest', async (t) => {
  const { local, remote } = await streams(t);
  const { near, received } = await socketPair(t);
  const first = random(100_000);
  const second = random(700_000);
  remote.write(first);
  // Let the first bytes arrive and wait, unread, in the stream.
  for (let i = 0; i < 100 && local.recvQueued < first.length; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(local.recvQueued, first.length, 'queued before the splice');
  local.spliceTo(near);
  remote.end(second);
  const r = await within(received, 20_000, 'transfer');
  t.equal(r.sha, sha(Buffer.concat([first, second])), 'all bytes, in order');
  t.ok(r.ended, 'ended');
});

t.test('bytes already in the Readable and a FIN before spliceTo are not lost', async (t) => {
  const { local, remote } = await streams(t);
  const { near, received } = await socketPair(t);
  const data = random(50_000);
  remote.end(data);
  // A reader that looked once (the bytes move into the Readable) and stopped.
  local.once('readable', () => {});
  for (let i = 0; i < 100 && !(local.readableLength > 0 && local.remoteFin); i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  t.ok(local.remoteFin, 'FIN arrived before the splice');
  t.ok(local.readableLength > 0, 'bytes wait in the Readable');
  local.spliceTo(near);
  const r = await within(received, 10_000, 'transfer');
  t.equal(r.sha, sha(data), 'bytes');
  t.ok(r.ended, 'ended');
});

t.test(
  'a destroyed socket under a spliced stream: no throw, the stream can be reset',
  async (t) => {
    const { local, remote } = await streams(t);
    const { near } = await socketPair(t);
    near.on('error', () => {});
    local.spliceTo(near);
    remote.write(random(200_000));
    near.destroy();
    remote.write(random(200_000));
    await new Promise((r) => setTimeout(r, 50));
    const reset = once(remote, 'reset');
    local.destroy();
    const [code] = (await within(reset, 5000, 'reset at the peer')) as [number];
    t.equal(code, 0, 'the peer sees RST CANCEL');
  },
);
