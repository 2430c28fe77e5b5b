/**
 * A peer's RST that comes with (or just after) data is passed on as a reset, not as a clean
 * end (FIN) with the rest of the data silently missing.
 *
 * libuv reports such an RST as an end of input: a read that drains the socket's queue and
 * sees POLLHUP is taken for EOF, and the ECONNRESET the next read(2) would give is never read
 * (uv__stream_io). A relay that passed that "end" on as a FIN handed the application a
 * transfer cut short that looked complete: the destination's RST drops what its kernel had
 * not sent yet. util/reset.ts `whenEndIsFin` probes such an end with a zero-byte write.
 *
 * Each case makes the RST meet queued data: the sender writes more than the socket buffers
 * hold and resets at once, while the receiver is not reading. Both directions, bypassed and
 * tunneled (private channel, through the edge's connector). The bypassed cases fail without
 * the probe every time; the tunneled ones only when the RST meets the edge's (or the
 * client's) read at the wrong moment, as tunnel backpressure usually has the read paused
 * and the next read(2) then returns the ECONNRESET itself. test/util/big-read.test.ts
 * covers the edge's side (BigReader.pipeTo) deterministically.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { domainRequest, hex, rawClient, sleep, startSocks, u16 } from '../capture/helpers.js';
import { startTestWorld, until } from '../e2e/helpers.js';
import { endedHow } from '../util/ended-how.js';

/** More than the loopback socket buffers hold, so the sender's RST drops some. */
const BLOB = 32 * 1024 * 1024;

/** A server that sends BLOB bytes to each connection and resets it at once. */
async function resettingSource(t: { teardown(fn: () => unknown): void }) {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.write(Buffer.alloc(BLOB, 0x61));
    // After the first bytes left, so that the relay is connected and reading.
    setTimeout(() => s.resetAndDestroy(), 100);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/** A server that does not read for `stallMs`, then records how each connection ended. */
async function stalledSink(t: { teardown(fn: () => unknown): void }, stallMs: number) {
  const ends: string[] = [];
  let bytes = 0;
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.pause();
    s.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    setTimeout(() => s.resume(), stallMs);
    void endedHow(s).then((how) => ends.push(how));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, ends, bytes: () => bytes };
}

/**
 * Reads nothing for `stallMs` (the source's RST meets a full queue), then everything, and
 * says how the connection ended: 'end' (a FIN) or the error code.
 */
async function endOfSlowRead(s: Socket, stallMs: number): Promise<{ how: string; got: number }> {
  let got = 0;
  s.pause();
  s.on('data', (c: Buffer) => {
    got += c.length;
  });
  const how = endedHow(s);
  await sleep(stallMs);
  s.resume();
  const r = await Promise.race([how, sleep(5000).then(() => 'timeout')]);
  return { how: r, got };
}

t.test('bypassed: the destination RST reaches the client as a reset', async (t) => {
  const port = await resettingSource(t);
  const { port: socks } = await startSocks(t);
  const c = await rawClient(t, socks, [
    hex('05 01 00'),
    Buffer.concat([hex('05 01 00 01 7f000001'), u16(port)]),
  ]);
  t.equal((await c.waitBytes(12))[3], 0, 'granted');
  const r = await endOfSlowRead(c.s, 400);
  t.ok(r.got < BLOB + 12, `the client got part of the data (${r.got} bytes)`);
  t.equal(r.how, 'ECONNRESET', 'the client saw a reset, not a FIN');
});

t.test(
  'bypassed: the client RST with queued data reaches the destination as a reset',
  async (t) => {
    const dest = await stalledSink(t, 300);
    const { port: socks } = await startSocks(t);
    const c = await rawClient(t, socks, [
      hex('05 01 00'),
      Buffer.concat([hex('05 01 00 01 7f000001'), u16(dest.port)]),
    ]);
    t.equal((await c.waitBytes(12))[3], 0, 'granted');
    c.s.write(Buffer.alloc(BLOB, 0x62));
    await sleep(100);
    c.s.resetAndDestroy();
    await until(() => dest.ends.length > 0, 'the destination saw the connection end', 5000);
    t.ok(dest.bytes() < BLOB, `the destination got part of the upload (${dest.bytes()} bytes)`);
    t.same(dest.ends, ['ECONNRESET'], 'the destination saw a reset, not a FIN');
  },
);

t.test('tunneled: both directions', async (t) => {
  const source = await resettingSource(t);
  const dest = await stalledSink(t, 300);
  const w = await startTestWorld({
    prefix: 'gsa-relay-end-or-reset-',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 },
    connectorHosts: {
      'source.contoso.test:80': `127.0.0.1:${source}`,
      'sink.contoso.test:80': `127.0.0.1:${dest.port}`,
    },
  });
  t.teardown(() => w.close());
  const socks = Number(w.client.addresses.socks!.split(':')[1]);

  const down = await rawClient(t, socks, [
    hex('05 01 00'),
    domainRequest('source.contoso.test', 80),
  ]);
  t.equal((await down.waitBytes(12))[3], 0, 'granted');
  t.equal(w.flowTo('source.contoso.test')?.action, 'Tunnel');
  const r = await endOfSlowRead(down.s, 400);
  t.ok(r.got < BLOB + 12, `the client got part of the data (${r.got} bytes)`);
  t.equal(r.how, 'ECONNRESET', 'download: the client saw a reset, not a FIN');
  const rec = await w.closedFlow('source.contoso.test');
  const log = await w.edgeRecord(rec.connectionId);
  t.equal(log.operationStatus, 'failure', 'the edge logs the flow as failed');
  t.match(log.failureReason ?? '', /ECONNRESET/, 'with the destination reset as its reason');

  const up = await rawClient(t, socks, [hex('05 01 00'), domainRequest('sink.contoso.test', 80)]);
  t.equal((await up.waitBytes(12))[3], 0, 'granted');
  up.s.write(Buffer.alloc(BLOB, 0x62));
  await sleep(100);
  up.s.resetAndDestroy();
  await until(() => dest.ends.length > 0, 'the destination saw the connection end', 5000);
  t.ok(dest.bytes() < BLOB, `the destination got part of the upload (${dest.bytes()} bytes)`);
  t.same(dest.ends, ['ECONNRESET'], 'upload: the destination saw a reset, not a FIN');
});

t.test('a FIN after queued data is still a FIN, with every byte', async (t) => {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.resume();
    // Once the client paused (endOfSlowRead), so the FIN meets a full queue.
    setTimeout(() => s.end(Buffer.alloc(BLOB, 0x63)), 100);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const { port: socks } = await startSocks(t);
  const c = await rawClient(t, socks, [
    hex('05 01 00'),
    Buffer.concat([hex('05 01 00 01 7f000001'), u16((server.address() as { port: number }).port)]),
  ]);
  t.equal((await c.waitBytes(12))[3], 0, 'granted');
  const r = await endOfSlowRead(c.s, 400);
  t.equal(r.how, 'end', 'a FIN');
  t.equal(c.data().length, 12 + BLOB, 'every byte');
});
