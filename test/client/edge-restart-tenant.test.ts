/**
 * An edge restarted (or replaced) on the same port for another tenant: once the client has
 * re-authenticated and fetched the forwarding profiles again, its status (in process and
 * on the admin API's /status) names the tenant the edge now serves, not the first one. Also
 * when the new edge serves the very same Graph list (same ETag: the profile poll answers
 * 304) under another tenant id and name, and without anyone asking for a poll (the
 * reconnecting tunnels' fresh tokens name the new tenant). Loopback only; every edge and
 * client is closed by the test.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { RunningClient } from '../../src/client/client.js';
import { statusView } from '../../src/client/diagnostics.js';
import type { EdgeOptions } from '../../src/edge/server.js';
import { DEFAULT_TENANT_ID, defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { EXPAND_ALL, expandProfiles } from '../../src/policy/graph.js';
import { tempDir, until } from '../edge/helpers.js';
import { edgeToRestart, plainEdge, type RestartedEdge } from './edge-restart-helpers.js';
import { statusInput } from './helpers.js';

const FABRIKAM = { id: '0b6e2d4c-1a3f-4e5d-8c7b-9a0f1e2d3c4b', name: 'Fabrikam' };
const CONTOSO_LIST = { id: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', name: 'Contoso (list)' };

interface World extends RestartedEdge {
  /** The admin API's /status. */
  adminStatus(): Promise<{ overview: { tenantId: string | null }; tenantName: string | null }>;
}

async function world(t: Test, first: EdgeOptions, profilePollMs = 60_000): Promise<World> {
  const w = await edgeToRestart(t, first, {
    tenant: 'edge',
    profilePollMs,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
    resolver: { system: false },
    processLookup: false,
  });
  const c = w.client;
  return {
    ...w,
    async adminStatus() {
      const admin = c.admin!;
      const r = await fetch(`${admin.url}/status`, {
        headers: { authorization: `Bearer ${admin.token}` },
      });
      return (await r.json()) as { overview: { tenantId: string | null }; tenantName: string };
    },
  };
}

/** Polls the profiles (at most 5 times) until the client names `want`'s tenant. */
async function refreshUntil(c: RunningClient, want: string): Promise<void> {
  for (let i = 0; i < 5 && c.status().overview.tenantId !== want; i++) {
    await c.waitConnected(10_000).catch(() => {});
    await c.refreshProfiles();
  }
}

async function checkTenant(
  t: Test,
  w: World,
  want: { id: string; name: string },
  what: string,
): Promise<void> {
  const st = w.client.status();
  t.equal(st.overview.tenantId, want.id, `${what}: status names the new tenant's id`);
  t.equal(st.tenantName, want.name, `${what}: status names the new tenant`);
  t.equal(w.client.tenant?.tenantId, want.id, `${what}: client.tenant is the new tenant`);
  t.equal(w.client.profile().tenantId, want.id, `${what}: /profile names the new tenant`);
  t.notOk(
    st.notes.some((n) => n.includes('now serves tenant')),
    `${what}: no note of a previous tenant's profile`,
  );
  const admin = await w.adminStatus();
  t.equal(admin.overview.tenantId, want.id, `${what}: admin /status names the new tenant's id`);
  t.equal(admin.tenantName, want.name, `${what}: admin /status names the new tenant`);
}

t.test('edge restarted with another tenant document: status names the new tenant', async (t) => {
  const tmp = await tempDir('gsa-restart-tenant-doc-');
  t.teardown(tmp.remove);
  const base = plainEdge(join(tmp.dir, 'edge'));
  const w = await world(t, base);
  t.equal(w.client.status().overview.tenantId, DEFAULT_TENANT_ID, 'first: the default tenant');
  const other = defaultTenantDocument();
  other.tenantId = FABRIKAM.id;
  other.name = FABRIKAM.name;
  await w.restart({ ...base, tenantDoc: other });
  await refreshUntil(w.client, FABRIKAM.id);
  await checkTenant(t, w, FABRIKAM, 'after a poll');
});

t.test('the same Graph list served for another tenant (304): status names it', async (t) => {
  const tmp = await tempDir('gsa-restart-tenant-list-');
  t.teardown(tmp.remove);
  const list = expandProfiles(defaultTenantDocument(), EXPAND_ALL);
  const base: EdgeOptions = {
    ...plainEdge(join(tmp.dir, 'edge')),
    tenantDoc: list,
    tenantId: CONTOSO_LIST.id,
    tenantName: CONTOSO_LIST.name,
  };
  const w = await world(t, base);
  t.equal(w.client.status().tenantName, CONTOSO_LIST.name, 'first: the first edge tenant');
  await w.restart({ ...base, tenantId: FABRIKAM.id, tenantName: FABRIKAM.name });
  await refreshUntil(w.client, FABRIKAM.id);
  await checkTenant(t, w, FABRIKAM, 'after a poll');
});

t.test('no poll asked for: the reconnected channels bring the new tenant', async (t) => {
  const tmp = await tempDir('gsa-restart-tenant-auto-');
  t.teardown(tmp.remove);
  const base = plainEdge(join(tmp.dir, 'edge'));
  const w = await world(t, base);
  const other = defaultTenantDocument();
  other.tenantId = FABRIKAM.id;
  other.name = FABRIKAM.name;
  await w.restart({ ...base, tenantDoc: other });
  await w.client.waitConnected(15_000);
  const c = w.client;
  t.ok(
    await until(() => c.status().overview.tenantId === FABRIKAM.id, 5000),
    `within 5 s of the channels' return (status: ${c.status().tenantName})`,
  );
  await checkTenant(t, w, FABRIKAM, 'after the reconnect');
});

t.test('status notes a profile in force from another tenant than the edge serves', async (t) => {
  const input = statusInput({ profileSource: 'edge http://127.0.0.1:1' });
  const stale = statusView({ ...input, edgeTenantId: FABRIKAM.id });
  t.match(stale.notes, [
    /^the edge now serves tenant 0b6e2d4c-1a3f-4e5d-8c7b-9a0f1e2d3c4b: the profile in force is still Contoso .*'s until/,
  ]);
  t.same(
    statusView({ ...input, edgeTenantId: DEFAULT_TENANT_ID }).notes,
    [],
    'same tenant: no note',
  );
  t.same(statusView(input).notes, [], 'no edge tenant known: no note');
});
