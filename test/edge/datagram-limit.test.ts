/**
 * UDP datagrams from the client longer than the edge's maxDatagramSize are not sent to the
 * destination; each drop is counted (GET /health `datagramsDropped.tooLarge`) and logged
 * ('datagram too large', at most one line a minute per flow). A datagram of exactly the
 * limit is relayed. Through the real edge and tunnel on 127.0.0.1, plain ws.
 */
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type EdgeLimits, startEdge } from '../../src/edge/server.js';
import type { TunnelStream } from '../../src/tunnel/types.js';
import { delay, edgeClients, meta, tempDir, until } from './helpers.js';

interface Line {
  msg: string;
  obj: Record<string, unknown>;
}

/** A UDP server on 127.0.0.1 that records each datagram's size and echoes it unchanged. */
async function udpServer(t: Test) {
  const sizes: number[] = [];
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    sizes.push(msg.length);
    socket.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => socket.close(() => r())));
  return { port: socket.address().port, sizes };
}

async function setup(t: Test, limits: EdgeLimits = {}) {
  const tmp = await tempDir();
  const udp = await udpServer(t);
  const lines: Line[] = [];
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    persistKey: false,
    hostsMap: { 'udp.contoso.test': `127.0.0.1:${udp.port}` },
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 0, ...limits },
    log: {
      info: () => {},
      warn: (obj, msg) => lines.push({ msg: msg ?? '', obj: obj as Record<string, unknown> }),
    },
  });
  const { client, closeAll } = edgeClients(edge);
  t.teardown(async () => {
    await closeAll();
    await edge.close({ graceMs: 0 });
    await tmp.remove();
  });
  const health = async (): Promise<{ datagramsDropped?: Record<string, number> }> =>
    (await fetch(`${edge.url}/health`)).json() as Promise<{
      datagramsDropped?: Record<string, number>;
    }>;
  const tooLargeLines = (): Line[] => lines.filter((l) => l.msg === 'datagram too large');
  return { edge, udp, client, health, tooLargeLines };
}

/** An open UDP stream to udp.contoso.test and the sizes of the datagrams it gets back. */
async function udpStream(c: Awaited<ReturnType<Awaited<ReturnType<typeof setup>>['client']>>) {
  const m = meta({ proto: 'udp', host: 'udp.contoso.test', port: 5353 });
  const s: TunnelStream = c.open(m);
  s.on('error', () => {});
  const back: number[] = [];
  s.on('datagram', (d: Buffer) => back.push(d.length));
  s.resume();
  return { s, m, back };
}

t.test('a configured limit: over it dropped, counted and logged; at it relayed', async (t) => {
  const { edge, udp, client, health, tooLargeLines } = await setup(t, { maxDatagramSize: 1200 });
  const { s, m, back } = await udpStream(await client('internet'));
  // Before OPEN_OK (held until the edge's socket is ready) and after it.
  s.sendDatagram(Buffer.alloc(1201, 1));
  await s.opened;
  s.sendDatagram(Buffer.alloc(1200, 2));
  s.sendDatagram(Buffer.alloc(1500, 3));
  s.sendDatagram(Buffer.alloc(1300, 4));
  s.sendDatagram(Buffer.alloc(10, 5));
  t.ok(await until(() => udp.sizes.length >= 2 && back.length >= 2, 3000), 'two relayed');
  await delay(100);
  t.same(udp.sizes, [1200, 10], 'the destination got the one at the limit, not those over it');
  t.same(back, [1200, 10], 'and its answers came back');
  const h = await health();
  t.same(h.datagramsDropped, { tooLarge: 3, early: 0, toClient: 0 }, 'GET /health counts them');
  const logged = tooLargeLines();
  t.equal(logged.length, 1, 'one line for the flow (at most one a minute)');
  t.match(logged[0]?.obj, {
    sessionId: String,
    streamId: s.streamId,
    connectionId: m.connectionId,
    destination: 'udp.contoso.test:5353',
    size: 1201,
    limit: 1200,
  });
  s.end();
  const r = await edge.logs.waitFor((x) => x.connectionId === m.connectionId, 5000);
  t.equal(r.sentBytes, 1210, 'sentBytes counts only what the destination got');
});

t.test('the default limit (65,507): 65,507 relayed, 65,508 dropped and counted', async (t) => {
  const { udp, client, health, tooLargeLines } = await setup(t);
  const { s, back } = await udpStream(await client('internet'));
  await s.opened;
  s.sendDatagram(Buffer.alloc(65_508, 1));
  s.sendDatagram(Buffer.alloc(65_507, 2));
  t.ok(await until(() => back.length >= 1, 3000), 'the one at the limit came back');
  await delay(100);
  t.same(udp.sizes, [65_507]);
  t.same(back, [65_507]);
  t.equal((await health()).datagramsDropped?.tooLarge, 1);
  t.match(tooLargeLines(), [{ obj: { size: 65_508, limit: 65_507 } }]);
});

t.test(
  'other drops are counted too: past what a flow holds early, and to the client',
  async (t) => {
    const { edge, udp, client, health, tooLargeLines } = await setup(t);
    const { s, back } = await udpStream(await client('internet'));
    // 70 before OPEN_OK reach the edge with the OPEN, before its socket is ready: 64 are held.
    for (let i = 0; i < 70; i++) s.sendDatagram(Buffer.alloc(100, i));
    await s.opened;
    t.ok(await until(() => back.length >= 64, 3000), '64 relayed');
    await delay(100);
    t.equal(udp.sizes.length, 64);
    t.same((await health()).datagramsDropped, { tooLarge: 0, early: 6, toClient: 0 });
    // The edge's WebSocket reports a full send buffer: the destination's answer is dropped.
    const [session] = [...edge.sessions];
    const transport = (session as unknown as { transport: object }).transport;
    Object.defineProperty(transport, 'bufferedAmount', { get: () => 64 * 1024 * 1024 });
    s.sendDatagram(Buffer.alloc(100, 1));
    t.ok(await until(() => udp.sizes.length === 65, 3000), 'sent to the destination');
    await delay(100);
    t.equal(back.length, 64, 'its answer did not come back');
    t.same((await health()).datagramsDropped, { tooLarge: 0, early: 6, toClient: 1 });
    t.same(tooLargeLines(), [], "only 'too large' drops are logged");
  },
);

t.test('startEdge refuses a maxDatagramSize that is not a positive integer', async (t) => {
  const tmp = await tempDir();
  t.teardown(() => tmp.remove());
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    const started = startEdge({
      stateDir: join(tmp.dir, 'state'),
      tls: false,
      persistKey: false,
      limits: { maxDatagramSize: bad },
    });
    // Without the check it starts: stop it.
    started.then((e) => e.close({ graceMs: 0 })).catch(() => {});
    await t.rejects(started, { code: 'GSA_ERR_CONFIG' }, String(bad));
  }
});
