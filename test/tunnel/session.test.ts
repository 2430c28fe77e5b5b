import { once } from 'node:events';
import t from 'tap';
import { StreamResetError } from '../../src/errors.js';
import { CloseCode, encodeFrame, encodePing, FrameType, MAX_OPEN } from '../../src/tunnel/frame.js';
import { MAX_REPLY_BACKLOG, Session, type SessionCloseInfo } from '../../src/tunnel/session.js';
import type { Stream } from '../../src/tunnel/stream.js';
import type { FrameTransport } from '../../src/tunnel/transport.js';
import { type OpenMeta, ResetCode } from '../../src/tunnel/types.js';
import { delay, digest, meta, pair, random, sha, until, writeAll } from './helpers.js';

t.test('open, accept, echo both ways, half-close', async (t) => {
  const { client, server } = pair();
  server.on('stream', (s: Stream) => {
    t.equal(s.meta.host, 'example.test');
    setTimeout(() => s.accept(), 5);
    s.pipe(s);
  });
  const s = client.open(meta());
  t.equal(s.streamId, 1);
  const data = random(1_000_000);
  const got = digest(s);
  await writeAll(s, data);
  await s.opened;
  const r = await got;
  t.equal(r.n, data.length);
  t.equal(r.sha, sha(data));
  t.equal(s.bytesSent, data.length);
  t.equal(s.bytesReceived, data.length);
  await until(() => client.streams.size === 0 && server.streams.size === 0, 2000);
  t.equal(client.streams.size, 0, 'client released the stream');
  t.equal(server.streams.size, 0, 'server released the stream');
  client.close();
});

t.test('connect failure: RST CONNECT_FAILED rejects opened and errors the stream', async (t) => {
  const { client, server } = pair();
  server.on('stream', (s: Stream) => s.reset(ResetCode.CONNECT_FAILED, 'ECONNREFUSED'));
  const s = client.open(meta());
  const reset = new Promise<[number, string]>((r) => s.once('reset', (c, why) => r([c, why])));
  const err = new Promise<Error>((r) => s.once('error', r));
  const why = await s.opened.then(
    () => null,
    (e: StreamResetError) => e,
  );
  t.equal(why?.resetCode, ResetCode.CONNECT_FAILED, 'opened rejects with CONNECT_FAILED');
  t.same(await reset, [ResetCode.CONNECT_FAILED, 'ECONNREFUSED']);
  const e = await err;
  t.ok(e instanceof StreamResetError);
  t.equal((e as StreamResetError).code, 'GSA_ERR_STREAM_RESET');
  client.close();
});

t.test('a reader that stops reading: memory stays within the window', async (t) => {
  const window = 256 * 1024;
  const { client, server } = pair({ initialWindow: window, streamHighWaterMark: 16 * 1024 });
  let inbound: Stream | null = null;
  server.on('stream', (s: Stream) => {
    inbound = s;
    s.on('error', () => {});
    s.accept();
    s.pause(); // never reads
  });
  const s = client.open(meta());
  s.on('error', () => {});
  let writes = 0;
  let falses = 0;
  const chunk = random(64 * 1024);
  // Write 8 MiB worth, as fast as write() lets us; stop when it pushes back for good.
  for (let i = 0; i < 128; i++) {
    writes++;
    if (!s.write(chunk)) {
      falses++;
      const drained = await Promise.race([
        new Promise<boolean>((r) => s.once('drain', () => r(true))),
        delay(200).then(() => false),
      ]);
      if (!drained) break;
    }
  }
  t.ok(falses > 0, 'write() returned false');
  t.ok(writes < 128, 'the writer was paused');
  const rs = inbound as unknown as Stream;
  t.ok(rs);
  // Receiver: queued bytes + readable buffer within the window (+ one frame of slack).
  t.ok(
    rs.recvQueued + rs.readableLength <= window + 16 * 1024 + 64 * 1024,
    `receiver holds ${rs.recvQueued + rs.readableLength}`,
  );
  t.ok(rs.bytesReceived <= window + 16 * 1024 + 64 * 1024, `received ${rs.bytesReceived}`);
  t.equal(s.sendCredit, 0, 'sender has no credit left');
  const st = client.stats();
  t.ok(
    st.sendPending + s.writableLength <= 64 * 1024 + s.writableHighWaterMark + 64 * 1024,
    'sender buffers at most a write',
  );
  // Now read: everything flows.
  const got = digest(rs);
  rs.resume();
  s.end();
  const r = await got;
  t.equal(r.n, s.bytesSent);
  client.close();
});

t.test('session death resets every in-flight stream (SESSION_CLOSED), never hangs', async (t) => {
  const { client, server } = pair();
  server.on('stream', (s: Stream) => {
    s.on('error', () => {});
    s.accept();
  });
  const streams = Array.from({ length: 20 }, (_, i) => client.open(meta({ flowId: `f${i}` })));
  const results = streams.map(
    (s) =>
      new Promise<number>((r) => {
        s.once('reset', (code: number) => r(code));
        s.on('error', () => {});
      }),
  );
  await Promise.all(streams.map((s) => s.opened));
  const closed = new Promise<SessionCloseInfo>((r) => client.once('close', r));
  server.close(CloseCode.GOING_AWAY, 'bye');
  const codes = await Promise.all(results);
  t.same(new Set(codes), new Set([ResetCode.SESSION_CLOSED]));
  const info = await closed;
  t.equal(info.code, CloseCode.GOING_AWAY);
  t.equal(info.remote, true);
  t.throws(() => client.open(meta()), { code: 'GSA_ERR_CHANNEL_DOWN' });
});

t.test('GOAWAY: no new streams, existing ones finish, then the session closes', async (t) => {
  const { client, server } = pair();
  server.on('stream', (s: Stream) => {
    s.accept();
    s.pipe(s);
  });
  const s = client.open(meta());
  await s.opened;
  const goaway = new Promise((r) => client.once('goaway', r));
  server.goAway();
  await goaway;
  t.throws(() => client.open(meta()), { code: 'GSA_ERR_CHANNEL_DOWN' });
  const data = random(100_000);
  const got = digest(s);
  await writeAll(s, data);
  t.equal((await got).sha, sha(data), 'existing stream completes');
  const info = await new Promise<SessionCloseInfo>((r) =>
    client.closed ? r(client.closeInfo!) : client.once('close', r),
  );
  t.equal(info.code, CloseCode.NORMAL);
});

t.test('datagrams on udp streams, dropped over the queue limit', async (t) => {
  const { client, server } = pair({ sendHighWater: 4096, maxDatagramQueue: 4096 }, 4096);
  const got: Buffer[] = [];
  server.on('stream', (s: Stream) => {
    s.on('error', () => {});
    s.accept();
    s.on('datagram', (d: Buffer) => {
      got.push(Buffer.from(d));
      s.sendDatagram(d);
    });
  });
  const s = client.open(meta({ proto: 'udp', port: 443 }));
  s.on('error', () => {});
  const echoed: Buffer[] = [];
  s.on('datagram', (d: Buffer) => echoed.push(d));
  await s.opened;
  t.ok(s.sendDatagram(Buffer.from('hello')));
  await until(() => echoed.length === 1, 2000);
  t.equal(echoed[0]?.toString(), 'hello');
  // Burst well over the limit in one tick: some are dropped, none throw.
  let sent = 0;
  for (let i = 0; i < 100; i++) if (s.sendDatagram(random(1000))) sent++;
  t.ok(sent < 100, `dropped ${100 - sent}`);
  t.ok(client.stats().datagramsDropped > 0);
  await until(() => got.length === 1 + sent, 2000);
  t.equal(got.length, 1 + sent);
  client.close();
});

t.test(
  'max concurrent streams: extra OPENs are refused (REFUSED), the session lives',
  async (t) => {
    const { client, server } = pair({ maxConcurrentStreams: 3 });
    server.on('stream', (s: Stream) => {
      s.on('error', () => {});
      s.accept();
    });
    const ss = Array.from({ length: 5 }, () => client.open(meta()));
    for (const s of ss) s.on('error', () => {});
    const res = await Promise.allSettled(ss.map((s) => s.opened));
    t.same(
      res.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'],
    );
    t.equal(
      ((res[3] as PromiseRejectedResult).reason as StreamResetError).resetCode,
      ResetCode.REFUSED,
    );
    t.notOk(client.closed);
    client.close();
  },
);

t.test('destroy sends RST CANCEL; the peer sees reset', async (t) => {
  const { client, server } = pair();
  const peer = new Promise<[number, Stream]>((r) =>
    server.on('stream', (s: Stream) => {
      s.accept();
      s.on('error', () => {});
      s.once('reset', (c: number) => r([c, s]));
    }),
  );
  const s = client.open(meta());
  await s.opened;
  s.destroy();
  const [code] = await peer;
  t.equal(code, ResetCode.CANCEL);
  await until(() => server.streams.size === 0, 1000);
  t.equal(server.streams.size, 0);
  client.close();
});

t.test('keepalive: PONG timeout closes the session (KEEPALIVE_TIMEOUT)', async (t) => {
  const { client, server } = pair({ keepaliveInterval: 20, keepaliveTimeout: 60 });
  // Keepalive timers are unref'd: hold the event loop open for the test.
  const hold = setTimeout(() => {}, 5000);
  t.teardown(() => clearTimeout(hold));
  t.ok(await until(() => client.rtt !== 1 || server.rtt !== 1, 1000), 'rtt measured');
  // Freeze the server: it stops processing input (and so stops answering PINGs).
  (server as unknown as { parser: { stop(): void } }).parser.stop();
  const info = await new Promise<SessionCloseInfo>((r) => client.once('close', r));
  t.equal(info.code, CloseCode.KEEPALIVE_TIMEOUT);
  t.equal(info.error?.wireCode, CloseCode.KEEPALIVE_TIMEOUT);
});

t.test(
  'transport backpressure: DATA production pauses while the transport buffer is high',
  async (t) => {
    const hw = 128 * 1024;
    const { client, server } = pair({ sendHighWater: hw, initialWindow: 4 * 1024 * 1024 }, hw);
    server.on('stream', (s: Stream) => {
      s.on('error', () => {});
      s.accept();
      s.on('data', () => {});
      s.on('end', () => s.end());
    });
    const streams = Array.from({ length: 4 }, () => client.open(meta()));
    let maxBuffered = 0;
    const sample = setInterval(() => {
      maxBuffered = Math.max(maxBuffered, client.stats().transportBuffered);
    }, 1);
    const data = random(2 * 1024 * 1024);
    await Promise.all(
      streams.map(async (s) => {
        s.on('error', () => {});
        const done = new Promise<void>((r) => s.once('end', () => r()));
        s.resume();
        await writeAll(s, data, 256 * 1024);
        await done;
      }),
    );
    clearInterval(sample);
    t.ok(maxBuffered > 0, `sampled ${maxBuffered}`);
    // One flush may overshoot by what was queued before the check: at most one DATA frame per
    // stream plus small frames.
    t.ok(
      maxBuffered <= hw + 4 * 64 * 1024 + 4096,
      `transport never held more than ${maxBuffered} bytes`,
    );
    t.equal(
      streams.reduce((n, s) => n + s.bytesSent, 0),
      4 * data.length,
    );
    client.close();
  },
);

t.test('open timeout: a peer that never answers OPEN resets the stream with TIMEOUT', async (t) => {
  const { client, server } = pair({ openTimeout: 50 });
  const hold = setTimeout(() => {}, 5000); // the open timer is unref'd
  t.teardown(() => clearTimeout(hold));
  const seen: number[] = [];
  server.on('stream', (s: Stream) => {
    s.on('error', () => {});
    s.on('reset', (c: number) => seen.push(c));
    // never accepts
  });
  const s = client.open(meta());
  s.on('error', () => {});
  const t0 = Date.now();
  const e = await s.opened.then(
    () => null,
    (err: StreamResetError) => err,
  );
  t.equal(e?.resetCode, ResetCode.TIMEOUT);
  t.ok(Date.now() - t0 < 1000, 'promptly');
  t.ok(await until(() => seen.length === 1, 1000), 'the peer was told (RST TIMEOUT)');
  t.same(seen, [ResetCode.TIMEOUT]);
  client.close();
});

/** A session pair with one stream opened and accepted (errors ignored: resets end tests). */
async function openedStream(opts: Parameters<typeof pair>[0] = {}) {
  const { client, server } = pair(opts);
  const accepted = once(server, 'stream') as Promise<[Stream]>;
  const s = client.open(meta());
  s.on('error', () => {});
  const [peer] = await accepted;
  peer.on('error', () => {});
  peer.accept();
  await s.opened;
  const close = (): void => {
    client.close();
    server.close();
  };
  return { client, server, s, peer, close };
}

t.test('META: the opener tells the acceptor its process after OPEN', async (t) => {
  const { client, server, s, peer, close } = await openedStream();
  t.teardown(close);
  t.equal(peer.meta.process ?? null, null, 'unknown at OPEN');
  const got = once(peer, 'meta');
  s.updateMeta({ process: 'curl' });
  const [update] = (await got) as [{ process?: string | null }];
  t.same(update, { process: 'curl' }, "'meta' carries the update");
  t.equal(peer.meta.process, 'curl', 'merged into meta');
  t.equal(s.meta.process, 'curl', "and into the opener's own");
  s.updateMeta({ process: 'x'.repeat(1000) });
  await once(peer, 'meta');
  t.equal(peer.meta.process?.length, 260, 'names are cut at 260 characters');
  // The acceptor cannot send it (nothing goes out), and after a reset nothing is sent.
  peer.updateMeta({ process: 'nope' });
  s.destroy();
  s.updateMeta({ process: 'late' });
  await until(() => server.streams.size === 0, 1000);
  t.notOk(client.closed || server.closed, 'the session lives on');
});

t.test('late META: after the stream ended, once, only when OPEN said processPending', async (t) => {
  const { client, server } = pair();
  t.teardown(() => {
    client.close();
    server.close();
  });
  const late: Array<[number, unknown]> = [];
  server.on('lateMeta', (id: number, update: unknown) => late.push([id, update]));
  const open = async (processPending: boolean): Promise<Stream> => {
    const accepted = once(server, 'stream') as Promise<[Stream]>;
    const s = client.open(meta(processPending ? { processPending: true } : {}));
    s.on('error', () => {});
    const [peer] = await accepted;
    peer.on('error', () => {});
    peer.accept();
    await s.opened;
    t.equal(peer.meta.processPending === true, processPending, 'the acceptor sees the flag');
    s.destroy();
    await until(() => server.streams.size === 0 && client.streams.size === 0, 1000);
    return s;
  };
  const pending = await open(true);
  pending.updateMeta({ process: 'curl' });
  pending.updateMeta({ process: 'again' });
  t.ok(await until(() => late.length === 1, 1000), "the acceptor's session emits 'lateMeta'");
  await delay(30);
  t.same(late, [[pending.streamId, { process: 'curl' }]], 'once: the second is not sent');
  t.equal(pending.meta.processPending, false, 'the lookup is over on the opener too');

  const plain = await open(false);
  plain.updateMeta({ process: 'curl' });
  await delay(30);
  t.equal(late.length, 1, 'without processPending nothing goes out after the end');
  t.notOk(client.closed || server.closed, 'the session lives on');
});

t.test(
  'late META: a bad one closes the session; one for our own ended stream is ignored',
  async (t) => {
    for (const [what, payload, toOpener, code] of [
      ['bad JSON for an ended peer stream', '{nope', false, CloseCode.PROTOCOL],
      ['a process of the wrong type', '{"process":[]}', false, CloseCode.PROTOCOL],
      ['to the opener, for its own ended stream', '{"process":"x"}', true, null],
    ] as const) {
      const { client, server, s, close } = await openedStream();
      s.destroy();
      await until(() => server.streams.size === 0 && client.streams.size === 0, 1000);
      const target = toOpener ? client : server;
      const late: unknown[] = [];
      target.on('lateMeta', (...a: unknown[]) => late.push(a));
      (target as unknown as { transport: { onMessage(b: Buffer): void } }).transport.onMessage(
        encodeFrame(FrameType.META, s.streamId, Buffer.from(payload)),
      );
      await delay(30);
      t.equal(
        target.closeInfo?.code ?? null,
        code,
        `${what}: ${code === null ? 'open' : 'PROTOCOL'}`,
      );
      t.equal(late.length, 0, `${what}: no 'lateMeta'`);
      close();
    }
  },
);

t.test('META: from the acceptor, or not an object, closes the session (PROTOCOL)', async (t) => {
  for (const [what, payload, fromAcceptor] of [
    ['from the acceptor', '{"process":"x"}', true],
    ['an array', '[1]', false],
    ['not JSON', '{nope', false],
    ['process of the wrong type', '{"process":5}', false],
  ] as const) {
    const { client, server, s, close } = await openedStream();
    // Hand-made frames straight into the receiving session's transport.
    const target = fromAcceptor ? client : server;
    const closed = once(target, 'close');
    (target as unknown as { transport: { onMessage(b: Buffer): void } }).transport.onMessage(
      encodeFrame(FrameType.META, s.streamId, Buffer.from(payload)),
    );
    await closed;
    t.equal(target.closeInfo?.code, CloseCode.PROTOCOL, `${what}: PROTOCOL`);
    close();
  }
});

t.test('META is not sent to a peer that does not accept it (an older edge)', async (t) => {
  const { client, server, s, peer, close } = await openedStream({ peerAcceptsMeta: false });
  t.teardown(close);
  let metas = 0;
  peer.on('meta', () => metas++);
  const framesBefore = client.stats().framesOut;
  s.updateMeta({ process: 'curl' });
  await delay(30);
  t.equal(s.meta.process, 'curl', 'kept locally');
  t.equal(metas, 0, 'the peer got nothing');
  t.equal(client.stats().framesOut, framesBefore, 'no frame went out');
  t.notOk(client.closed || server.closed, 'the session lives on');
});

t.test(
  'OPEN: unknown metadata fields are dropped; an OPEN over MAX_OPEN ends the session',
  async (t) => {
    const { client, server } = pair();
    const seen: Array<Record<string, unknown>> = [];
    server.on('stream', (s: Stream) => {
      seen.push(s.meta as unknown as Record<string, unknown>);
      s.accept();
      s.resume();
      s.end();
    });
    const s = client.open({ ...meta(), junk: 'x'.repeat(100) } as unknown as OpenMeta);
    s.resume();
    s.end();
    await s.opened;
    t.equal(seen[0]?.host, 'example.test', 'known fields kept');
    t.notOk('junk' in (seen[0] ?? {}), 'the unknown field is not kept');
    const closed = new Promise<SessionCloseInfo>((r) => server.once('close', r));
    const big = client.open({ ...meta(), junk: 'x'.repeat(MAX_OPEN) } as unknown as OpenMeta);
    big.on('error', () => {});
    t.equal((await closed).code, CloseCode.PROTOCOL, 'PROTOCOL');
    client.close();
  },
);

t.test('a peer that floods PINGs and reads no PONG ends the session, bounded', async (t) => {
  // A transport whose peer never reads: everything sent stays buffered.
  class Unread implements FrameTransport {
    bufferedAmount = 0;
    onMessage: (d: Buffer) => void = () => {};
    onDrain = (): void => {};
    onClose: (code: number, reason: string) => void = () => {};
    send(data: Buffer): boolean {
      this.bufferedAmount += data.length;
      return false;
    }
    close(code: number, reason: string): void {
      queueMicrotask(() => this.onClose(code, reason));
    }
  }
  const transport = new Unread();
  const session = new Session(transport, 'server', { sendHighWater: 64 * 1024 });
  const closed = new Promise<SessionCloseInfo>((r) => session.once('close', r));
  // 1,000 PINGs per message, as a flood would send them.
  const burst = Buffer.concat(Array.from({ length: 1000 }, () => encodePing(Buffer.alloc(8))));
  let sent = 0;
  for (let i = 0; i < 200 && session.isOpen; i++) {
    transport.onMessage(burst);
    sent += burst.length;
    await new Promise((r) => setImmediate(r));
  }
  const info = await Promise.race([closed, delay(2000).then(() => null)]);
  t.equal(info?.code, CloseCode.FLOW_CONTROL, 'closed with FLOW_CONTROL');
  t.ok(
    transport.bufferedAmount < 64 * 1024 + MAX_REPLY_BACKLOG + 2 * burst.length,
    `send buffer bounded (${transport.bufferedAmount} bytes after ${sent} sent)`,
  );
});
