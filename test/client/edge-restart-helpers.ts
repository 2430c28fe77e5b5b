/**
 * Shared setup of the tests of a client whose edge goes away and comes back (not a test
 * file itself): a free loopback port, a SOCKS5 CONNECT by name, and a TCP relay in front of
 * the edge that can go silent (an edge that stops answering without closing anything: a
 * suspended host, a lost route). Loopback only.
 */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import type { Test } from 'tap';
import { type ClientOptions, type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import { until } from '../util/wait.js';

/** The listeners a test client does without. */
export const NO_LISTENERS = { socksPort: null, httpPort: null, pacPort: null, adminPort: null };

export { freePort } from '../util/free-port.js';

/** An edge without TLS in `stateDir` that neither resolves nor dials by itself (no grace). */
export const plainEdge = (stateDir: string): EdgeOptions => ({
  stateDir,
  tls: false,
  egress: { systemResolver: false, directIp: false },
  limits: { graceMs: 0 },
});

/** A client connected to an edge that the test restarts. */
export interface RestartedEdge {
  client: RunningClient;
  /** Kills the edge, waits for the client's channels to go down, starts `second` on its port. */
  restart(second: EdgeOptions): Promise<Edge>;
}

/**
 * An edge started with `first` and a client with `opts` connected to it (its URL and CA),
 * both closed at the end of `t`.
 */
export async function edgeToRestart(
  t: Test,
  first: EdgeOptions,
  opts: Omit<ClientOptions, 'edge'>,
): Promise<RestartedEdge> {
  let edge = await startEdge(first);
  let client: RunningClient | null = null;
  t.teardown(async () => {
    await client?.close();
    await edge.close({ graceMs: 0 });
  });
  client = await startClient({ edge: { url: edge.url, ca: edge.caPem }, ...opts });
  await client.waitConnected(10_000);
  const c = client;
  return {
    client: c,
    async restart(second) {
      const port = edge.port;
      await edge.kill();
      t.ok(
        await until(() => !c.tunnels.isUp('m365') && !c.tunnels.isUp('internet'), 5000),
        'channels down',
      );
      edge = await startEdge({ ...second, port });
      return edge;
    },
  };
}

/**
 * SOCKS5 CONNECT to `host:port` by name (no auth). Resolves with the reply code (REP, -1
 * when the proxy closed without one), the socket (the caller destroys it) and how long the
 * reply took.
 */
export async function socksConnect(
  proxyPort: number,
  host: string,
  port: number,
): Promise<{ rep: number; s: Socket; ms: number }> {
  const t0 = Date.now();
  const s = connect({ port: proxyPort, host: '127.0.0.1' });
  s.on('error', () => {});
  await once(s, 'connect');
  const h = Buffer.from(host);
  s.write(
    Buffer.concat([
      Buffer.from([5, 1, 0, 5, 1, 0, 3, h.length]),
      h,
      Buffer.from([port >> 8, port & 255]),
    ]),
  );
  const got: Buffer[] = [];
  let n = 0;
  while (n < 12) {
    const c = await Promise.race([
      once(s, 'data').then(([d]) => d as Buffer),
      once(s, 'close').then(() => null),
    ]);
    if (c === null) break;
    got.push(c);
    n += c.length;
  }
  const b = Buffer.concat(got);
  return { rep: b.length >= 4 ? b[3]! : -1, s, ms: Date.now() - t0 };
}

export interface SilentRelay {
  port: number;
  /** From now on nothing passes, either way, and new connections are held unanswered. */
  silence(): void;
  close(): Promise<void>;
}

/**
 * A TCP relay on 127.0.0.1 to `targetPort`. `silence()` stops it forwarding anything, in
 * either direction and on new connections, without closing a socket: to the client the
 * edge is still there but never answers again.
 */
export async function silentRelay(targetPort: number): Promise<SilentRelay> {
  let silent = false;
  const sockets = new Set<Socket>();
  const keep = (s: Socket): void => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  };
  const server = createServer((a) => {
    keep(a);
    if (silent) {
      a.pause();
      return;
    }
    const b = connect({ port: targetPort, host: '127.0.0.1' });
    keep(b);
    a.on('data', (d: Buffer) => {
      if (!silent) b.write(d);
    });
    b.on('data', (d: Buffer) => {
      if (!silent) a.write(d);
    });
    a.once('close', () => b.destroy());
    b.once('close', () => a.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    silence() {
      silent = true;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
