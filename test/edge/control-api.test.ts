import { join } from 'node:path';
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify } from 'jose';
import t from 'tap';
import { request } from 'undici';
import { audienceFor, issuerFor } from '../../src/edge/identity.js';
import { startEdge } from '../../src/edge/server.js';
import { TenantStore } from '../../src/edge/tenant.js';
import type { NetworkAccessTraffic } from '../../src/edge/traffic-log.js';
import { EXPAND_ALL } from '../../src/policy/graph.js';
import { controlApiFixture, type Link, type Prof } from './control-api-fixture.js';
import { tempDir } from './helpers.js';
import { shapeProblems } from './shape.js';

const api = controlApiFixture();
const call = api.call.bind(api);
const { dispatcher } = api;

const PROFILES = '/beta/networkAccess/forwardingProfiles';
/** Links, policies and their rules: what gsa-emu's own client asks for. */
const EXPAND = `${PROFILES}?$expand=${encodeURIComponent(EXPAND_ALL)}`;
const POLICIES = '/beta/networkAccess/forwardingPolicies';

t.test('token endpoint and JWKS', async (t) => {
  const r = await call('POST', '/oauth2/v2.0/token', {
    token: null,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      userId: 'bob',
      deviceId: 'dev-9',
      channel: 'private',
      upn: 'bob@contoso.test',
    }),
  });
  t.equal(r.status, 200);
  t.equal(r.json.token_type, 'Bearer');
  t.equal(r.json.expires_in, 3600);
  const jwks = await call('GET', '/.well-known/jwks.json', { token: null });
  const keys = await call('GET', '/discovery/v2.0/keys', { token: null });
  t.same(jwks.json, keys.json);
  t.equal(jwks.json.keys[0].kid, api.edge.issuer.kid);
  // A third party verifies the token with the published JWKS alone.
  const v = await jwtVerify(r.json.access_token, createLocalJWKSet(jwks.json), {
    audience: audienceFor('private'),
    issuer: issuerFor(api.edge.tenantId),
  });
  t.equal(v.payload.sub, 'bob');
  t.equal(v.payload.tid, api.edge.tenantId);
  t.equal(v.payload.deviceid, 'dev-9');
  t.equal(v.payload.upn, 'bob@contoso.test');
  // Form body with an OAuth scope.
  const form = await call('POST', `/${api.edge.tenantId}/oauth2/v2.0/token`, {
    token: null,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `grant_type=client_credentials&client_id=svc1&scope=${encodeURIComponent(`${audienceFor('internet')}/.default`)}`,
  });
  t.equal(form.status, 200);
  t.equal(
    (
      await api.edge.issuer.verify(form.json.access_token, {
        channel: 'internet',
        tenantId: api.edge.tenantId,
      })
    ).userId,
    'svc1',
  );
  const bad: Array<[string, string, number, string]> = [
    [
      'other tenant',
      JSON.stringify({ userId: 'a', channel: 'internet', tenantId: 'other' }),
      400,
      'invalid_tenant',
    ],
    ['no user', JSON.stringify({ channel: 'internet' }), 400, 'invalid_request'],
    ['bad channel', JSON.stringify({ userId: 'a', channel: 'intranet' }), 400, 'invalid_scope'],
    ['not JSON', '{', 400, 'invalid_request'],
    ['array', '[]', 400, 'invalid_request'],
    [
      'ttl too long',
      JSON.stringify({ userId: 'a', channel: 'internet', ttlSeconds: 10 ** 9 }),
      400,
      'invalid_request',
    ],
  ];
  for (const [name, body, status, code] of bad) {
    const b = await call('POST', '/oauth2/v2.0/token', {
      token: null,
      headers: { 'content-type': 'application/json' },
      body,
    });
    t.equal(b.status, status, name);
    t.equal(b.json?.error, code, name);
  }
  t.equal((await call('GET', '/oauth2/v2.0/token', { token: null })).status, 405);
});

t.test('control API requires a valid token of the tenant', async (t) => {
  t.equal((await call('GET', '/health', { token: null })).status, 200, '/health is open');
  t.equal((await call('GET', '/health', { token: null })).json.tenantId, api.edge.tenantId);
  const otherDir = await tempDir();
  t.teardown(otherDir.remove);
  const other = await startEdge({ stateDir: otherDir.dir, tls: false, persistKey: false });
  const forged = await other.issueToken({ channel: 'graph' });
  await other.close();
  const cases: Array<[string, string | null, number, string]> = [
    ['missing', null, 401, 'missing'],
    ['malformed', 'abc', 401, 'malformed'],
    ['expired', await api.edge.issueToken({ channel: 'graph', ttlSeconds: -100 }), 401, 'expired'],
    ['forged', forged, 403, 'forged'],
    [
      'wrong tenant',
      await api.edge.issueToken({ channel: 'graph', tenantId: 'x' }),
      403,
      'wrong-tenant',
    ],
  ];
  for (const [name, tok, status, reason] of cases) {
    const r = await call('GET', PROFILES, { token: tok });
    t.equal(r.status, status, name);
    t.equal(r.json.error.code, status === 401 ? 'InvalidAuthenticationToken' : 'Forbidden', name);
    t.equal(r.headers['x-gsa-auth-reason'], reason, name);
    t.match(String(r.headers['www-authenticate']), /^Bearer /, name);
  }
  for (const ch of ['internet', 'm365', 'private', 'graph'] as const) {
    const tok = await api.edge.issueToken({ channel: ch });
    t.equal((await call('GET', PROFILES, { token: tok })).status, 200, `a ${ch} token is accepted`);
  }
});

t.test('GET forwardingProfiles: $expand, ETag, 304', async (t) => {
  const plain = await call('GET', PROFILES);
  t.equal(plain.status, 200);
  t.equal(plain.json.value.length, 3);
  t.notOk('policies' in plain.json.value[0], 'no $expand: no policies');
  const links = await call('GET', `${PROFILES}?$expand=policies`);
  t.ok(links.json.value[0].policies.length > 0);
  t.notOk('policy' in links.json.value[0].policies[0]);
  const full = await call('GET', EXPAND);
  t.equal(full.status, 200);
  const priv = full.json.value.find((p: Prof) => p.trafficForwardingType === 'private');
  t.ok(priv.policies[0].policy.policyRules.length > 0, 'links carry their policy and its rules');
  const etag = full.headers.etag as string;
  t.match(etag, /^W\/"[A-Za-z0-9_-]+"$/);
  t.equal(plain.headers.etag, etag, 'the ETag is the document’s');
  const again = await call('GET', EXPAND, { headers: { 'if-none-match': etag } });
  t.equal(again.status, 304);
  t.equal(again.text, '');
  t.equal(again.headers.etag, etag);
  t.equal((await call('GET', EXPAND, { headers: { 'if-none-match': 'W/"other"' } })).status, 200);
  t.equal(
    (await call('GET', EXPAND, { headers: { 'if-none-match': `"x", ${etag}` } })).status,
    304,
  );
  const one = await call('GET', `${PROFILES}/${priv.id}`);
  t.equal(one.json.id, priv.id);
  t.equal((await call('GET', `${PROFILES}/nope`)).status, 404);
  const badExpand = await call('GET', `${PROFILES}?$expand=everything`);
  t.equal(badExpand.status, 400);
  t.equal(badExpand.json.error.code, 'BadRequest');
  t.equal((await call('GET', `${PROFILES}?$select=id`)).status, 400, 'unsupported query option');
  t.equal((await call('POST', PROFILES, { body: '{}' })).status, 405);
  t.equal((await call('POST', PROFILES, { body: '{}' })).headers.allow, 'GET, HEAD');
});

t.test('PATCH a policy link: 204, ETag bumps, egress follows, errors', async (t) => {
  const full = await call('GET', EXPAND);
  const etag0 = full.headers.etag as string;
  const priv = full.json.value.find((p: Prof) => p.trafficForwardingType === 'private');
  const rdp = priv.policies.find((l: Link) => l.policy.name === 'Contoso RDP');
  t.ok(rdp, 'default tenant has the RDP app');
  t.ok(
    api.edge.tenant.privateApps.match('tcp', null, '127.77.0.5', 3389),
    'RDP segment allowed before',
  );
  const path = `${PROFILES}/${priv.id}/policies/${rdp.id}`;
  const json = { 'content-type': 'application/json' };
  const r = await call('PATCH', path, { headers: json, body: '{"state":"disabled"}' });
  t.equal(r.status, 204);
  const etag1 = r.headers.etag as string;
  t.not(etag1, etag0, 'ETag bumped');
  t.equal(
    (await call('GET', EXPAND, { headers: { 'if-none-match': etag0 } })).status,
    200,
    'old ETag is stale',
  );
  const after = await call('GET', EXPAND);
  const link = after.json.value
    .find((p: Prof) => p.id === priv.id)
    .policies.find((l: Link) => l.id === rdp.id);
  t.equal(link.state, 'disabled');
  t.not(link.version, rdp.version, 'link version bumped');
  t.equal(
    api.edge.tenant.privateApps.match('tcp', null, '127.77.0.5', 3389),
    null,
    'egress refuses the disabled app',
  );
  // Errors.
  t.equal((await call('PATCH', path, { headers: json, body: '{"state":"paused"}' })).status, 400);
  t.equal((await call('PATCH', path, { headers: json, body: 'nope' })).status, 400);
  t.equal((await call('PATCH', path, { headers: json, body: '{}' })).status, 400);
  t.equal(
    (
      await call('PATCH', `${PROFILES}/${priv.id}/policies/nope`, {
        headers: json,
        body: '{"state":"enabled"}',
      })
    ).status,
    404,
  );
  t.equal(
    (
      await call('PATCH', `${PROFILES}/nope/policies/${rdp.id}`, {
        headers: json,
        body: '{"state":"enabled"}',
      })
    ).status,
    404,
  );
  t.equal((await call('GET', path)).status, 405);
  const pre = await call('PATCH', path, {
    headers: { ...json, 'if-match': etag0 },
    body: '{"state":"enabled"}',
  });
  t.equal(pre.status, 412, 'If-Match with a stale ETag');
  // Re-enable: allowed again.
  t.equal(
    (
      await call('PATCH', path, {
        headers: { ...json, 'if-match': etag1 },
        body: '{"state":"enabled"}',
      })
    ).status,
    204,
  );
  t.ok(api.edge.tenant.privateApps.match('tcp', null, '127.77.0.5', 3389));
});

t.test('policyRules only when asked for, as on Graph', async (t) => {
  const q = (e: string): string => `?$expand=${encodeURIComponent(e)}`;
  // The list: $expand=policies($expand=policy) gives each link its policy, no rules.
  const pols = await call('GET', `${PROFILES}${q('policies($expand=policy)')}`);
  t.equal(pols.status, 200);
  t.match(pols.json['@odata.context'], /forwardingProfiles\(policies\(policy\(\)\)\)$/);
  const links: Link[] = pols.json.value.flatMap((p: Prof) => p.policies);
  t.ok(links.length > 3);
  t.ok(
    links.every((l) => l.policy.id && l.policy.name && !('policyRules' in l.policy)),
    'no link policy carries policyRules',
  );
  // Nested $expand: the rules too, each policy's equal to GET .../policyRules.
  const full = await call('GET', EXPAND);
  t.equal(full.status, 200);
  t.match(
    full.json['@odata.context'],
    /forwardingProfiles\(policies\(policy\(policyRules\(\)\)\)\)$/,
  );
  const fullLinks: Link[] = full.json.value.flatMap((p: Prof) => p.policies);
  t.ok(fullLinks.every((l) => Array.isArray(l.policy.policyRules)));
  t.ok(fullLinks.some((l) => l.policy.policyRules.length > 0));
  t.equal(full.headers.etag, pols.headers.etag, 'one ETag for every $expand');
  const pol = fullLinks.find((l) => l.policy.policyRules.length > 0)!.policy;
  // One profile takes the same $expand.
  const priv = full.json.value.find((p: Prof) => p.trafficForwardingType === 'private');
  const oneProf = await call('GET', `${PROFILES}/${priv.id}${q('policies($expand=policy)')}`);
  t.equal(oneProf.status, 200);
  t.notOk('policyRules' in oneProf.json.policies[0].policy);
  t.match(
    oneProf.json['@odata.context'],
    /forwardingProfiles\(policies\(policy\(\)\)\)\/\$entity$/,
  );
  const oneProfAll = await call('GET', `${PROFILES}/${priv.id}${q(EXPAND_ALL)}`);
  t.same(oneProfAll.json.policies, priv.policies);
  // GET forwardingPolicies/{id}: no rules; with $expand=policyRules, the rules.
  const one = await call('GET', `${POLICIES}/${pol.id}`);
  t.equal(one.status, 200);
  t.equal(one.json.name, pol.name);
  t.notOk('policyRules' in one.json, 'GET forwardingPolicies/{id}: no policyRules');
  t.match(one.json['@odata.context'], /#networkAccess\/forwardingPolicies\/\$entity$/);
  const withRules = await call('GET', `${POLICIES}/${pol.id}${q('policyRules')}`);
  t.equal(withRules.status, 200);
  t.same(withRules.json.policyRules, pol.policyRules, '$expand=policyRules: the rules');
  t.match(withRules.json['@odata.context'], /forwardingPolicies\(policyRules\(\)\)\/\$entity$/);
  t.same((await call('GET', `${POLICIES}/${pol.id}${q('*')}`)).json.policyRules, pol.policyRules);
  // GET .../policyRules: always the rules.
  const rules = await call('GET', `${POLICIES}/${pol.id}/policyRules`);
  t.same(rules.json.value, pol.policyRules);
  // Unsupported $expand: Graph's 400 shape, on every route that takes one.
  for (const path of [
    `${PROFILES}${q('policies($expand=policyRules)')}`,
    `${PROFILES}${q('policies($expand=policy($select=id))')}`,
    `${PROFILES}/${priv.id}${q('policy')}`,
    `${POLICIES}/${pol.id}${q('policies')}`,
    `${POLICIES}/${pol.id}${q('policyRules($expand=x)')}`,
    `${POLICIES}/${pol.id}/policyRules${q('policyRules')}`,
    `${POLICIES}/nope${q('nothing')}`,
  ]) {
    const r = await call('GET', path);
    t.equal(r.status, 400, path);
    t.equal(r.json.error.code, 'BadRequest');
    t.match(r.json.error.message, /\$expand/);
    t.type(r.json.error.innerError['request-id'], 'string');
  }
  // A bad $expand is a 400 even when the ETag matches (not a 304).
  const stale = await call('GET', `${PROFILES}${q('policy')}`, {
    headers: { 'if-none-match': full.headers.etag as string },
  });
  t.equal(stale.status, 400);
  t.equal((await call('GET', `${POLICIES}/nope${q('policyRules')}`)).status, 404);
});

t.test('GET forwardingPolicies/{id}/policyRules', async (t) => {
  const full = await call('GET', EXPAND);
  const pol = full.json.value[0].policies[0].policy;
  const r = await call('GET', `/beta/networkAccess/forwardingPolicies/${pol.id}/policyRules`);
  t.equal(r.status, 200);
  t.same(
    r.json.value.map((x: { id: string }) => x.id),
    pol.policyRules.map((x: { id: string }) => x.id),
  );
  const one = await call('GET', `/beta/networkAccess/forwardingPolicies/${pol.id}`);
  t.equal(one.json.name, pol.name);
  const nf = await call('GET', '/beta/networkAccess/forwardingPolicies/nope/policyRules');
  t.equal(nf.status, 404);
  t.equal(nf.json.error.code, 'ResourceNotFound');
  t.type(nf.json.error.innerError['request-id'], 'string');
  t.equal((await call('GET', '/beta/networkAccess/nothingHere')).status, 404);
  t.equal((await call('GET', '/nowhere', { token: null })).status, 404);
});

function rec(i: number, over: Partial<NetworkAccessTraffic>): NetworkAccessTraffic {
  const r: NetworkAccessTraffic = {
    transactionId: `tx-${i}`,
    connectionId: `c-${i}`,
    sessionId: 's',
    createdDateTime: '2026-01-01T00:00:00.000Z',
    endDateTime: '2026-01-01T00:00:01.000Z',
    tenantId: api.edge.tenantId,
    userId: 'u',
    userPrincipalName: 'u@contoso.test',
    deviceId: 'd',
    trafficType: 'internet',
    sourceIp: '127.0.0.1',
    sourcePort: 1234,
    destinationIp: '127.0.0.1',
    destinationPort: 443,
    destinationFQDN: 'x.test',
    destinationUrl: null,
    transportProtocol: 'tcp',
    sentBytes: 1,
    receivedBytes: 2,
    action: 'allow',
    policyId: null,
    policyName: null,
    policyRuleId: null,
    policyRuleName: null,
    agentVersion: 'v',
    initiatingProcessName: null,
    operationStatus: 'success',
    failureReason: null,
    privateAccessDetails: null,
    ...over,
  };
  r.endDateTime = r.createdDateTime;
  if (r.trafficType === 'private') {
    r.privateAccessDetails = {
      connectorId: 'c1',
      connectorName: 'c',
      appSegmentId: null,
      resolvedDestination: null,
      accessDeniedReason: 'no application segment',
    };
  }
  return r;
}

t.test('GET logs/traffic with $filter and $top', async (t) => {
  api.edge.logs.append(
    rec(1, {
      trafficType: 'internet',
      action: 'block',
      createdDateTime: '2026-03-01T00:00:00.000Z',
    }),
  );
  api.edge.logs.append(
    rec(2, {
      trafficType: 'internet',
      action: 'allow',
      createdDateTime: '2026-03-02T00:00:00.000Z',
    }),
  );
  api.edge.logs.append(
    rec(3, {
      trafficType: 'private',
      action: 'block',
      createdDateTime: '2026-03-03T00:00:00.000Z',
    }),
  );
  api.edge.logs.append(
    rec(4, {
      trafficType: 'microsoft365',
      action: 'allow',
      createdDateTime: '2026-03-04T00:00:00.000Z',
    }),
  );
  const q = async (qs: string): Promise<string[]> => {
    const r = await call('GET', `/beta/networkAccess/logs/traffic${qs}`);
    t.equal(r.status, 200, qs);
    for (const x of r.json.value) t.same(shapeProblems(x), [], 'shape');
    return r.json.value.map((x: NetworkAccessTraffic) => x.transactionId);
  };
  const f = (s: string): string => `?$filter=${encodeURIComponent(s)}`;
  t.same(await q(''), ['tx-4', 'tx-3', 'tx-2', 'tx-1'], 'newest first');
  t.same(await q(f("trafficType eq 'internet'")), ['tx-2', 'tx-1']);
  t.same(await q(f("action eq 'block'")), ['tx-3', 'tx-1']);
  t.same(await q(f("trafficType eq 'internet' and action eq 'block'")), ['tx-1']);
  t.same(await q(f('createdDateTime ge 2026-03-02T00:00:00Z')), ['tx-4', 'tx-3', 'tx-2']);
  t.same(await q(`${f("action eq 'allow' and createdDateTime ge 2026-03-02T00:00:00Z")}&$top=1`), [
    'tx-4',
  ]);
  t.same(await q('?$top=2'), ['tx-4', 'tx-3']);
  for (const bad of [
    f("trafficType eq 'internet' or action eq 'block'"),
    f('nonsense'),
    '?$top=0',
    '?$top=abc',
    '?$top=99999999',
    '?$orderby=x',
    `${f("action eq 'block'")}&$filter=x`,
  ]) {
    const r = await call('GET', `/beta/networkAccess/logs/traffic${bad}`);
    t.equal(r.status, 400, bad);
    t.equal(r.json.error.code, 'BadRequest', bad);
  }
  t.equal((await call('GET', '/beta/networkAccess/logs/traffic', { token: null })).status, 401);
});

t.test('fuzz: random $filter, $top and paths give clean 2xx/4xx, never a crash', async (t) => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc
          .string({ maxLength: 120 })
          .map((s) => `/beta/networkAccess/logs/traffic?$filter=${encodeURIComponent(s)}`),
        fc
          .string({ maxLength: 20 })
          .map((s) => `/beta/networkAccess/logs/traffic?$top=${encodeURIComponent(s)}`),
        fc.string({ maxLength: 60 }).map((s) => `/beta/networkAccess/${encodeURIComponent(s)}`),
        fc.string({ maxLength: 60 }).map((s) => `${PROFILES}/${encodeURIComponent(s)}/policies/x`),
      ),
      async (path) => {
        n++;
        const r = await call('GET', path);
        if (r.status >= 500) return false;
        if (r.status >= 400) return typeof r.json?.error?.code === 'string';
        return r.status === 200;
      },
    ),
    { numRuns: 250 },
  );
  t.equal(n, 250);
  t.equal((await call('GET', '/health', { token: null })).status, 200, 'still healthy');
});

t.test('startEdge rejects a port in use and bad options', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  await t.rejects(
    startEdge({
      stateDir: tmp.dir,
      tls: false,
      port: api.edge.port,
      logFile: join(tmp.dir, 'l.jsonl'),
    }),
    { code: 'GSA_ERR_LISTEN', errno: 'EADDRINUSE', what: 'edge', port: api.edge.port },
  );
  await t.rejects(startEdge({ stateDir: '' }), { code: 'GSA_ERR_CONFIG' });
  await t.rejects(startEdge({ stateDir: tmp.dir, hostsMap: { 'a b': 'x' } }), {
    code: 'GSA_ERR_CONFIG',
  });
  await t.rejects(startEdge({ stateDir: tmp.dir, tenantDoc: { nope: 1 } }), {
    code: 'GSA_ERR_CONFIG',
  });
  await t.rejects(startEdge({ stateDir: tmp.dir, tenantId: 'a.b' }), { code: 'GSA_ERR_CONFIG' });
  await t.rejects(startEdge({ stateDir: tmp.dir, filtering: { blockedFqdns: ['*'] } }), {
    code: 'GSA_ERR_CONFIG',
  });
});

t.test('fuzz: random PATCH bodies give 204 or a Graph 400, never a crash', async (t) => {
  const full = await call('GET', EXPAND);
  const prof = full.json.value[0] as Prof;
  const path = `${PROFILES}/${prof.id}/policies/${prof.policies[0]!.id}`;
  const bodies = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.json({ maxDepth: 3 }),
    fc
      .record({
        state: fc.oneof(fc.constantFrom('enabled', 'disabled', 'Enabled', ''), fc.anything()),
      })
      .map((o) => {
        try {
          return JSON.stringify(o);
        } catch {
          return '{}';
        }
      }),
  );
  await fc.assert(
    fc.asyncProperty(bodies, async (body) => {
      const r = await call('PATCH', path, {
        headers: { 'content-type': 'application/json' },
        body,
      });
      if (r.status === 204) return true;
      return r.status === 400 && r.json?.error?.code === 'BadRequest';
    }),
    { numRuns: 150 },
  );
  const reset = await call('PATCH', path, {
    headers: { 'content-type': 'application/json' },
    body: '{"state":"enabled"}',
  });
  t.equal(reset.status, 204);
  t.equal((await call('GET', '/health', { token: null })).status, 200, 'still healthy');
});

const LIST_TENANT = '3c1f6b2e-8d4a-4f0e-9b7c-5a2d1e0f9c84';
const ZERO_TENANT = '00000000-0000-0000-0000-000000000000';

t.test('a Graph list document keeps its tenant id and name across PATCHes', async (t) => {
  // The document the edge serves is a Graph list: it names no tenant.
  const list = (await call('GET', EXPAND)).json as { value: Prof[] };
  const prof = list.value.find((p) => p.trafficForwardingType === 'internet')!;
  const link = prof.policies[0]!;

  const store = new TenantStore(list, { tenantId: LIST_TENANT, name: 'Fabrikam' });
  t.equal(store.tenantId, LIST_TENANT);
  t.ok(store.setLinkState(prof.id, link.id, 'disabled'));
  t.equal(store.tenantId, LIST_TENANT, 'not the all-zero id after a PATCH');
  t.not(store.tenantId, ZERO_TENANT);
  t.equal(store.name, 'Fabrikam');
  t.equal(store.spec.tenantId, LIST_TENANT);

  // The same through a running edge: the control API authorizes against the store's tenant.
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const e = await startEdge({
    stateDir: join(tmp.dir, 'state'),
    tls: false,
    tenantDoc: list,
    tenantId: LIST_TENANT,
    tenantName: 'Fabrikam',
  });
  t.teardown(() => e.close({ graceMs: 0 }));
  t.equal(e.tenantId, LIST_TENANT);
  const tok = await e.issueToken({ channel: 'graph', userId: 'admin' });
  const get = (path: string) =>
    request(`${e.url}${path}`, { headers: { authorization: `Bearer ${tok}` }, dispatcher });
  const patch = await request(`${e.url}${PROFILES}/${prof.id}/policies/${link.id}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
    body: '{"state":"disabled"}',
    dispatcher,
  });
  await patch.body.dump();
  t.equal(patch.statusCode, 204);
  t.equal(e.tenant.tenantId, LIST_TENANT, 'the edge keeps its tenant id after a PATCH');
  t.equal(e.tenant.name, 'Fabrikam');
  const after = await get(EXPAND);
  await after.body.dump();
  t.equal(after.statusCode, 200, 'a token of the tenant is still accepted after the PATCH');
  const health = await get('/health');
  t.equal(((await health.body.json()) as { tenantId: string }).tenantId, LIST_TENANT);
});
