/**
 * Shared setup of the end-to-end tests (proxy-e2e, tun-e2e, tun-up): the demo servers, a
 * real edge and a real client on loopback, and the lookups the tests assert with (the
 * client's flow table, the edge's traffic log), plus bounded waits and child processes.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type ClientOptions, type RunningClient, startClient } from '../../src/client/client.js';
import { type Demo, startDemo } from '../../src/client/demo.js';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import type { NetworkAccessTraffic } from '../../src/edge/traffic-log.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';

/** Polls `f` every 20 ms until it returns something truthy; throws after `ms`. */
export async function until<T>(
  f: () => T | undefined | null | false,
  what: string,
  ms = 5000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export { collect, type Run } from '../util/ts-child.js';

export interface TestWorld {
  dir: string;
  demo: Demo;
  edge: Edge;
  client: RunningClient;
  /** The client's newest flow to `host`. */
  flowTo(host: string, proto?: 'tcp' | 'udp'): FlowRecord | undefined;
  /** Waits for the newest TCP flow to `host` to have ended. */
  closedFlow(host: string): Promise<FlowRecord>;
  /** Waits for the edge's traffic-log record of a connection. */
  edgeRecord(connectionId: string): Promise<NetworkAccessTraffic>;
  /** Client, edge, demo servers and the state folder. Idempotent. */
  close(): Promise<void>;
}

/**
 * Demo servers, an edge (no internet: hosts maps only) and a client connected to it, with
 * short timeouts. `listen` defaults to the admin API only; `hostnames` feeds /hostnames.
 */
export async function startTestWorld(
  o: {
    prefix?: string;
    listen?: ClientOptions['listen'];
    hostnames?: ClientOptions['hostnames'];
    metrics?: ClientOptions['metrics'];
    /** More private destinations for the edge's connector (`name:port` -> `ip:port`). */
    connectorHosts?: Record<string, string> | ((demo: Demo) => Record<string, string>);
    /** More of the client's dial map (where bypassed flows connect: `name:port` -> `ip:port`). */
    clientDial?: Record<string, string>;
    /** The connector's DNS search suffixes (single-label names). */
    connectorSearch?: string[];
    /** More edge limits (closeOnTokenExpiry...). */
    edgeLimits?: EdgeOptions['limits'];
    /** The edge's client secret (then the client needs it: clientEdge.clientSecret). */
    edgeClientSecret?: string;
    /** More of the client's edge options (tokenTtlSeconds, rotateSessions...). */
    clientEdge?: Partial<ClientOptions['edge']>;
  } = {},
): Promise<TestWorld> {
  const dir = await mkdtemp(join(tmpdir(), o.prefix ?? 'gsa-e2e-'));
  let demo: Demo | null = null;
  let edge: Edge | null = null;
  let client: RunningClient | null = null;
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await client?.close();
      await edge?.close({ graceMs: 100 });
      await demo?.close();
      await rm(dir, { recursive: true, force: true });
    })();
    return closing;
  };
  try {
    demo = await startDemo({ stateDir: dir });
    edge = await startEdge({
      stateDir: join(dir, 'edge'),
      hostsMap: demo.edge.hostsMap,
      connectorHosts: {
        ...demo.edge.connectorHosts,
        ...(typeof o.connectorHosts === 'function' ? o.connectorHosts(demo) : o.connectorHosts),
      },
      ...(o.connectorSearch ? { connectorSearch: o.connectorSearch } : {}),
      filtering: demo.edge.filtering,
      egress: { systemResolver: false, directIp: false },
      limits: { graceMs: 100, connectTimeoutMs: 2000, ...o.edgeLimits },
      ...(o.edgeClientSecret !== undefined ? { clientSecret: o.edgeClientSecret } : {}),
    });
    client = await startClient({
      edge: { url: edge.url, ca: edge.caPem, ...o.clientEdge },
      tenant: 'edge',
      profilePollMs: 100,
      listen: o.listen ?? { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
      resolver: {
        hosts: demo.client.hosts,
        dial: { ...demo.client.dial, ...o.clientDial },
        system: false,
        directIp: false,
      },
      bypassLocalAddress: demo.bypassSource,
      limits: { openTimeoutMs: 3000, connectTimeoutMs: 2000, udpIdleMs: 2000 },
      ...(o.hostnames ? { hostnames: o.hostnames } : {}),
      ...(o.metrics ? { metrics: o.metrics } : {}),
    });
    await client.waitConnected(10_000);
  } catch (err) {
    await close();
    throw err;
  }
  const c = client;
  const e = edge;
  const flowTo = (host: string, proto: 'tcp' | 'udp' = 'tcp'): FlowRecord | undefined =>
    c.flows
      .list()
      .filter((f) => f.destinationFqdn === host && f.protocol === proto)
      .at(-1);
  return {
    dir,
    demo,
    edge: e,
    client: c,
    flowTo,
    closedFlow: (host) =>
      until(() => {
        const f = flowTo(host);
        return f && f.endTime !== null ? f : undefined;
      }, `closed flow to ${host}`),
    edgeRecord: (connectionId) =>
      until(
        () => e.logs.all().find((r) => r.connectionId === connectionId),
        `edge log ${connectionId}`,
      ),
    close,
  };
}

/**
 * A private app on 127.0.0.1 that answers its first line with "pong\n" and closes, and an
 * edge (no TLS, no hosts map) whose connector reaches it as `target` (`name:port`); both
 * stopped when `t` ends. `over`: more edge options (egress, limits).
 */
export async function edgeWithPongApp(
  t: Test,
  target: string,
  over: Partial<EdgeOptions> = {},
): Promise<Edge> {
  const app = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('pong\n'));
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  t.teardown(() => new Promise<void>((r) => app.close(() => r())));
  const appPort = (app.address() as { port: number }).port;
  const dir = await mkdtemp(join(tmpdir(), 'gsa-e2e-pong-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const edge = await startEdge({
    stateDir: join(dir, 'edge'),
    tls: false,
    persistKey: false,
    connectorHosts: { [target]: `127.0.0.1:${appPort}` },
    ...over,
    egress: { systemResolver: false, directIp: false, ...over.egress },
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  return edge;
}
