/**
 * The edge's client secret (docs/decisions/edge-client-secret.md): an edge started with
 * `clientSecret` issues tokens only to requests that carry it, in the body (JSON or form) or
 * as HTTP Basic (RFC 6749 2.3.1), and refuses the rest with 401 `invalid_client`; a client
 * given the secret connects and tunnels, one without it stays down and says why. An edge
 * without a secret issues tokens as before (test/edge/identity.test.ts). Plain http on
 * 127.0.0.1; the client's flow goes to a demo server on loopback.
 */
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { sameSecret } from '../../src/edge/identity.js';
import { startEdge } from '../../src/edge/server.js';
import { domainRequest, hex, rawClient } from '../capture/helpers.js';
import { startTestWorld, until } from '../e2e/helpers.js';
import { tempDir } from './helpers.js';

const SECRET = 'Zm9vYmFyYmF6cXV4LXRlc3Qtc2VjcmV0';

/** POST the token endpoint: status and body. */
async function ask(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{
  status: number;
  j: { error?: string; error_description?: string; access_token?: string };
}> {
  const r = await fetch(`${url}/oauth2/v2.0/token`, { method: 'POST', headers, body });
  return { status: r.status, j: (await r.json()) as never };
}

const json = { 'content-type': 'application/json' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const basic = (id: string, secret: string) => ({
  ...json,
  authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
});

t.test('sameSecret: equal strings only, whatever the lengths', async (t) => {
  t.ok(sameSecret(SECRET, SECRET));
  t.notOk(sameSecret(`${SECRET}x`, SECRET));
  t.notOk(sameSecret(SECRET.slice(1), SECRET));
  t.notOk(sameSecret('', SECRET));
});

t.test('the token endpoint of an edge with a client secret', async (t) => {
  const dir = await tempDir();
  const edge = await startEdge({
    stateDir: dir.dir,
    tls: false,
    persistKey: false,
    clientSecret: SECRET,
    egress: { systemResolver: false, directIp: false },
  });
  t.teardown(async () => {
    await edge.close({ graceMs: 0 });
    await dir.remove();
  });
  const ids = { userId: 'alice', channel: 'private' };

  const none = await ask(edge.url, JSON.stringify(ids), json);
  t.equal(none.status, 401, 'no secret: 401');
  t.equal(none.j.error, 'invalid_client');
  t.match(none.j.error_description, /only with its client secret.*--edge-secret/);
  t.notOk(none.j.access_token, 'and no token');

  const wrong = await ask(edge.url, JSON.stringify({ ...ids, client_secret: `${SECRET}x` }), json);
  t.equal(wrong.status, 401, 'a wrong secret: 401');
  t.equal(wrong.j.error, 'invalid_client');
  t.match(wrong.j.error_description, /not this edge's/);
  t.notMatch(wrong.j.error_description, SECRET, 'the edge does not echo its secret');

  const right = await ask(edge.url, JSON.stringify({ ...ids, client_secret: SECRET }), json);
  t.equal(right.status, 200, 'the secret in a JSON body: a token');
  t.type(right.j.access_token, 'string');

  const viaForm = await ask(
    edge.url,
    new URLSearchParams({ client_id: 'alice', channel: 'm365', client_secret: SECRET }).toString(),
    form,
  );
  t.equal(viaForm.status, 200, 'the secret in a form: a token');

  t.equal(
    (await ask(edge.url, JSON.stringify(ids), basic('alice', SECRET))).status,
    200,
    'HTTP Basic',
  );
  t.equal(
    (await ask(edge.url, JSON.stringify(ids), basic('alice', 'not-the-secret-at-all'))).status,
    401,
    'HTTP Basic with a wrong secret',
  );
  const garbage = { ...json, authorization: 'Basic %%%' };
  t.equal((await ask(edge.url, JSON.stringify(ids), garbage)).status, 401, 'a malformed Basic');

  // Without a token nothing else of the edge opens: the control API wants one.
  const api = await fetch(`${edge.url}/beta/networkAccess/forwardingProfiles`);
  await api.text();
  t.equal(api.status, 401, 'the control API without a token');
  // JWKS stays public (public keys only).
  t.equal((await fetch(`${edge.url}/.well-known/jwks.json`)).status, 200, 'JWKS');
});

t.test(
  'startEdge refuses a client secret of fewer than 16 or more than 1024 characters',
  async (t) => {
    const dir = await tempDir();
    t.teardown(() => dir.remove());
    for (const secret of ['', 'short', 'x'.repeat(1025)]) {
      await t.rejects(
        startEdge({ stateDir: dir.dir, tls: false, persistKey: false, clientSecret: secret }),
        { name: 'ConfigError', message: /clientSecret: must be 16 to 1024 characters/ },
        `${secret.length} characters`,
      );
    }
  },
);

t.test('a client with the secret tunnels; one without stays down and says why', async (t) => {
  const w = await startTestWorld({
    prefix: 'gsa-client-secret-',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 },
    edgeClientSecret: SECRET,
    clientEdge: { clientSecret: SECRET },
  });
  t.teardown(() => w.close());
  const socks = Number(w.client.addresses.socks!.split(':')[1]);
  const c = await rawClient(t, socks, [
    hex('05 01 00'),
    domainRequest('intranet.contoso.test', 80),
  ]);
  t.equal((await c.waitBytes(12))[3], 0, 'granted');
  c.s.write('GET / HTTP/1.0\r\nHost: intranet.contoso.test\r\n\r\n');
  t.ok(await c.ended(5000), 'the answer ended');
  t.match(
    c.data().subarray(12).toString(),
    /^HTTP\/1\.[01] 200/,
    'the private app answered through the tunnel',
  );
  c.s.destroy();
  const f = await w.closedFlow('intranet.contoso.test');
  t.equal(f.action, 'Tunnel');
  t.ok(await w.edgeRecord(f.connectionId), 'the edge logged it');

  const other = await startClient({
    edge: { url: w.edge.url, ca: w.edge.caPem },
    tenant: 'edge',
    profilePollMs: 100,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: null },
    resolver: { hosts: {}, system: false, directIp: false },
  });
  t.teardown(() => other.close());
  const said = await until(() => {
    const text = JSON.stringify(other.status());
    return /invalid_client|client secret/.test(text) ? text : undefined;
  }, 'the client says why');
  t.match(said, /client secret/, 'its status names the client secret');
  t.not(other.status().state, 'Connected', 'the client is not Connected');
});
