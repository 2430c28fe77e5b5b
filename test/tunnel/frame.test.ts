/** The wire format: hex literal frames for every type, fragmented and coalesced input, fuzz. */
import fc from 'fast-check';
import t from 'tap';
import {
  CloseCode,
  decodeGoAway,
  decodeOpen,
  decodeRst,
  encodeData,
  encodeDgram,
  encodeFin,
  encodeFrame,
  encodeGoAway,
  encodeMeta,
  encodeOpen,
  encodeOpenOk,
  encodePing,
  encodeRst,
  encodeWindow,
  FrameParser,
  FrameType,
} from '../../src/tunnel/frame.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface Got {
  type: number;
  id: number;
  payload: string;
}

function parse(
  chunks: Buffer[],
  maxFrameSize?: number,
): { frames: Got[]; error: [number, string] | null } {
  const frames: Got[] = [];
  let error: [number, string] | null = null;
  const p = new FrameParser(
    (type, id, payload) => frames.push({ type, id, payload: payload.toString('hex') }),
    (code, msg) => {
      t.equal(error, null, 'onError called once');
      error = [code, msg];
    },
    maxFrameSize === undefined ? {} : { maxFrameSize },
  );
  for (const c of chunks) p.push(c);
  return { frames, error };
}

// Every frame type as a hex literal: type u8, flags u8, stream id u32, length u32, payload.
const FIXTURES: Array<[string, Buffer, string]> = [
  ['DATA "hi" on stream 1', encodeData(1, Buffer.from('hi')), '00 00 00000001 00000002 6869'],
  [
    'OPEN stream 3, window 256 KiB, {"a":1}',
    encodeOpen(3, 0x40000, { a: 1 }),
    `01 00 00000003 0000000b 00040000 ${Buffer.from('{"a":1}').toString('hex')}`,
  ],
  ['OPEN_OK stream 3, window 1 MiB', encodeOpenOk(3, 0x100000), '02 00 00000003 00000004 00100000'],
  ['WINDOW stream 5 +65536', encodeWindow(5, 0x10000), '03 00 00000005 00000004 00010000'],
  ['FIN stream 7', encodeFin(7), '04 00 00000007 00000000'],
  [
    'RST stream 9 CONNECT_FAILED "no"',
    encodeRst(9, 1, 'no'),
    '05 00 00000009 00000006 00000001 6e6f',
  ],
  ['DGRAM stream 11 0xabcd', encodeDgram(11, hex('abcd')), '06 00 0000000b 00000002 abcd'],
  ['PING', encodePing(hex('0102030405060708')), '07 00 00000000 00000008 0102030405060708'],
  ['PONG', encodePing(hex('0102030405060708'), true), '08 00 00000000 00000008 0102030405060708'],
  [
    'GOAWAY last 4 code 4400 "x"',
    encodeGoAway(4, 4400, 'x'),
    '09 00 00000000 00000009 00000004 00001130 78',
  ],
  [
    'META stream 3 {"process":"curl"}',
    encodeMeta(3, { process: 'curl' }),
    `0a 00 00000003 00000012 ${Buffer.from('{"process":"curl"}').toString('hex')}`,
  ],
];

t.test('encoders produce the documented bytes; the parser reads them back', async (t) => {
  for (const [name, enc, h] of FIXTURES) {
    t.equal(enc.toString('hex'), hex(h).toString('hex'), `${name}: bytes`);
    const { frames, error } = parse([hex(h)]);
    t.equal(error, null, `${name}: no error`);
    t.equal(frames.length, 1);
    t.equal(frames[0]!.type, hex(h)[0], `${name}: type`);
    t.equal(frames[0]!.payload, hex(h).subarray(10).toString('hex'), `${name}: payload`);
  }
  t.same(decodeOpen(hex('00040000 7b2261223a317d')), { window: 0x40000, meta: { a: 1 } });
  t.equal(decodeOpen(hex('00040000 7b')), null, 'bad JSON is null, not a throw');
  t.same(decodeRst(hex('00000001 6e6f')), { code: 1, reason: 'no' });
  t.same(decodeGoAway(hex('00000004 00001130 78')), { lastStreamId: 4, code: 4400, reason: 'x' });
});

t.test('fragmented byte by byte and coalesced in one chunk give the same frames', async (t) => {
  const all = Buffer.concat(FIXTURES.map(([, , h]) => hex(h)));
  const whole = parse([all]);
  t.equal(whole.frames.length, FIXTURES.length, 'coalesced: every frame');
  t.equal(whole.error, null);
  const bytes = [...all].map((b) => Buffer.from([b]));
  const byByte = parse(bytes);
  t.same(byByte.frames, whole.frames, 'byte by byte: same frames');
  // Random split points.
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: all.length }), { maxLength: 20 }), (cuts) => {
      const pts = [...new Set(cuts)].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const p of pts) {
        chunks.push(all.subarray(prev, p));
        prev = p;
      }
      chunks.push(all.subarray(prev));
      const r = parse(chunks);
      return r.error === null && JSON.stringify(r.frames) === JSON.stringify(whole.frames);
    }),
    { numRuns: 300 },
  );
});

t.test('views, not copies: a frame inside one chunk shares its memory', async (t) => {
  const chunk = Buffer.concat([
    encodeData(1, Buffer.from('abc')),
    encodeData(1, Buffer.from('def')),
  ]);
  const seen: Buffer[] = [];
  const p = new FrameParser(
    (_ty, _id, payload) => seen.push(payload),
    () => t.fail('no error'),
  );
  p.push(chunk);
  t.equal(seen.length, 2);
  t.equal(seen[0]!.buffer, chunk.buffer, 'payload is a view of the input');
  // Spanning chunks: copied once, correct.
  const seen2: Buffer[] = [];
  const p2 = new FrameParser(
    (_ty, _id, payload) => seen2.push(payload),
    () => t.fail('no error'),
  );
  p2.push(chunk.subarray(0, 11));
  t.equal(seen2.length, 0, 'short of bytes: waits');
  t.equal(p2.bufferedBytes, 1, 'header consumed, one payload byte held');
  p2.push(chunk.subarray(11));
  t.same(
    seen2.map((b) => b.toString()),
    ['abc', 'def'],
  );
});

t.test('malformed headers: one error with the right code, then silence', async (t) => {
  const cases: Array<[string, string, number]> = [
    ['unknown type 0x0b', '0b 00 00000001 00000000', CloseCode.BAD_FRAME_TYPE],
    ['META on stream 0', '0a 00 00000000 00000002 7b7d', CloseCode.STREAM_ID],
    ['META of 1 byte', '0a 00 00000001 00000001 7b', CloseCode.FRAME_SIZE],
    ['META over 4096 bytes', '0a 00 00000001 00001001', CloseCode.FRAME_SIZE],
    ['unknown type 0xff', 'ff 00 00000001 00000000', CloseCode.BAD_FRAME_TYPE],
    ['length > maxFrameSize', '00 00 00000001 00000401', CloseCode.FRAME_SIZE],
    ['DATA on stream 0', '00 00 00000000 00000000', CloseCode.STREAM_ID],
    ['PING on stream 1', '07 00 00000001 00000008 0000000000000000', CloseCode.STREAM_ID],
    ['PING of 7 bytes', '07 00 00000000 00000007 00000000000000', CloseCode.FRAME_SIZE],
    ['WINDOW of 5 bytes', '03 00 00000001 00000005 0000000001', CloseCode.FRAME_SIZE],
    ['OPEN_OK of 0 bytes', '02 00 00000001 00000000', CloseCode.FRAME_SIZE],
    ['FIN with payload', '04 00 00000001 00000001 00', CloseCode.FRAME_SIZE],
    ['RST of 3 bytes', '05 00 00000001 00000003 000000', CloseCode.FRAME_SIZE],
    ['GOAWAY on stream 2', '09 00 00000002 00000008 0000000000000000', CloseCode.STREAM_ID],
    ['GOAWAY of 4 bytes', '09 00 00000000 00000004 00000000', CloseCode.FRAME_SIZE],
  ];
  for (const [name, h, code] of cases) {
    const good = encodeFin(1);
    const r = parse([good, hex(h), good], 1024);
    t.equal(r.error?.[0], code, `${name}: ${r.error?.[1]}`);
    t.equal(r.frames.length, 1, `${name}: nothing after the error`);
    // Same, byte by byte.
    const rb = parse(
      [...Buffer.concat([good, hex(h), good])].map((b) => Buffer.from([b])),
      1024,
    );
    t.equal(rb.error?.[0], code, `${name}: byte by byte too`);
  }
});

t.test('fuzz: random bytes never throw out of the parser and never hang', async (t) => {
  let errors = 0;
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 16 }),
      fc.integer({ min: 0, max: 4096 }),
      (chunks, max) => {
        const p = new FrameParser(
          () => {},
          () => {
            errors++;
          },
          { maxFrameSize: max },
        );
        for (const c of chunks) p.push(c);
        return p.bufferedBytes >= 0;
      },
    ),
    { numRuns: 2000 },
  );
  t.ok(errors > 0, 'random input does hit errors');
});

const frameArb = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.DATA),
    id: fc.integer({ min: 1, max: 0xffff }),
    p: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({
    type: fc.constant(FrameType.DGRAM),
    id: fc.integer({ min: 1, max: 0xffff }),
    p: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({
    type: fc.constant(FrameType.WINDOW),
    id: fc.integer({ min: 1, max: 99 }),
    p: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  }),
  fc.record({
    type: fc.constant(FrameType.FIN),
    id: fc.integer({ min: 1, max: 99 }),
    p: fc.constant(new Uint8Array(0)),
  }),
  fc.record({
    type: fc.constant(FrameType.PING),
    id: fc.constant(0),
    p: fc.uint8Array({ minLength: 8, maxLength: 8 }),
  }),
);

/** The parsed frames are exactly the frames sent, in order. */
function sameFrames(
  out: Got[],
  frames: Array<{ type: number; id: number; p: Uint8Array }>,
): boolean {
  return (
    out.length === frames.length &&
    out.every(
      (g, i) =>
        g.type === frames[i]!.type &&
        g.id === frames[i]!.id &&
        g.payload === Buffer.from(frames[i]!.p).toString('hex'),
    )
  );
}

/** Encodes `frames` and pushes the bytes into `p` in chunks of `step`. */
function pushInSteps(
  p: FrameParser,
  frames: ReadonlyArray<{ type: number; id: number; p: Uint8Array }>,
  step: number,
): void {
  const wire = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.id, f.p)));
  for (let i = 0; i < wire.length; i += step) p.push(wire.subarray(i, i + step));
}

t.test('property: any sequence of valid frames, split anywhere, round-trips exactly', async (t) => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 30 }),
      fc.integer({ min: 1, max: 97 }),
      (frames, step) => {
        const out: Got[] = [];
        const p = new FrameParser(
          (type, id, payload) => out.push({ type, id, payload: payload.toString('hex') }),
          () => {
            throw new Error('unexpected error');
          },
        );
        pushInSteps(p, frames, step);
        return sameFrames(out, frames) && p.bufferedBytes === 0;
      },
    ),
    { numRuns: 500 },
  );
  t.pass('round-trips');
});

t.test(
  'property: partialData delivers DATA in pieces that join to the payload; other frames whole',
  async (t) => {
    let sawPieces = 0;
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 30 }),
        fc.integer({ min: 1, max: 97 }),
        (frames, step) => {
          const out: Got[] = [];
          let pending: { id: number; parts: Buffer[] } | null = null;
          const p = new FrameParser(
            (type, id, payload) => {
              if (type === FrameType.DATA) {
                // Pieces of one frame arrive back to back; the frame count ticks at its end.
                if (pending === null) pending = { id, parts: [] };
                if (pending.id !== id) throw new Error('interleaved DATA pieces');
                pending.parts.push(Buffer.from(payload));
                const framesBefore = out.length;
                if (p.frames > framesBefore) {
                  if (pending.parts.length > 1) sawPieces++;
                  out.push({ type, id, payload: Buffer.concat(pending.parts).toString('hex') });
                  pending = null;
                }
                return;
              }
              if (pending !== null) throw new Error('frame inside a DATA payload');
              out.push({ type, id, payload: payload.toString('hex') });
            },
            () => {
              throw new Error('unexpected error');
            },
            { partialData: true },
          );
          pushInSteps(p, frames, step);
          return pending === null && sameFrames(out, frames) && p.bufferedBytes === 0;
        },
      ),
      { numRuns: 500 },
    );
    t.ok(sawPieces > 0, `DATA frames were delivered in pieces (${sawPieces} times)`);
  },
);
