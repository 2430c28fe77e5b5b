/**
 * The control API after an edge restart. With another signing key the edge refuses the
 * client's cached `graph` token with 403 (forged): the profile poll must retry with a fresh
 * token (it did only on 401), or a profile changed on the new edge never reaches the client
 * until that token's refresh time (~48 minutes). While the edge is down, the health check
 * "Forwarding profile present and valid" says the profile in force is kept and why the
 * last poll failed.
 */
import { join } from 'node:path';
import t from 'tap';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { delay, tempDir } from '../edge/helpers.js';
import { NO_LISTENERS, plainEdge } from './edge-restart-helpers.js';

const CHECK = 'Forwarding profile present and valid';

t.test('edge restarted with another signing key: profile polls work again', async (t) => {
  const tmp = await tempDir('gsa-restart-poll-');
  const base = plainEdge(join(tmp.dir, 'a'));
  let edge: Edge = await startEdge(base);
  let client: RunningClient | null = null;
  t.teardown(async () => {
    await client?.close();
    await edge.close({ graceMs: 0 });
    await tmp.remove();
  });
  client = await startClient({
    edge: { url: edge.url },
    tenant: 'edge',
    profilePollMs: 60_000,
    listen: NO_LISTENERS,
    processLookup: false,
  });
  t.ok(client.tenant, 'first profile from the edge');
  const port = edge.port;
  await edge.kill();

  // The edge is down: the profile in force stays, the health check says the poll failed.
  await client.refreshProfiles();
  const down = (await client.health()).find((c) => c.name === CHECK);
  t.match(
    down,
    {
      status: 'warn',
      detail: /^3 profiles, \d+ compiled rules \(.*\); cannot fetch forwarding profiles: /,
    },
    'health: the profile is kept, the poll failed',
  );

  // The new edge (another state folder: another key) serves a changed profile.
  const doc = defaultTenantDocument();
  const name = 'Microsoft 365 profile after the restart';
  doc.forwardingProfiles[0]!.name = name;
  edge = await startEdge({ ...base, stateDir: join(tmp.dir, 'b'), port, tenantDoc: doc });
  // Three polls (the first may meet a connection the old edge closed).
  for (let i = 0; i < 3; i++) {
    await client.refreshProfiles();
    if (client.tenant?.profiles.some((p) => p.name === name)) break;
    await delay(200);
  }
  const names = client.tenant?.profiles.map((p) => p.name) ?? [];
  const prof = (await client.health()).find((c) => c.name === CHECK);
  t.ok(
    names.includes(name),
    `the new edge's profile is loaded (profiles: ${names.join(', ')}; health: ${prof?.detail})`,
  );
  t.equal(prof?.status, 'pass', 'health: the check passes again');
});
