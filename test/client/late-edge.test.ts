/**
 * `up --edge <url>` started before its edge (a CI job starting both, an edge restarting).
 * The first profile fetch fails and the client starts with no profile (state Initializing,
 * every flow direct). Once the tunnels are up the profile must follow at once, not a whole
 * poll interval later (30 s by default). Meanwhile `status` says there is no profile yet and
 * why, not that the administrator disabled every channel's profile.
 */
import { join } from 'node:path';
import t from 'tap';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { tempDir, until } from '../edge/helpers.js';
import { freePort, NO_LISTENERS } from './edge-restart-helpers.js';

t.test('edge unreachable at start: status says there is no profile yet, and why', async (t) => {
  const port = await freePort();
  const client = await startClient({
    edge: { url: `http://127.0.0.1:${port}` },
    tenant: 'edge',
    listen: NO_LISTENERS,
    processLookup: false,
  });
  t.teardown(() => client.close());
  const st = client.status();
  t.equal(st.state, 'Initializing');
  for (const c of st.channels.filter((x) => x.channel !== 'entra')) {
    t.match(
      c.detail,
      /^no forwarding profile yet \(cannot fetch forwarding profiles: .*ECONNREFUSED/,
      `${c.label}: no profile was fetched, none was disabled (detail: "${c.detail}")`,
    );
  }
});

t.test('edge reachable after start: the profile follows the tunnels', async (t) => {
  const tmp = await tempDir('gsa-late-edge-');
  const port = await freePort();
  let edge: Edge | null = null;
  let client: RunningClient | null = null;
  t.teardown(async () => {
    await client?.close();
    await edge?.close({ graceMs: 0 });
    await tmp.remove();
  });
  // The default poll interval (`up --profile-poll`: 30 s).
  client = await startClient({
    edge: { url: `http://127.0.0.1:${port}` },
    tenant: 'edge',
    listen: NO_LISTENERS,
    processLookup: false,
  });
  t.equal(client.tenant, null, 'no profile while the edge is unreachable');
  edge = await startEdge({
    stateDir: join(tmp.dir, 'edge'),
    tls: false,
    port,
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 0 },
  });
  const c = client;
  // Channels come back on their own (backoff at most 10 s); waitConnected needs a profile.
  t.ok(
    await until(
      () => c.tunnels.isUp('m365') && c.tunnels.isUp('private') && c.tunnels.isUp('internet'),
      15_000,
    ),
    'tunnels up',
  );
  const upAt = Date.now();
  const loaded = await until(() => c.tenant !== null, 5000);
  t.ok(
    loaded,
    `profile loaded within 5 s of the tunnels (${loaded ? `${Date.now() - upAt} ms` : `still ${c.status().state}`})`,
  );
  if (loaded) t.equal(c.status().state, 'Connected');
});
