/**
 * A plain-ws edge and a client with nothing but its admin API, both on 127.0.0.1, both
 * closed (and the temporary folder removed) by `t`'s teardown.
 */
import { join } from 'node:path';
import type { Test } from 'tap';
import { type ClientOptions, type RunningClient, startClient } from '../../src/client/client.js';
import type { HealthInput, StatusInput } from '../../src/client/diagnostics.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import { loadPlatform } from '../../src/policy/platform.js';
import { tempDir } from '../edge/helpers.js';

/** The `overview` of a status or health input in unit tests (statusView, healthChecks). */
export const TEST_OVERVIEW = {
  userPrincipalName: null,
  userId: 'u',
  deviceId: 'd',
  lastChecked: null,
  clientVersion: '0',
};

/**
 * A statusView input for unit tests: the default tenant and client config, every tunnel
 * up, a token, a SOCKS listener; `over` replaces any of it.
 */
export function statusInput(over: Partial<StatusInput> = {}): StatusInput {
  return {
    overview: TEST_OVERVIEW,
    tenant: loadDefaultTenant(),
    profileSource: 'test',
    profileLoadedAt: null,
    generation: 1,
    tiles: createClientTiles(defaultClientConfig()).snapshot(),
    tunnelUp: () => true,
    tunnelDetail: () => 'tunnel up',
    tokenAt: Date.now(),
    tokenError: null,
    listeners: { socks: '127.0.0.1:1080' },
    activeFlows: 0,
    ...over,
  };
}

/**
 * A healthChecks input for unit tests: no tenant, iOS, every channel on and its tunnel up,
 * a token obtained 2026-11-27 12:00Z, a SOCKS listener, no probes run; `over` replaces any
 * of it.
 */
export function healthInput(over: Partial<HealthInput> = {}): HealthInput {
  return {
    tenant: null,
    profileSource: 'x',
    profileError: null,
    rules: 0,
    platform: loadPlatform('ios'),
    channels: { m365: true, private: true, internet: true },
    tunnelUp: () => true,
    tunnelDetail: () => 'up',
    edgeReachable: { m365: null, private: null, internet: null },
    edgeHost: '127.0.0.1:8443',
    edgeHostResolves: null,
    tokenAt: Date.UTC(2026, 10, 27, 12, 0, 0),
    tokenError: null,
    listeners: { socks: '127.0.0.1:1080' },
    hostnames: null,
    ...over,
  };
}

export interface AdminWorld {
  edge: Edge;
  client: RunningClient;
  /** The temporary folder (the edge's state is in `<dir>/edge`). */
  dir: string;
  /** The admin API's base URL. */
  base: string;
  /** `{ authorization: 'Bearer <token>' }` */
  auth: Record<string, string>;
}

export async function adminWorld(
  t: Test,
  over: Partial<ClientOptions> = {},
  prefix?: string,
): Promise<AdminWorld> {
  const tmp = await tempDir(prefix);
  t.teardown(tmp.remove);
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
    resolver: { system: false },
    processLookup: false,
    ...over,
  });
  t.teardown(() => client.close());
  const admin = client.admin!;
  return {
    edge,
    client,
    dir: tmp.dir,
    base: admin.url,
    auth: { authorization: `Bearer ${admin.token}` },
  };
}
