/**
 * Setup for the HTTP proxy tests that need a real Forwarder and raw bytes on both sides
 * (test/capture/http-proxy-responses.test.ts, http-proxy-client-gone.test.ts): a Forwarder
 * with a fake classifier and fake tunnels behind a real HttpProxy, a raw TCP upstream that
 * answers with bytes chosen per request path, and a raw client. Everything listens on
 * 127.0.0.1 and is stopped by the test's teardown.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Test } from 'tap';
import { HttpProxy, type HttpProxyOptions } from '../../src/capture/http-proxy.js';
import { decision, fakeForwarder } from '../forward/fixtures/fakes.js';
import { delay } from '../util/wait.js';

export const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });
export const TUNNEL = decision({
  action: 'tunnel',
  channel: 'internet',
  ruleId: 'acq-1',
  ruleName: 'Default Acquire rule 1',
  profileName: 'Internet traffic forwarding profile',
});
/** Tunneled, and blocked by the client when the channel is down (hardening). */
export const STRICT = decision({
  action: 'tunnel',
  channel: 'private',
  ruleId: 'pa-1',
  ruleName: 'Private app 1',
  profileName: 'Private access profile',
  fallback: 'block',
});
export const BLOCK = decision({
  action: 'block',
  channel: 'internet',
  ruleId: 'r-42',
  ruleName: 'No gambling',
  profileName: 'Internet traffic forwarding profile',
});

/**
 * A proxy on 127.0.0.1: `tunnel.test` tunneled (internet), `strict.test` tunneled (private,
 * fallback block), `casino.test` blocked by the client, anything else bypassed;
 * `direct.test` resolves to 127.0.0.1.
 */
export async function proxyFor(t: Test, opts: Partial<HttpProxyOptions> = {}) {
  const {
    fwd: forwarder,
    tunnels,
    flows,
  } = fakeForwarder(
    [
      { host: 'tunnel.test', decision: TUNNEL },
      { host: 'strict.test', decision: STRICT },
      { host: 'casino.test', decision: BLOCK },
      { decision: BYPASS },
    ],
    { 'direct.test': '127.0.0.1' },
    { openTimeoutMs: 1000 },
  );
  const proxy = new HttpProxy({ forwarder, port: 0, ...opts });
  const { port } = await proxy.listen();
  t.teardown(() => proxy.close());
  const connections = (): Promise<number> =>
    new Promise((r) => proxy.server.getConnections((_e, n) => r(n)));
  return { proxy, port, flows, tunnels, connections };
}

/**
 * A raw upstream: once a request head has arrived, `answer(path, socket)` writes whatever
 * bytes the test wants. Records each head. Sockets left open are destroyed at teardown.
 */
export async function rawUpstream(t: Test, answer: (path: string, s: Socket) => void) {
  const heads: string[] = [];
  const port = await rawServer(t, (s) => {
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      s.on('data', () => {});
      heads.push(head.slice(0, end + 4));
      answer(/^[A-Z]+ (\S+) /.exec(head)?.[1] ?? '', s);
    };
    s.on('data', onData);
  });
  return { port, heads };
}

/**
 * A raw TCP server on 127.0.0.1 that hands each connection to `onSocket` (socket errors
 * ignored). Connections left open are destroyed, and the server closed, at teardown.
 * Resolves with its port.
 */
export async function rawServer(t: Test, onSocket: (s: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as { port: number }).port;
}

export interface RawResult {
  got: string;
  /** The error the client socket saw (ECONNRESET for an RST), or null. */
  error: string | null;
  closed: boolean;
}

/** Sends `data`, then reads until the proxy closes, `done(got)` holds, or `waitMs` passes. */
export async function rawClient(
  port: number,
  data: string,
  done: (got: string) => boolean = () => false,
  waitMs = 3000,
): Promise<RawResult> {
  const r = await openClient(port);
  r.s.write(data);
  const t0 = Date.now();
  while (!r.closed && !done(r.got) && Date.now() - t0 < waitMs) await delay(10);
  r.s.destroy();
  return r;
}

/**
 * A client socket to the proxy on `port` that keeps what it reads, once connected; with
 * `t`, destroyed at its teardown.
 */
export async function openClient(port: number, t?: Test) {
  const s = connect({ port, host: '127.0.0.1' });
  const c = { s, got: '', error: null as string | null, closed: false };
  s.on('error', (e: NodeJS.ErrnoException) => {
    c.error = e.code ?? e.message;
  });
  s.on('data', (b: Buffer) => {
    c.got += b.toString('latin1');
  });
  s.on('close', () => {
    c.closed = true;
  });
  t?.teardown(() => s.destroy());
  await once(s, 'connect');
  return c;
}

/** Polls `f` every 20 ms until it holds or `ms` passes (an async until()). */
export async function eventually(f: () => boolean | Promise<boolean>, ms: number) {
  const end = Date.now() + ms;
  for (;;) {
    if (await f()) return true;
    if (Date.now() > end) return false;
    await delay(20);
  }
}
