/**
 * A token request whose path names another tenant than the edge's, as a client given the
 * edge URL with a path sends (`up --edge https://host:port/gsa` asks
 * `/gsa/oauth2/v2.0/token`): the 400 invalid_tenant says the tenant came from the path and
 * which tenant this edge serves, not only "tenant gsa is not served". Plain http on 127.0.0.1.
 */
import t from 'tap';
import { startEdge } from '../../src/edge/server.js';
import { tempDir } from './helpers.js';

t.test('invalid_tenant from the path names the path and the served tenant', async (t) => {
  const dir = await tempDir();
  const edge = await startEdge({ stateDir: dir.dir, tls: false, persistKey: false });
  t.teardown(async () => {
    await edge.close({ graceMs: 0 });
    await dir.remove();
  });
  const ask = async (path: string, body: object) => {
    const r = await fetch(`${edge.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return {
      status: r.status,
      j: (await r.json()) as { error: string; error_description: string },
    };
  };
  const fromPath = await ask('/gsa/oauth2/v2.0/token', { userId: 'alice', channel: 'internet' });
  t.equal(fromPath.status, 400);
  t.equal(fromPath.j.error, 'invalid_tenant');
  t.match(fromPath.j.error_description, 'tenant gsa is not served by this edge');
  t.match(fromPath.j.error_description, '/gsa/oauth2/v2.0/token');
  t.match(fromPath.j.error_description, edge.tenantId, 'names the tenant it serves');
  // A tenant asked for in the body: said as before, without the path note.
  const fromBody = await ask('/oauth2/v2.0/token', {
    userId: 'alice',
    channel: 'internet',
    tenantId: '11111111-2222-4333-8444-555555555555',
  });
  t.equal(fromBody.status, 400);
  t.equal(
    fromBody.j.error_description,
    'tenant 11111111-2222-4333-8444-555555555555 is not served by this edge',
  );
  // The edge's own tenant in the path is fine.
  t.equal(
    (await ask(`/${edge.tenantId}/oauth2/v2.0/token`, { userId: 'a', channel: 'm365' })).status,
    200,
  );
});
