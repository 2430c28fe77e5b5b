/**
 * The tenant a client shows when its forwarding profile comes from the edge (tenant
 * 'edge'): the edge serves a Graph list, which names no tenant, so the client asks the
 * edge's Graph `GET /organization` for the id and display name. Never the all-zero id nor
 * the placeholder name. Edges are plain HTTP on loopback and closed by each test.
 */
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startClient } from '../../src/client/client.js';
import { type EdgeOptions, startEdge } from '../../src/edge/server.js';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { DEFAULT_LIST_TENANT_ID, EXPAND_ALL, expandProfiles } from '../../src/policy/graph.js';
import { tempDir } from '../edge/helpers.js';
import { until } from './helpers.js';

const NO_LISTENERS = { socksPort: null, httpPort: null, pacPort: null, adminPort: null };
const PLACEHOLDER = 'Graph forwarding profiles';

/** An in-process edge (plain ws) with `over`, and a client taking its profiles from it. */
async function edgeAndClient(t: Test, over: Partial<EdgeOptions> = {}) {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, ...over });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url },
    tenant: 'edge',
    listen: NO_LISTENERS,
  });
  t.teardown(() => client.close());
  return { edge, client };
}

t.test('tenant edge: the client shows the edge tenant name and id', async (t) => {
  const { edge, client } = await edgeAndClient(t);
  const st = client.status();
  t.equal(st.tenantName, 'Contoso (gsa-emu default tenant)');
  t.not(st.tenantName, PLACEHOLDER);
  t.equal(st.tenantId, edge.tenantId);
  t.not(st.tenantId, DEFAULT_LIST_TENANT_ID);
  t.equal(client.tenant?.name, edge.tenant.name);
});

t.test('an edge serving a Graph list with its own tenant id and name', async (t) => {
  const list = expandProfiles(defaultTenantDocument(), EXPAND_ALL);
  const { edge, client } = await edgeAndClient(t, {
    tenantDoc: list,
    tenantId: '9a8b7c6d-1111-4222-8333-444455556666',
    tenantName: 'Fabrikam',
  });
  t.equal(client.status().tenantName, 'Fabrikam');
  t.equal(client.status().tenantId, '9a8b7c6d-1111-4222-8333-444455556666');

  // A PATCH on the edge: the client picks up the new document and keeps the tenant.
  const internet = list.value.find((p) => p.trafficForwardingType === 'internet')!;
  t.ok(edge.tenant.setLinkState(internet.id, internet.policies![0]!.id, 'disabled'));
  const gen = client.generation;
  await client.refreshProfiles();
  t.ok(client.generation > gen, 'the changed profile was loaded');
  t.equal(client.status().tenantId, '9a8b7c6d-1111-4222-8333-444455556666');
  t.equal(client.status().tenantName, 'Fabrikam');
});

t.test('an edge that comes up after the client: the tenant id is still the edge one', async (t) => {
  // A loopback port that was free a moment ago; the edge starts on it later.
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));

  const client = await startClient({
    edge: { url: `http://127.0.0.1:${port}` },
    tenant: 'edge',
    profilePollMs: 100,
    listen: NO_LISTENERS,
  });
  t.teardown(() => client.close());
  t.equal(client.tenant, null, 'no profile while the edge is down');

  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, port });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const tenant = await until(() => client.tenant, 'the profile from the edge', 10_000);
  t.equal(tenant.tenantId, edge.tenantId);
  t.not(tenant.tenantId, DEFAULT_LIST_TENANT_ID);
  t.equal(tenant.name, edge.tenant.name);
});
