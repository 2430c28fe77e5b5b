/** Random frame sequences and random bytes thrown at a live session: never a throw, never a hang. */
import fc from 'fast-check';
import t from 'tap';
import {
  CloseCode,
  encodeData,
  encodeFrame,
  encodeOpen,
  FrameType,
} from '../../src/tunnel/frame.js';
import { Session } from '../../src/tunnel/session.js';
import type { Stream } from '../../src/tunnel/stream.js';
import { memoryPair } from '../../src/tunnel/transport.js';
import { meta } from './helpers.js';

const CODES = new Set<number>(Object.values(CloseCode));

function session(): { s: Session; feed: (b: Uint8Array) => void } {
  const [a] = memoryPair();
  const s = new Session(a, 'server', { keepaliveInterval: 0, maxConcurrentStreams: 8 });
  s.on('stream', (st: Stream) => {
    st.on('error', () => {});
    st.on('data', () => {});
    if (st.streamId % 3 !== 0) st.accept();
    else st.reset(1, 'no');
  });
  return { s, feed: (b) => a.onMessage(Buffer.from(b.buffer, b.byteOffset, b.length)) };
}

const id = fc.integer({ min: 0, max: 12 });
const frame = fc.oneof(
  fc.record({ k: fc.constant('open'), id }),
  fc.record({ k: fc.constant('data'), id, n: fc.integer({ min: 0, max: 70_000 }) }),
  // META with any JSON (objects with a process field of any type among them).
  fc.record({
    k: fc.constant('meta'),
    id,
    v: fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.record({ process: fc.oneof(fc.string(), fc.constant(null), fc.integer()) }),
    ),
  }),
  fc.record({
    k: fc.constant('raw'),
    type: fc.integer({ min: 0, max: 11 }),
    id,
    p: fc.uint8Array({ maxLength: 12 }),
  }),
);

t.test(
  'random frame sequences: no throw; a closed session carries a documented code',
  async (t) => {
    let closed = 0;
    fc.assert(
      fc.property(
        fc.array(frame, { maxLength: 25 }),
        fc.constantFrom(1, 7, 64, 4096, 1 << 20),
        (frames, step) => {
          const { s, feed } = session();
          const wire = Buffer.concat(
            frames.map((f) =>
              f.k === 'open'
                ? encodeOpen(f.id, 256 * 1024, meta())
                : f.k === 'data'
                  ? encodeData(f.id, Buffer.alloc(step < 4096 ? f.n % 300 : f.n))
                  : f.k === 'meta'
                    ? encodeFrame(
                        FrameType.META,
                        f.id,
                        Buffer.from(JSON.stringify(f.v) ?? 'null').subarray(0, 4096),
                      )
                    : encodeFrame(f.type, f.id, f.p),
            ),
          );
          for (let i = 0; i < wire.length; i += step) feed(wire.subarray(i, i + step));
          if (s.closed) {
            closed++;
            if (!CODES.has(s.closeInfo!.code)) return false;
          }
          s.close();
          return s.streams.size === 0;
        },
      ),
      { numRuns: 400 },
    );
    t.ok(closed > 0, `${closed} sequences closed the session`);
  },
);

t.test('random bytes into a session: no throw', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 10 }), (chunks) => {
      const { s, feed } = session();
      for (const c of chunks) feed(c);
      s.close();
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('no throw');
});

t.test('OPEN of a valid type with broken metadata closes with PROTOCOL', async (t) => {
  const { s, feed } = session();
  feed(encodeFrame(FrameType.OPEN, 1, Buffer.from('00040000 7b7d'.replace(' ', ''), 'hex')));
  t.equal(s.closeInfo?.code, CloseCode.PROTOCOL);
});
