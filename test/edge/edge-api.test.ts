import t from 'tap';
import { Agent, request } from 'undici';
import { EdgeApi, type GraphList } from '../../src/client/edge-api.js';
import { startEdge } from '../../src/edge/server.js';
import { AuthError, EdgeHttpError, GsaError } from '../../src/errors.js';
import type { Prof } from './control-api-fixture.js';
import { delay, fileEdge, tempDir, until } from './helpers.js';

// TLS on: EdgeApi must trust the edge's CA.
const edge = await fileEdge(t);

function api(over: Partial<ConstructorParameters<typeof EdgeApi>[0]> = {}): EdgeApi {
  return new EdgeApi({
    url: edge.url,
    ca: edge.caPem,
    userId: 'alice',
    deviceId: 'dev-1',
    ...over,
  });
}

t.test('getToken: cached, single-flight, valid for the channel', async (t) => {
  const a = api();
  t.teardown(() => a.close());
  const [t1, t2] = await Promise.all([a.getToken('internet'), a.getToken('internet')]);
  t.equal(t1, t2);
  t.equal(a.tokenFetches, 1, 'concurrent calls share one request');
  t.equal(await a.getToken('internet'), t1, 'cached');
  t.equal(a.tokenFetches, 1);
  const p = await edge.issuer.verify(t1, { channel: 'internet', tenantId: edge.tenantId });
  t.equal(p.userId, 'alice');
  t.equal(p.deviceId, 'dev-1');
  const m = await a.getToken('m365');
  t.not(m, t1, 'one token per channel');
  t.equal(a.tokenFetches, 2);
  const info = a.tokenInfo('internet')!;
  t.ok(info.refreshAt < info.expiresAt);
  t.ok(
    Math.abs(info.expiresAt - info.refreshAt - 0.2 * 3600_000) < 2000,
    'refresh at 80% of the lifetime',
  );
});

t.test('getToken refreshes before expiry', async (t) => {
  // exp is in whole seconds: a 10 s token lives 9 to 10 s, refreshed after 1.8 to 2 s.
  const a = api({ tokenTtlSeconds: 10, refreshAt: 0.2 });
  t.teardown(() => a.close());
  t.equal(a.lastTokenObtainedAt(), null, 'no token yet');
  const first = await a.getToken('private');
  const issued = a.lastTokenObtainedAt();
  t.equal(issued, a.tokenInfo('private')!.obtainedAt);
  await delay(50);
  t.equal(await a.getToken('private'), first, 'still fresh');
  t.equal(a.lastTokenObtainedAt(), issued, 'a cached token keeps its issue time');
  await delay(2100); // 0.2 x 10 s = 2 s
  const second = await a.getToken('private');
  t.not(second, first, 'refreshed');
  t.equal(a.tokenFetches, 2);
  t.ok(Date.now() < a.tokenInfo('private')!.expiresAt);
  t.ok(a.lastTokenObtainedAt()! > issued! + 1500, 'a refreshed token has a new issue time');
});

t.test('a refused token request is an EdgeHttpError with the OAuth code', async (t) => {
  const a = api({ tenantId: 'not-this-edge' });
  t.teardown(() => a.close());
  const err = await a.getToken('internet').catch((e: unknown) => e);
  t.ok(err instanceof EdgeHttpError);
  t.ok(err instanceof GsaError, 'EdgeHttpError is a GsaError');
  t.equal((err as EdgeHttpError).status, 400);
  t.equal((err as EdgeHttpError).graphCode, 'invalid_tenant');
  t.equal((err as EdgeHttpError).code, 'GSA_ERR_EDGE_HTTP');
});

t.test('the CA is required: without it TLS fails', async (t) => {
  const a = api({ ca: null });
  t.teardown(() => a.close());
  await t.rejects(a.getToken('internet'));
});

t.test('pollProfiles: first doc, 304s while unchanged, onChange after a PATCH', async (t) => {
  const a = api();
  t.teardown(() => a.close());
  const changes: Array<{ doc: GraphList; etag: string | null }> = [];
  const errors: Error[] = [];
  const poll = a.pollProfiles({
    intervalMs: 20,
    onChange: (doc, etag) => {
      changes.push({ doc, etag });
    },
    onError: (e) => errors.push(e),
  });
  t.teardown(() => poll.stop());
  t.ok(await until(() => changes.length === 1, 3000), 'first document');
  const etag0 = changes[0]!.etag;
  t.match(etag0, /^W\//);
  t.equal(changes[0]!.doc.value.length, 3);
  // The default $expand brings the rules too (Graph inlines them only when expanded).
  const rulesIn = (profs: Array<{ policies: Array<{ policy: { policyRules?: unknown[] } }> }>) =>
    profs.flatMap((p) => p.policies.map((l) => l.policy.policyRules?.length ?? -1));
  t.same(
    rulesIn(changes[0]!.doc.value as Prof[]),
    rulesIn(
      edge.tenant.spec.profiles.map((p) => ({
        policies: p.policies.map((x) => ({ policy: { policyRules: x.rules } })),
      })),
    ),
    'every policy with all its rules, in one request',
  );
  // Several polls later, no new onChange (the edge answered 304).
  const direct = await a.getProfiles({ etag: etag0 });
  t.equal(direct.status, 304);
  await delay(120);
  t.equal(changes.length, 1, 'unchanged document: no onChange');
  // An admin disables a policy link.
  const profs = changes[0]!.doc.value as Prof[];
  const prof = profs.find((p) => p.trafficForwardingType === 'm365')!;
  const link = prof.policies[0]!;
  await a.setPolicyLinkState(prof.id, link.id, 'disabled');
  await poll.pollNow();
  t.equal(changes.length, 2, 'changed document delivered');
  t.not(changes[1]!.etag, etag0);
  const after = (changes[1]!.doc.value as Prof[]).find((p) => p.id === prof.id)!;
  t.equal(after.policies.find((l) => l.id === link.id)?.state, 'disabled');
  t.same(errors, []);
  poll.stop();
  const n = changes.length;
  await a.setPolicyLinkState(prof.id, link.id, 'enabled');
  await delay(80);
  t.equal(changes.length, n, 'stopped: no more polls');
  await t.rejects(a.setPolicyLinkState(prof.id, 'nope', 'enabled'), EdgeHttpError);
});

t.test('pollProfiles reports errors and keeps polling; logs and health', async (t) => {
  const a = api({ tenantId: 'wrong' });
  t.teardown(() => a.close());
  const errors: Error[] = [];
  const poll = a.pollProfiles({
    intervalMs: 10,
    onChange: () => {},
    onError: (e) => errors.push(e),
  });
  t.ok(await until(() => errors.length >= 3, 3000), 'errors reported, polling goes on');
  poll.stop();
  t.ok(errors[0] instanceof EdgeHttpError);
  // close() stops the pollers it started.
  const c = api();
  let polls = 0;
  c.pollProfiles({ intervalMs: 10, onChange: () => {}, onError: () => {} });
  c.pollProfiles({
    intervalMs: 10,
    onChange: () => {
      polls++;
    },
  });
  t.ok(await until(() => polls === 1, 3000));
  await c.close();
  const admin = api();
  const doc = (await admin.getProfiles()) as { doc: GraphList };
  const prof = (doc.doc.value as Prof[])[0]!;
  await admin.setPolicyLinkState(
    prof.id,
    prof.policies[0]!.id,
    prof.policies[0]!.state === 'enabled' ? 'disabled' : 'enabled',
  );
  await admin.setPolicyLinkState(
    prof.id,
    prof.policies[0]!.id,
    prof.policies[0]!.state as 'enabled' | 'disabled',
  );
  await admin.close();
  await delay(60);
  t.equal(polls, 1, 'no polls after close');
  const b = api();
  t.teardown(() => b.close());
  const h = await b.health();
  t.equal(h.status, 'ok');
  t.same(await b.trafficLogs({ filter: "action eq 'block'", top: 5 }), []);
  const bad = await b.trafficLogs({ filter: 'bad filter' }).catch((e: unknown) => e);
  t.ok(bad instanceof EdgeHttpError);
  t.equal((bad as EdgeHttpError).status, 400);
  t.equal((bad as EdgeHttpError).graphCode, 'BadRequest');
});

t.test('a token the edge refuses: retried once fresh, then AuthError', async (t) => {
  // A second edge with its own key: EdgeApi gets tokens from edge2 but calls edge's API.
  const tmp = await tempDir();
  const edge2 = await startEdge({ stateDir: tmp.dir, tls: false, persistKey: false, port: 0 });
  t.teardown(async () => {
    await edge2.close({ graceMs: 0 });
    await tmp.remove();
  });
  const a = new EdgeApi({ url: edge2.url, userId: 'u', deviceId: 'd' });
  t.teardown(() => a.close());
  const tok = await edge.issueToken({ channel: 'graph' });
  // Seed the cache with a token edge2 cannot verify: forged from its point of view.
  (a as unknown as { tokens: Map<string, unknown> }).tokens.set('graph', {
    token: tok,
    obtainedAt: Date.now(),
    expiresAt: Date.now() + 3600_000,
    refreshAt: Date.now() + 3600_000,
  });
  // 403 forged (an edge restarted with another key): retried once with a fresh token.
  const r = await a.getProfiles();
  t.equal(r.status, 200, 'passes with a fresh token');
  t.equal(a.tokenFetches, 1, 'one token fetched');
  // A token the edge refuses again: AuthError with the edge's reason.
  (a as unknown as { getToken: () => Promise<string> }).getToken = async () => tok;
  const err = await a.getProfiles().catch((e: unknown) => e);
  t.ok(err instanceof AuthError);
  t.equal((err as AuthError).reason, 'forged');
});

t.test('getOrganization: the tenant the edge serves (Graph GET /organization)', async (t) => {
  const a = api();
  t.teardown(() => a.close());
  const org = await a.getOrganization();
  t.same(org, { id: edge.tenantId, displayName: edge.tenant.name });
  t.equal(org.displayName, 'Contoso (gsa-emu default tenant)');
  const agent = new Agent({ connect: { ca: edge.caPem! } });
  t.teardown(() => agent.close());
  const noToken = await request(`${edge.url}/beta/organization`, { dispatcher: agent });
  await noToken.body.dump();
  t.equal(noToken.statusCode, 401, 'needs a token like every Graph route');
});
