/**
 * `up --edge <Contoso edge> --tenant <a Fabrikam file>`: the profiles classify for Fabrikam
 * while the edge's tokens (and its traffic log) are Contoso's. The client warns once in its
 * log, notes it in `status` and fails a health check; a file of the edge's own tenant does
 * none of that. In process and on loopback; the edge and clients are closed here.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdge } from '../../src/edge/server.js';
import { DEFAULT_TENANT_ID, defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { tempDir } from '../edge/helpers.js';

const FABRIKAM = '11111111-2222-4333-8444-555555555555';
const CHECK = 'Forwarding profile of the signed-in tenant';

async function run(t: Test, doc: object) {
  const tmp = await tempDir('gsa-tenant-mismatch-');
  t.teardown(tmp.remove);
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const file = join(tmp.dir, 'tenant.json');
  writeFileSync(file, JSON.stringify(doc));
  const warns: Array<{ obj: unknown; msg: string }> = [];
  const log = {
    info() {},
    debug() {},
    error() {},
    warn(obj: unknown, msg: string) {
      warns.push({ obj, msg });
    },
  };
  const client = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: file,
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    resolver: { system: false },
    processLookup: false,
    localSubnets: [],
    log: log as never,
  });
  t.teardown(() => client.close());
  await client.waitConnected(10_000);
  // A second token of the same tenant (a reconnect): no second warning.
  await client.edgeApi.getToken('m365', { fresh: true });
  const health = await client.health();
  return { client, warns, check: health.find((c) => c.name === CHECK) };
}

t.test('a tenant file of another tenant than the edge signs in to is noticed', async (t) => {
  const doc = { ...defaultTenantDocument(), tenantId: FABRIKAM, name: 'Fabrikam' };
  const { client, warns, check } = await run(t, doc);
  const st = client.status();
  t.equal(st.tenantName, 'Fabrikam', 'the profiles in force are the file');
  const mismatch = warns.filter((w) => /edge signs in to tenant/.test(w.msg));
  t.equal(mismatch.length, 1, 'warned once in the client log');
  t.match(
    mismatch[0]?.msg,
    `tenant Fabrikam (${FABRIKAM}), but the edge signs in to tenant ${DEFAULT_TENANT_ID}`,
  );
  t.match(
    st.notes,
    [
      new RegExp(
        `is tenant Fabrikam's \\(${FABRIKAM}\\), but the edge signs in to another tenant, ${DEFAULT_TENANT_ID}`,
      ),
    ],
    'status notes it',
  );
  t.match(check, { status: 'fail', detail: new RegExp(DEFAULT_TENANT_ID) }, 'health check fails');
});

t.test("a tenant file of the edge's tenant: no warning, the check passes", async (t) => {
  const { client, warns, check } = await run(t, defaultTenantDocument());
  t.same(
    warns.filter((w) => /signs in/.test(w.msg)),
    [],
    'no warning',
  );
  t.same(client.status().notes, [], 'no note');
  t.match(check, { status: 'pass', detail: new RegExp(DEFAULT_TENANT_ID) });
});
