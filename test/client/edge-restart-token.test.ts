/**
 * An edge restarted on the same port that no longer accepts the client's cached tokens
 * (another signing key, another tenant) refuses each tunnel upgrade with 403 (4403). The
 * next attempt must present a fresh token (docs/protocol.md: "a reconnect always presents a
 * fresh token"), not the cached one until 80% of its hour (~48 minutes of channels down).
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { EdgeOptions } from '../../src/edge/server.js';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { tempDir } from '../edge/helpers.js';
import { edgeToRestart, NO_LISTENERS, plainEdge } from './edge-restart-helpers.js';

/** A client of the edge `first`, restarted as `second` (on the same port). */
async function restartScenario(t: Test, first: EdgeOptions, second: EdgeOptions): Promise<void> {
  const w = await edgeToRestart(t, first, {
    tenant: 'edge',
    profilePollMs: 60_000,
    listen: NO_LISTENERS,
    processLookup: false,
  });
  const c = w.client;
  const fetches = c.edgeApi.tokenFetches;
  await w.restart(second);
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
  const base = plainEdge(join(tmp.dir, 'a'));
  // `gsa-emu edge --no-tls --state-dir <another folder>`: a new ES256 key.
  await restartScenario(t, base, { ...base, stateDir: join(tmp.dir, 'b') });
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
    await restartScenario(t, base, { ...base, tenantDoc: other });
  },
);
