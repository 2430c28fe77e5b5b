/** Regression tests for review findings on flow control, keepalive and stream ids. */
import t from 'tap';
import { ChannelDownError } from '../../src/errors.js';
import {
  CloseCode,
  encodeData,
  encodeFin,
  encodeOpen,
  encodeOpenOk,
  encodeWindow,
  MAX_CREDIT,
} from '../../src/tunnel/frame.js';
import { Session, type SessionCloseInfo } from '../../src/tunnel/session.js';
import type { Stream } from '../../src/tunnel/stream.js';
import { type FrameTransport, memoryPair } from '../../src/tunnel/transport.js';
import { delay, meta, pair, until } from './helpers.js';

const noop = (): void => {};

/** A session on one end of a memory pair; the test plays the peer by hand on the other. */
function rawPeer(
  side: 'client' | 'server',
  opts: ConstructorParameters<typeof Session>[2] = {},
): { s: Session; peer: FrameTransport; closed: Promise<SessionCloseInfo> } {
  const [a, b] = memoryPair();
  b.onMessage = noop; // the peer reads nothing (no PONG, no credit bookkeeping)
  b.onClose = noop;
  const s = new Session(a, side, { keepaliveInterval: 0, ...opts });
  const closed = new Promise<SessionCloseInfo>((r) => s.once('close', r));
  return { s, peer: b, closed };
}

t.test(
  'credit stays in sync when the acceptor reads (and auto-tunes) before accept()',
  async (t) => {
    const { client, server } = pair();
    t.teardown(() => {
      client.close();
      server.close();
    });
    // A long round trip: each WINDOW after the first would double the window.
    server.rtt = 10_000;
    let inbound: Stream | null = null;
    server.on('stream', (s: Stream) => {
      inbound = s;
      s.on('error', noop);
      s.on('data', noop); // reads at once, WINDOWs go out before OPEN_OK
    });
    const s = client.open(meta());
    s.on('error', noop);
    s.write(Buffer.alloc(512 * 1024));
    t.ok(await until(() => inbound?.bytesReceived === 512 * 1024, 2000), 'received unaccepted');
    const peer = inbound as unknown as Stream;
    t.notOk(peer.accepted);
    peer.pause();
    peer.accept();
    await s.opened;
    // More than any window: the writer stops when its credit is used up.
    s.write(Buffer.alloc(4 * 1024 * 1024));
    await until(() => s.sendCredit === 0 || server.closed, 2000);
    await delay(20);
    t.notOk(server.closed, `session alive (${server.closeInfo?.reason ?? ''})`);
    t.equal(s.sendCredit, peer.recvCredit, "the opener's credit is what the acceptor granted");
  },
);

t.test('OPEN_OK that grows the credit past 2^31-1 after a WINDOW: FLOW_CONTROL', async (t) => {
  const { s, peer, closed } = rawPeer('client');
  t.teardown(() => s.close());
  const st = s.open(meta());
  st.on('error', noop);
  peer.send(encodeWindow(st.streamId, MAX_CREDIT - 64 * 1024));
  peer.send(encodeOpenOk(st.streamId, MAX_CREDIT));
  const info = await Promise.race([closed, delay(1000).then(() => null)]);
  t.equal(info?.code, CloseCode.FLOW_CONTROL, `closed with FLOW_CONTROL (credit ${st.sendCredit})`);

  // The largest OPEN_OK alone is fine.
  const ok = rawPeer('client');
  t.teardown(() => ok.s.close());
  const st2 = ok.s.open(meta());
  st2.on('error', noop);
  ok.peer.send(encodeOpenOk(st2.streamId, MAX_CREDIT));
  await st2.opened;
  t.equal(st2.sendCredit, MAX_CREDIT);
  t.notOk(ok.s.closed);
});

t.test('empty DATA frames are not queued on an unread stream; FIN still ends it', async (t) => {
  const { s, peer } = rawPeer('server');
  t.teardown(() => s.close());
  let inbound: Stream | null = null;
  s.on('stream', (st: Stream) => {
    inbound = st;
    st.on('error', noop); // never accepted, not read (yet)
  });
  peer.send(encodeOpen(1, 64 * 1024, meta()));
  peer.send(encodeData(1, Buffer.from('abc')));
  const burst = Buffer.concat(Array.from({ length: 10_000 }, () => encodeData(1, Buffer.alloc(0))));
  for (let i = 0; i < 10; i++) {
    peer.send(burst);
    await new Promise((r) => setImmediate(r));
  }
  peer.send(encodeData(1, Buffer.from('def')));
  t.ok(await until(() => inbound?.bytesReceived === 6, 2000), 'all bytes arrived');
  const st = inbound as unknown as Stream;
  const rq = (st as unknown as { rq: Buffer[] }).rq;
  t.equal(rq.length, 2, `queue holds the two non-empty payloads only (${rq.length} entries)`);
  t.notOk(s.closed);
  const chunks: Buffer[] = [];
  st.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((r) => st.once('end', () => r()));
  peer.send(encodeData(1, Buffer.alloc(0)));
  peer.send(encodeFin(1));
  const done = await Promise.race([ended.then(() => true), delay(1000).then(() => false)]);
  t.ok(done, "the peer's FIN ends the stream");
  t.equal(Buffer.concat(chunks).toString(), 'abcdef');
});

t.test('keepalive: a peer whose PONG is late but whose frames keep coming stays up', async (t) => {
  const { s, peer, closed } = rawPeer('client', { keepaliveInterval: 20, keepaliveTimeout: 250 });
  const hold = setTimeout(noop, 5000); // keepalive timers are unref'd
  let feed: NodeJS.Timeout | null = null;
  t.teardown(() => {
    clearTimeout(hold);
    if (feed) clearInterval(feed);
    s.close();
  });
  const st = s.open(meta());
  st.on('error', noop);
  st.resume();
  peer.send(encodeOpenOk(st.streamId, 64 * 1024));
  // DATA every 20 ms, never a PONG (it would be queued behind DATA on a slow link).
  feed = setInterval(() => peer.send(encodeData(st.streamId, Buffer.alloc(100))), 20);
  await delay(800);
  t.notOk(s.closed, `still up after 3 keepalive timeouts (${s.closeInfo?.reason ?? ''})`);
  t.ok(st.bytesReceived > 0);
  // Silence: now the missing PONG does close it.
  clearInterval(feed);
  feed = null;
  const info = await Promise.race([closed, delay(2000).then(() => null)]);
  t.equal(info?.code, CloseCode.KEEPALIVE_TIMEOUT, 'a silent peer still times out');
});

t.test('stream ids exhausted: GOAWAY, ChannelDownError, the last stream finishes', async (t) => {
  const { client, server } = pair();
  t.teardown(() => {
    client.close();
    server.close();
  });
  server.on('stream', (st: Stream) => {
    st.on('error', noop);
    st.accept();
    st.pipe(st);
  });
  const goaway = new Promise((r) => server.once('goaway', r));
  const closed = new Promise<SessionCloseInfo>((r) => client.once('close', r));
  // As after 2^30 opens.
  (client as unknown as { nextId: number }).nextId = 0x7fffffff;
  const last = client.open(meta());
  last.on('error', noop);
  t.equal(last.streamId, 0x7fffffff);
  t.throws(
    () => client.open(meta()).on('error', noop),
    ChannelDownError,
    'no id left: ChannelDownError',
  );
  t.ok(client.goingAway, 'the session goes away');
  t.notOk(client.isOpen);
  const chunks: Buffer[] = [];
  last.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((r) => last.once('end', () => r()));
  last.end('ping');
  await Promise.race([ended, delay(1000)]);
  t.equal(Buffer.concat(chunks).toString(), 'ping', 'the last stream still works');
  await Promise.race([goaway, delay(1000)]);
  t.ok(server.remoteGoAway, 'the peer got GOAWAY');
  const info = await Promise.race([closed, delay(1000).then(() => null)]);
  t.equal(info?.code, CloseCode.NORMAL, 'closed normally once the stream finished');
  t.equal(server.closeInfo?.error, undefined, 'no protocol error on the peer');
});
