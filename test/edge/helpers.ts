/** Shared helpers for the edge tests (not a test file itself). Loopback only. */
import { randomUUID } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import type { NetworkAccessTraffic } from '../../src/edge/traffic-log.js';
import type { ChannelName } from '../../src/policy/model.js';
import { TunnelClient } from '../../src/tunnel/client.js';
import type { OpenMeta, TunnelStream } from '../../src/tunnel/types.js';

/** A TCP server on 127.0.0.1 that writes `greeting` first, then echoes; ends when the peer ends. */
export async function echoServer(greeting = ''): Promise<{
  port: number;
  server: Server;
  /** Bytes each connection received, by remote port. */
  peers: Array<{ remoteAddress: string | undefined; bytes: number }>;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const peers: Array<{ remoteAddress: string | undefined; bytes: number }> = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    const peer = { remoteAddress: s.remoteAddress, bytes: 0 };
    peers.push(peer);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (greeting) s.write(greeting);
    s.on('data', (d: Buffer) => {
      peer.bytes += d.length;
    });
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    server,
    peers,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A TCP server that streams `chunk` forever (until the peer goes away). */
export async function firehose(): Promise<{
  port: number;
  written(): number;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const pump = (): void => {
      let more = true;
      while (!s.destroyed && more) {
        more = s.write(chunk);
        written += chunk.length;
      }
    };
    s.on('drain', pump);
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    written: () => written,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A UDP echo server on 127.0.0.1 that prefixes each reply with `prefix`. */
export async function udpEcho(
  prefix = '',
): Promise<{ port: number; socket: UdpSocket; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    socket.send(Buffer.concat([Buffer.from(prefix), msg]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return {
    port: socket.address().port,
    socket,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

export { closedPort } from '../util/free-port.js';

export function meta(over: Partial<OpenMeta> = {}): OpenMeta {
  return {
    proto: 'tcp',
    host: 'echo.contoso.test',
    ip: null,
    port: 443,
    flowId: randomUUID(),
    connectionId: randomUUID(),
    channel: 'internet',
    ruleId: 'rule-x',
    policyId: 'policy-x',
    srcIp: '127.0.0.1',
    srcPort: 40000,
    process: 'curl',
    ...over,
  };
}

export async function tempDir(
  prefix = 'gsa-edge-',
): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * An edge for a whole test file (TLS unless `opts` says otherwise) with its state in a
 * temporary folder; closed, and the folder removed, at the file's end.
 */
export async function fileEdge(t: Test, opts: Partial<EdgeOptions> = {}): Promise<Edge> {
  const tmp = await tempDir();
  const edge = await startEdge({ stateDir: join(tmp.dir, 'state'), ...opts });
  t.teardown(async () => {
    await edge.close({ graceMs: 0 });
    await tmp.remove();
  });
  return edge;
}

export { delay, until } from '../util/wait.js';

/**
 * Tunnel clients of alice (dev-1) to `edge`: `client(channel)` resolves once its session is
 * up; `closeAll()` ends every one (call it at teardown, before the edge closes).
 */
export function edgeClients(
  edge: Edge,
  upn = 'alice@contoso.test',
): {
  client(channel: ChannelName, url?: string): Promise<TunnelClient>;
  closeAll(): Promise<void>;
} {
  const clients: TunnelClient[] = [];
  return {
    async client(channel, url = edge.url) {
      const c = new TunnelClient({
        url,
        channel,
        getToken: (ch) => edge.issueToken({ channel: ch, userId: 'alice', deviceId: 'dev-1', upn }),
        backoff: { baseMs: 20, maxMs: 100 },
        limits: { keepaliveInterval: 0 },
      });
      clients.push(c);
      c.start();
      await c.waitUp(5000);
      return c;
    },
    async closeAll() {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/** Writes `data`, ends, and collects everything read until end or reset. */
export function exchange(
  s: TunnelStream,
  data: Buffer,
): Promise<{ bytes: Buffer; reset: number | null }> {
  const done = collect(s);
  s.end(data);
  return done;
}

/** Collects what `s` reads from now until it closes, and the code it was reset with. */
export function collect(s: TunnelStream): Promise<{ bytes: Buffer; reset: number | null }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let reset: number | null = null;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('reset', (code: number) => {
      reset = code;
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ bytes: Buffer.concat(chunks), reset }));
  });
}

/** A traffic-log record with every field (`networkAccessTraffic`), `over` replacing some. */
export function trafficRecord(over: Partial<NetworkAccessTraffic> = {}): NetworkAccessTraffic {
  return {
    transactionId: 'tx',
    connectionId: 'c',
    sessionId: 's',
    createdDateTime: '2026-05-01T10:00:00.000Z',
    endDateTime: '2026-05-01T10:00:01.000Z',
    tenantId: 't',
    userId: 'u',
    userPrincipalName: 'u@t',
    deviceId: 'd',
    trafficType: 'internet',
    sourceIp: '127.0.0.1',
    sourcePort: 5000,
    destinationIp: '127.0.0.1',
    destinationPort: 443,
    destinationFQDN: 'www.contoso.test',
    destinationUrl: null,
    transportProtocol: 'tcp',
    sentBytes: 10,
    receivedBytes: 20,
    action: 'allow',
    policyId: null,
    policyName: null,
    policyRuleId: null,
    policyRuleName: null,
    agentVersion: 'x',
    initiatingProcessName: null,
    operationStatus: 'success',
    failureReason: null,
    privateAccessDetails: null,
    ...over,
  };
}
