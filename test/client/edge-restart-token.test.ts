/**
 * An edge restarted on the same port that no longer accepts the client's cached tokens
 * (another signing key, another tenant) refuses each tunnel upgrade with 403 (4403). The
 * next attempt must present a fresh token (docs/protocol.md: "a reconnect always presents a
 * fresh token"), not the cached one until 80% of its hour (~48 minutes of channels down).
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { tempDir, until } from '../edge/helpers.js';
import { NO_LISTENERS } from './edge-restart-helpers.js';

async function restartScenario(
  t: Test,
  first: EdgeOptions,
  second: (port: number) => EdgeOptions,
): Promise<void> {
  let edge: Edge = await startEdge(first);
  let client: RunningClient | null = null;
  t.teardown(async () => {
    await client?.close();
    await edge.close({ graceMs: 0 });
  });
  client = await startClient({
    edge: { url: edge.url, ca: edge.caPem },
    tenant: 'edge',
    profilePollMs: 60_000,
    listen: NO_LISTENERS,
    processLookup: false,
  });
  await client.waitConnected(10_000);
  const fetches = client.edgeApi.tokenFetches;
  const port = edge.port;
  await edge.kill();
  const c = client;
  t.ok(
    await until(() => !c.tunnels.isUp('m365') && !c.tunnels.isUp('internet'), 5000),
    'channels down',
  );
  edge = await startEdge(second(port));
  let err: Error | null = null;
  await c.waitConnected(15_000).catch((e: Error) => {
    err = e;
  });
  const m365 = c.status().channels.find((x) => x.channel === 'm365');
  t.equal(err, null, `channels back within 15 s of the edge's restart (m365: ${m365?.detail})`);
  t.ok(c.edgeApi.tokenFetches > fetches, 'with tokens fetched after the restart');
}

t.test('edge restarted with another signing key: the channels come back', async (t) => {
  const tmp = await tempDir('gsa-restart-key-');
  t.teardown(tmp.remove);
  const base: EdgeOptions = {
    stateDir: join(tmp.dir, 'a'),
    tls: false,
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 0 },
  };
  // `gsa-emu edge --no-tls --state-dir <another folder>`: a new ES256 key.
  await restartScenario(t, base, (port) => ({ ...base, stateDir: join(tmp.dir, 'b'), port }));
});

t.test(
  'edge restarted for another tenant (same state folder): the channels come back',
  async (t) => {
    const tmp = await tempDir('gsa-restart-tenant-');
    t.teardown(tmp.remove);
    const base: EdgeOptions = {
      stateDir: join(tmp.dir, 'edge'),
      egress: { systemResolver: false, directIp: false },
      limits: { graceMs: 0 },
    };
    // `gsa-emu edge --tenant other.json`: same key and CA, the tokens name the old tenant.
    const other = defaultTenantDocument();
    other.tenantId = '0b6e2d4c-1a3f-4e5d-8c7b-9a0f1e2d3c4b';
    other.name = 'Fabrikam';
    await restartScenario(t, base, (port) => ({ ...base, tenantDoc: other, port }));
  },
);
