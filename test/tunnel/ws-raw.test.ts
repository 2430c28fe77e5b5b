import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { wsTransport } from '../../src/tunnel/transport.js';
import { attachRawReceiver, RawReceiver } from '../../src/tunnel/ws-raw.js';

/** One WebSocket frame as RFC 6455 5.2 lays it out. */
function frame(
  opcode: number,
  payload: Uint8Array,
  o: { fin?: boolean; mask?: Buffer | null; rsv?: number } = {},
): Buffer {
  const fin = o.fin ?? true;
  const mask = o.mask ?? null;
  const n = payload.length;
  const len = n < 126 ? [n] : n < 65536 ? [126, n >> 8, n & 255] : null;
  const head: number[] = [(fin ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
  if (len) {
    head.push((mask ? 0x80 : 0) | len[0]!, ...len.slice(1));
  } else {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    head.push((mask ? 0x80 : 0) | 127, ...b);
  }
  const body = Buffer.from(payload);
  if (mask) {
    head.push(...mask);
    for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  }
  return Buffer.concat([Buffer.from(head), body]);
}

interface Sink {
  data: Buffer[];
  ws: Buffer[];
}

function receiver(isServer: boolean, maxPayload = 1 << 20): [RawReceiver, Sink] {
  const sink: Sink = { data: [], ws: [] };
  const r = new RawReceiver(
    isServer,
    maxPayload,
    (b) => sink.data.push(Buffer.from(b)),
    (b) => sink.ws.push(Buffer.from(b)),
  );
  return [r, sink];
}

function feed(r: RawReceiver, wire: Buffer, cuts: number[]): void {
  let at = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    if (c <= at || c >= wire.length) continue;
    r.push(wire.subarray(at, c));
    at = c;
  }
  r.push(wire.subarray(at));
}

const frameArb = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant(2), p: fc.uint8Array({ maxLength: 70_000 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant(9), p: fc.uint8Array({ maxLength: 125 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant(10), p: fc.uint8Array({ maxLength: 125 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant(1), p: fc.uint8Array({ maxLength: 200 }) }) },
);

for (const isServer of [false, true]) {
  t.test(
    `property (${isServer ? 'server: masked' : 'client: unmasked'} frames): binary payloads go to onData in order, every other frame byte-exact to ws, split anywhere`,
    async (t) => {
      fc.assert(
        fc.property(
          fc.array(frameArb, { maxLength: 12 }),
          fc.array(fc.nat(), { maxLength: 20 }),
          fc.boolean(),
          (frames, cutSeeds, zeroKey) => {
            const wires = frames.map((f) =>
              frame(f.op, f.p, {
                mask: isServer ? (zeroKey ? Buffer.alloc(4) : randomBytes(4)) : null,
              }),
            );
            const wire = Buffer.concat(wires);
            const [r, sink] = receiver(isServer);
            feed(
              r,
              wire,
              cutSeeds.map((c) => (wire.length ? c % wire.length : 0)),
            );
            const wantData = Buffer.concat(frames.filter((f) => f.op === 2).map((f) => f.p));
            const wantWs = Buffer.concat(wires.filter((_, i) => frames[i]!.op !== 2));
            return (
              Buffer.concat(sink.data).equals(wantData) && Buffer.concat(sink.ws).equals(wantWs)
            );
          },
        ),
        { numRuns: 300 },
      );
      t.pass('routes every byte');
    },
  );
}

t.test(
  'a fragmented binary message (binary without FIN, continuations) is one byte stream',
  async (t) => {
    const [r, sink] = receiver(false);
    r.push(
      Buffer.concat([
        frame(2, Buffer.from('ab'), { fin: false }),
        frame(9, Buffer.from('p')), // control frames may come between fragments
        frame(0, Buffer.from('cd'), { fin: false }),
        frame(0, Buffer.from('ef')),
        frame(2, Buffer.from('gh')),
      ]),
    );
    t.equal(Buffer.concat(sink.data).toString(), 'abcdefgh');
    t.same(Buffer.concat(sink.ws), frame(9, Buffer.from('p')));
  },
);

t.test('violations pass the header and everything after it to ws', async (t) => {
  const cases: Array<[string, boolean, Buffer]> = [
    ['reserved bit', false, frame(2, Buffer.from('x'), { rsv: 4 })],
    ['reserved opcode 3', false, frame(3, Buffer.from('x'))],
    ['reserved opcode 0xb', false, frame(0xb, Buffer.from('x'))],
    ['masked frame from a server', false, frame(2, Buffer.from('x'), { mask: randomBytes(4) })],
    ['unmasked frame from a client', true, frame(2, Buffer.from('x'))],
    ['continuation without a start', false, frame(0, Buffer.from('x'))],
    [
      'binary inside a fragmented message',
      false,
      Buffer.concat([frame(2, Buffer.from('a'), { fin: false }), frame(2, Buffer.from('b'))]),
    ],
    ['control frame over 125 bytes', false, frame(9, Buffer.alloc(126))],
    ['fragmented control frame', false, frame(9, Buffer.from('x'), { fin: false })],
    ['fragmented text', false, frame(1, Buffer.from('x'), { fin: false })],
    ['frame over maxPayload', false, frame(2, Buffer.alloc(2000))],
  ];
  for (const [name, isServer, bad] of cases) {
    const [r, sink] = receiver(isServer, 1000);
    const good = frame(2, Buffer.from('ok'), isServer ? { mask: randomBytes(4) } : {});
    const after = Buffer.from('trailing bytes');
    r.push(Buffer.concat([good, bad, after]));
    t.equal(
      Buffer.concat(sink.data).toString(),
      name.startsWith('binary inside') ? 'oka' : 'ok',
      `${name}: data before it delivered`,
    );
    const ws = Buffer.concat(sink.ws);
    const from = name.startsWith('binary inside')
      ? frame(2, Buffer.from('a'), { fin: false }).length
      : 0;
    t.ok(ws.equals(Buffer.concat([bad.subarray(from), after])), `${name}: the rest went to ws`);
    r.push(Buffer.from('more'));
    t.ok(
      Buffer.concat(sink.ws).subarray(-4).equals(Buffer.from('more')),
      `${name}: and stays with ws`,
    );
  }
});

// --- over a real ws pair ---------------------------------------------------------------

async function pair(t: Test): Promise<{ server: WebSocket; client: WebSocket }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await once(wss, 'listening');
  const port = (wss.address() as AddressInfo).port;
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  await once(client, 'open');
  const [server] = await accepted;
  t.teardown(async () => {
    client.terminate();
    server.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
  });
  return { server, client };
}

t.test(
  'over ws: binary both ways byte-exact; pings answered; text still arrives; close handshake',
  async (t) => {
    const { server, client } = await pair(t);
    const ts = wsTransport(server);
    const tc = wsTransport(client);
    for (const [side, ws] of [
      ['server', server],
      ['client', client],
    ] as const) {
      const ls = (ws as unknown as { _socket: NodeJS.EventEmitter })._socket.listeners('data');
      t.equal(ls.length, 1, `${side}: one data listener`);
      t.not(ls[0]?.name, 'socketOnData', `${side}: the raw receiver reads the socket, not ws`);
    }
    const gotS: Buffer[] = [];
    const gotC: Buffer[] = [];
    ts.onMessage = (b) => gotS.push(Buffer.from(b));
    tc.onMessage = (b) => gotC.push(Buffer.from(b));
    const up = randomBytes(700_000);
    const down = randomBytes(900_000);
    for (let i = 0; i < up.length; i += 100_000) tc.send(up.subarray(i, i + 100_000));
    for (let i = 0; i < down.length; i += 300_000) ts.send(down.subarray(i, i + 300_000));
    const until = async (cond: () => boolean): Promise<void> => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    };
    await until(
      () => Buffer.concat(gotS).length >= up.length && Buffer.concat(gotC).length >= down.length,
    );
    t.ok(Buffer.concat(gotS).equals(up), 'client -> server byte-exact (masked frames)');
    t.ok(Buffer.concat(gotC).equals(down), 'server -> client byte-exact');

    const pong = once(server, 'pong');
    server.ping(Buffer.from('hi'));
    t.equal(((await pong) as [Buffer])[0].toString(), 'hi', 'the client answered the ping');
    const pong2 = once(client, 'pong');
    client.ping(Buffer.from('yo'));
    t.equal(((await pong2) as [Buffer])[0].toString(), 'yo', 'the server answered the ping');

    const before = gotS.length;
    client.send('text frame');
    await until(() => gotS.length > before);
    t.equal(gotS.at(-1)?.toString(), 'text frame', 'a text message still reaches onMessage');

    const closed = new Promise<[number, string]>((r) => {
      tc.onClose = (code, reason) => r([code, reason]);
    });
    ts.close(4000, 'bye');
    t.same(await closed, [4000, 'bye'], 'the closing handshake completes with code and reason');
  },
);

t.test('over ws: a protocol violation from the peer fails the connection with 1002', async (t) => {
  const { server, client } = await pair(t);
  const ts = wsTransport(server);
  const serverClosed = new Promise<number>((r) => {
    ts.onClose = (code) => r(code);
  });
  const serverError = once(server, 'error') as Promise<[Error]>;
  const clientClosed = once(client, 'close') as Promise<[number]>;
  // Write a frame with a reserved bit straight onto the client's socket.
  const sock = (client as unknown as { _socket: import('node:net').Socket })._socket;
  sock.write(frame(2, Buffer.from('x'), { rsv: 4, mask: randomBytes(4) }));
  t.match((await serverError)[0].message, /RSV/, 'ws saw the violation');
  t.equal((await clientClosed)[0], 1002, 'the peer was sent close code 1002');
  // Like ws itself, the failing side reads no more frames, so its own code is 1006.
  t.equal(await serverClosed, 1006, 'the server side closed');
});

t.test('attachRawReceiver refuses a WebSocket that is not open', async (t) => {
  const ws = new WebSocket('ws://127.0.0.1:9', { perMessageDeflate: false });
  ws.on('error', () => {});
  t.equal(
    attachRawReceiver(ws, () => {}),
    false,
  );
  ws.terminate();
});
