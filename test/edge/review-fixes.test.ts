/**
 * Review fixes in the edge's egress and traffic log, end to end through the real tunnel
 * (TunnelClient -> startEdge -> servers on 127.0.0.1). Nothing leaves loopback.
 *   - the JSONL file writes privateAccessDetails whole (it was `{}`);
 *   - an address the client asked for is the log's destinationIp, not the dial-map target;
 *   - sentBytes counts what the destination socket took, 0 when it never connected;
 *   - a pending connect holds no read buffer of its own.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import t, { type Test } from 'tap';
import { Agent } from 'undici';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import type { NetworkAccessTraffic } from '../../src/edge/traffic-log.js';
import { type OpenMeta, ResetCode } from '../../src/tunnel/types.js';
import { httpCall } from '../util/http-calls.js';
import {
  closedPort,
  delay,
  echoServer,
  edgeClients,
  exchange,
  meta,
  tempDir,
  until,
} from './helpers.js';

const GREETING = 'HELLO\n';

/** A full GC (tap gives no --expose-gc), so memory measured after it is what is live. */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * A TCP listener whose connects stay pending: it listens (backlog 1) on a worker thread that
 * then blocks, so nothing accepts; once the kernel's accept queue is full, SYNs are dropped.
 */
async function stalledListener(): Promise<{ port: number; close(): Promise<void> }> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const flag = new Int32Array(workerData);
     const srv = require('node:net').createServer();
     srv.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
       parentPort.postMessage(srv.address().port);
       setImmediate(() => {
         while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0, 100);
         process.exit(0);
       });
     });`,
    { eval: true, workerData: flag.buffer },
  );
  const port = await new Promise<number>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return {
    port,
    close: async () => {
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      await w.terminate();
    },
  };
}

/**
 * A destination that reads `readFirst` bytes, then stops reading (a slow destination);
 * `reset()` resets its connection. `received` is what it read.
 */
async function slowSink(readFirst: number): Promise<{
  port: number;
  received(): number;
  connected(): boolean;
  reset(): void;
  close(): Promise<void>;
}> {
  let sock: Socket | null = null;
  let received = 0;
  const server = createServer((s) => {
    sock = s;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      received += d.length;
      if (received >= readFirst) s.pause();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    received: () => received,
    connected: () => sock !== null,
    reset: () => sock?.resetAndDestroy(),
    close: () =>
      new Promise<void>((r) => {
        sock?.destroy();
        server.close(() => r());
      }),
  };
}

async function setup(t: Test, over: Partial<EdgeOptions> = {}, hosts: Record<string, string> = {}) {
  const tmp = await tempDir();
  const echo = await echoServer(GREETING);
  const dead = await closedPort();
  const logFile = join(tmp.dir, 'traffic.jsonl');
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    logFile,
    hostsMap: {
      'echo.contoso.test': `127.0.0.1:${echo.port}`,
      'dead.contoso.test': `127.0.0.1:${dead}`,
      // An address remapped by the hosts map (as a TUN client's 6.6.x.y would be).
      '6.6.254.11': `127.0.0.1:${echo.port}`,
      ...hosts,
    },
    connectorHosts: {
      'intranet.contoso.test:443': `127.0.0.1:${echo.port}`,
      '127.77.0.5:3389': `127.0.0.1:${echo.port}`,
    },
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 200, connectTimeoutMs: 2000 },
    ...over,
  });
  const { client, closeAll } = edgeClients(edge, 'alice@x.test');
  t.teardown(async () => {
    await closeAll();
    await edge.close({ graceMs: 0 });
    await echo.close();
    await tmp.remove();
  });
  return { edge, echo, client, logFile };
}

function byConn(edge: Edge, m: OpenMeta, ms = 5000): Promise<NetworkAccessTraffic> {
  return edge.logs.waitFor((r) => r.connectionId === m.connectionId, ms);
}

t.test(
  'the JSONL traffic log writes privateAccessDetails whole, as the API returns it',
  async (t) => {
    const { edge, client, logFile } = await setup(t);
    const c = await client('private');
    const ok = meta({ channel: 'private', host: 'intranet.contoso.test', port: 443 });
    t.equal((await exchange(c.open(ok), Buffer.from('hi'))).reset, null);
    const refused = meta({ channel: 'private', host: 'db.contoso.test', port: 5432 });
    t.equal((await exchange(c.open(refused), Buffer.from('x'))).reset, ResetCode.BLOCKED);
    await byConn(edge, ok);
    await byConn(edge, refused);
    // The control API's records.
    const dispatcher = new Agent({ keepAliveTimeout: 10 });
    t.teardown(() => dispatcher.close());
    const token = await edge.issueToken({ channel: 'graph', userId: 'admin' });
    const r = await httpCall(`${edge.url}/beta/networkAccess/logs/traffic`, 'GET', {
      headers: { authorization: `Bearer ${token}` },
      dispatcher,
    });
    t.equal(r.status, 200);
    const api = new Map<string, NetworkAccessTraffic>(
      (r.json.value as NetworkAccessTraffic[]).map((x) => [x.connectionId, x]),
    );
    // The file's lines (written through a stream: wait for both).
    let lines: NetworkAccessTraffic[] = [];
    const end = Date.now() + 5000;
    while (Date.now() < end) {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      lines = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as NetworkAccessTraffic);
      if (lines.length >= 2) break;
      await delay(20);
    }
    for (const m of [ok, refused]) {
      const fromFile = lines.find((x) => x.connectionId === m.connectionId);
      const fromApi = api.get(m.connectionId as string);
      t.ok(fromFile && fromApi, 'in the file and in the API');
      t.same(fromFile, fromApi, `${m.host}: the file's record is the API's`);
      t.ok(fromFile?.privateAccessDetails?.connectorId, 'connectorId written');
    }
    const okRec = lines.find((x) => x.connectionId === ok.connectionId);
    t.match(okRec?.privateAccessDetails, {
      connectorName: String,
      appSegmentId: String,
      resolvedDestination: /^127\.0\.0\.1:\d+$/,
      accessDeniedReason: null,
    });
    const badRec = lines.find((x) => x.connectionId === refused.connectionId);
    t.match(badRec?.privateAccessDetails?.accessDeniedReason, /no application segment/);
  },
);

t.test('destinationIp is the address the client asked for, not the dial-map target', async (t) => {
  const { edge, echo, client } = await setup(t);
  const priv = await client('private');
  const inet = await client('internet');
  // Private, address only (127.77.0.5:3389 -> the echo server), and as an address host.
  for (const m of [
    meta({ channel: 'private', host: null, ip: '127.77.0.5', port: 3389 }),
    meta({ channel: 'private', host: '127.77.0.5', ip: null, port: 3389 }),
  ]) {
    const r = await exchange(priv.open(m), Buffer.from('rdp'));
    t.equal(r.bytes.toString(), `${GREETING}rdp`, 'relayed to the remap');
    const rec = await byConn(edge, m);
    t.equal(rec.destinationIp, '127.77.0.5', 'the address asked for');
    t.equal(rec.privateAccessDetails?.resolvedDestination, `127.0.0.1:${echo.port}`, 'dialled');
  }
  // Internet, address only, remapped by the hosts map.
  const im = meta({ host: null, ip: '6.6.254.11', port: 80 });
  const ir = await exchange(inet.open(im), Buffer.from('get'));
  t.equal(ir.bytes.toString(), `${GREETING}get`);
  t.equal((await byConn(edge, im)).destinationIp, '6.6.254.11');
  // A name: what it resolved to (the hosts map stands in for DNS here).
  const nm = meta({ host: 'echo.contoso.test' });
  await exchange(inet.open(nm), Buffer.from('x'));
  t.equal((await byConn(edge, nm)).destinationIp, '127.0.0.1');
  const pn = meta({ channel: 'private', host: 'intranet.contoso.test', port: 443 });
  await exchange(priv.open(pn), Buffer.from('x'));
  t.equal((await byConn(edge, pn)).destinationIp, '127.0.0.1');
});

t.test('sentBytes is 0 for a flow that never connected', async (t) => {
  const stalled = await stalledListener();
  t.teardown(() => stalled.close());
  const { edge, client } = await setup(
    t,
    { limits: { graceMs: 200, connectTimeoutMs: 600 } },
    { 'stalled.contoso.test': `127.0.0.1:${stalled.port}` },
  );
  const c = await client('internet');
  // Fill the listener's accept queue, so the flow's connect below stays pending.
  const fillers = [0, 1, 2].map(() => c.open(meta({ host: 'stalled.contoso.test' })));
  for (const f of fillers) f.on('error', () => {});
  await until(() => edge.activeFlows === 3, 2000);
  await delay(100);
  const m = meta({ host: 'stalled.contoso.test' });
  const s = c.open(m);
  const r = exchange(s, Buffer.alloc(60_000, 1));
  const rec = await byConn(edge, m);
  t.equal(rec.operationStatus, 'failure');
  t.match(rec.failureReason, /timed out/);
  t.equal(s.bytesSent, 60_000, 'the client sent its bytes before the timeout');
  t.equal(rec.sentBytes, 0, 'none reached a destination');
  t.equal((await r).reset, ResetCode.TIMEOUT);
  // Refused at once: nothing sent either, whatever arrived before the refusal.
  const d = meta({ host: 'dead.contoso.test' });
  t.equal((await exchange(c.open(d), Buffer.alloc(60_000, 1))).reset, ResetCode.CONNECT_FAILED);
  t.equal((await byConn(edge, d)).sentBytes, 0);
  for (const f of fillers) f.destroy();
});

t.test('sentBytes: a slow destination that is reset counts what it was given', async (t) => {
  const sink = await slowSink(64 * 1024);
  t.teardown(() => sink.close());
  // A large window, so the edge holds many megabytes for the destination when it stalls.
  const { edge, client } = await setup(
    t,
    { limits: { graceMs: 200, session: { initialWindow: 16 * 1024 * 1024 } } },
    { 'slow.contoso.test': `127.0.0.1:${sink.port}` },
  );
  const c = await client('internet');
  const m = meta({ host: 'slow.contoso.test' });
  const s = c.open(m);
  s.on('error', () => {});
  s.resume();
  const chunk = Buffer.alloc(256 * 1024, 7);
  let written = 0;
  // Write 32 MiB, paced by the stream's backpressure.
  const pump = (): void => {
    while (written < 32 * 1024 * 1024) {
      written += chunk.length;
      if (!s.write(chunk)) {
        s.once('drain', pump);
        return;
      }
    }
  };
  pump();
  // Until the client's bytes stop moving: the edge and the kernel hold all they will.
  t.ok(await until(() => sink.connected() && sink.received() >= 64 * 1024, 5000), 'it read');
  // Unchanged over three samples in a row: one could be a loaded machine's stall.
  let last = -1;
  let still = 0;
  for (let i = 0; i < 100 && still < 3; i++) {
    await delay(100);
    still = s.bytesSent === last ? still + 1 : 0;
    last = s.bytesSent;
  }
  sink.reset();
  const rec = await byConn(edge, m);
  const received = sink.received();
  t.equal(rec.operationStatus, 'failure');
  t.comment(`client sent ${s.bytesSent}, destination read ${received}, logged ${rec.sentBytes}`);
  // What the kernel took but the destination never read is the slack: the edge socket's
  // send buffer (up to tcp_wmem's max) and the destination's receive buffer.
  const wmem = await readFile('/proc/sys/net/ipv4/tcp_wmem', 'utf8').catch(() => '');
  const slack = (Number(wmem.trim().split(/\s+/)[2]) || 4 * 1024 * 1024) + 2 * 1024 * 1024;
  t.ok(s.bytesSent - received > slack + 4 * 1024 * 1024, 'megabytes waited in the edge');
  t.ok(rec.sentBytes >= received, 'at least what the destination read');
  t.ok(rec.sentBytes - received < slack, 'not what still waited in the edge');
});

t.test('a pending connect holds no read buffer of its own', async (t) => {
  const stalled = await stalledListener();
  t.teardown(() => stalled.close());
  const { edge, client } = await setup(
    t,
    { limits: { graceMs: 0, connectTimeoutMs: 20_000 } },
    { 'stalled.contoso.test': `127.0.0.1:${stalled.port}` },
  );
  const c = await client('internet');
  // Warm up (one flow each way), so what follows is the pending connects.
  await exchange(c.open(meta({ host: 'echo.contoso.test' })), Buffer.from('x'));
  const N = 128;
  gc();
  const before = process.memoryUsage().arrayBuffers;
  const streams = Array.from({ length: N }, () => {
    const s = c.open(meta({ host: 'stalled.contoso.test' }));
    s.on('error', () => {});
    return s;
  });
  t.ok(await until(() => edge.activeFlows === N, 5000), `${N} flows connecting`);
  await delay(100);
  gc();
  const grown = process.memoryUsage().arrayBuffers - before;
  t.comment(`arrayBuffers grew ${(grown / 1024 / 1024).toFixed(1)} MiB for ${N} pending connects`);
  // 256 KiB each would be 32 MiB.
  t.ok(grown < 8 * 1024 * 1024, 'no 256 KiB buffer per pending connect');
  for (const s of streams) s.destroy();
});
