/**
 * The control API's methods and paths (RFC 9110): HEAD wherever GET (same status and
 * headers, no body; auth checked first), 405 with `Allow: GET, HEAD`, and an id that is not
 * valid percent-encoding is 400 BadRequest on GET as on PATCH. The edge listens on
 * 127.0.0.1 (plain HTTP) and is closed by the test.
 */
import t from 'tap';
import { startEdge } from '../../src/edge/server.js';
import { type Json, rawHead as rawHeadAt } from '../util/http-calls.js';
import { controlApiFixture } from './control-api-fixture.js';
import { tempDir } from './helpers.js';

const api = controlApiFixture({ persistKey: false });
const call = api.call.bind(api);

/** HEAD over a raw socket, with the token unless `tok` is null. */
const rawHead = (path: string, tok: string | null = api.token) =>
  rawHeadAt(api.edge.url, path, tok === null ? '' : `authorization: Bearer ${tok}\r\n`);

/** The headers a HEAD must share with its GET (dates and ids aside). */
const SAME = [
  'content-type',
  'content-length',
  'odata-version',
  'etag',
  'cache-control',
  'allow',
  'www-authenticate',
  'x-gsa-auth-reason',
];

function pick(h: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(SAME.filter((k) => h[k] !== undefined).map((k) => [k, h[k]]));
}

const NA = '/beta/networkAccess';
const PROFILES = `${NA}/forwardingProfiles`;
const EXPAND = `${PROFILES}?$expand=${encodeURIComponent('policies($expand=policy)')}`;
const BAD = '%E0%A4%A';

async function ids(): Promise<{ profile: string; policy: string; link: string }> {
  const full = await call('GET', EXPAND);
  const p = full.json.value.find((x: Json) => x.policies.length > 0);
  return { profile: p.id, policy: p.policies[0].policy.id, link: p.policies[0].id };
}

t.test('HEAD answers every GET resource: same status and headers, no body', async (t) => {
  const { profile, policy } = await ids();
  const paths = [
    PROFILES,
    `${PROFILES}/`,
    EXPAND,
    `${PROFILES}/${profile}`,
    `${PROFILES}/${profile}?$expand=policies`,
    `${NA}/forwardingPolicies/${policy}`,
    `${NA}/forwardingPolicies/${policy}?$expand=policyRules`,
    `${NA}/forwardingPolicies/${policy}/policyRules`,
    `${NA}/logs/traffic`,
    `${NA}/logs/traffic?$top=5`,
    '/beta/organization',
    // Errors past auth: the same answer as GET too.
    `${PROFILES}/nope`,
    `${NA}/forwardingPolicies/nope/policyRules`,
    `${PROFILES}?$select=id`,
    `${NA}/logs/traffic?$top=0`,
    `${NA}/nothingHere`,
  ];
  for (const path of paths) {
    const get = await call('GET', path);
    const head = await call('HEAD', path);
    t.equal(head.status, get.status, `HEAD ${path}: ${get.status}`);
    t.same(pick(head.headers), pick(get.headers), `HEAD ${path}: the GET's headers`);
    t.equal(head.text, '', `HEAD ${path}: no body`);
  }
  const ok = await call('HEAD', EXPAND);
  t.equal(ok.status, 200);
  t.match(ok.headers.etag, /^W\/"[A-Za-z0-9_-]+"$/, 'the ETag');
  t.ok(Number(ok.headers['content-length']) > 0, 'the GET body length');

  // On the wire: the head ends the response (no body bytes follow).
  const raw = await rawHead(EXPAND);
  t.equal(raw.status, 200);
  t.match(raw.head, /\r\ncontent-length: [1-9]\d*\r\n/i);
  t.match(raw.head, /\r\netag: W\/"/i);
  t.equal(raw.after, '', 'nothing after the head');
  t.equal((await rawHead('/health', null)).after, '', '/health: nothing after the head');
});

t.test('HEAD with If-None-Match: 304 as GET', async (t) => {
  const etag = (await call('HEAD', PROFILES)).headers.etag as string;
  t.equal(etag, (await call('GET', PROFILES)).headers.etag, 'the ETag of GET');
  const again = await call('HEAD', EXPAND, { headers: { 'if-none-match': etag } });
  t.equal(again.status, 304);
  t.equal(again.headers.etag, etag);
  t.equal(again.text, '');
  const other = await call('HEAD', EXPAND, { headers: { 'if-none-match': 'W/"other"' } });
  t.equal(other.status, 200);
});

t.test('HEAD checks the token first, as GET does', async (t) => {
  const otherDir = await tempDir();
  t.teardown(otherDir.remove);
  const other = await startEdge({ stateDir: otherDir.dir, tls: false, persistKey: false });
  const forged = await other.issueToken({ channel: 'graph' });
  await other.close({ graceMs: 0 });
  const { profile, policy } = await ids();
  const paths = [
    PROFILES,
    `${PROFILES}/${profile}`,
    `${PROFILES}/nope`,
    `${PROFILES}/${BAD}`,
    `${NA}/forwardingPolicies/${policy}/policyRules`,
    `${NA}/forwardingPolicies/${BAD}`,
    `${NA}/logs/traffic`,
    `${NA}/nothingHere`,
    '/beta/organization',
  ];
  for (const path of paths) {
    for (const [tok, status, reason] of [
      [null, 401, 'missing'],
      ['abc', 401, 'malformed'],
      [forged, 403, 'forged'],
    ] as const) {
      const get = await call('GET', path, { token: tok });
      const head = await call('HEAD', path, { token: tok });
      t.equal(get.status, status, `GET ${path} ${reason}`);
      t.equal(head.status, status, `HEAD ${path} ${reason}`);
      t.equal(head.headers['x-gsa-auth-reason'], reason);
      t.same(pick(head.headers), pick(get.headers), `HEAD ${path} ${reason}: the GET's headers`);
      t.equal(head.text, '');
    }
    // With the token, HEAD is allowed (not 405) wherever GET is.
    const get = await call('GET', path);
    t.equal((await call('HEAD', path)).status, get.status, `HEAD ${path} with a token`);
  }
  const raw = await rawHead(PROFILES, null);
  t.equal(raw.status, 401);
  t.match(raw.head, /\r\nwww-authenticate: Bearer /i);
  t.equal(raw.after, '');
});

t.test('405 names GET and HEAD on the read-only resources', async (t) => {
  const { profile, policy, link } = await ids();
  const readOnly: Array<[string, string | null]> = [
    [PROFILES, api.token],
    [`${PROFILES}/${profile}`, api.token],
    [`${NA}/forwardingPolicies/${policy}`, api.token],
    [`${NA}/forwardingPolicies/${policy}/policyRules`, api.token],
    [`${NA}/logs/traffic`, api.token],
    ['/beta/organization', api.token],
    ['/health', null],
  ];
  for (const [path, tok] of readOnly) {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await call(method, path, { token: tok, body: '{}' });
      t.equal(r.status, 405, `${method} ${path}`);
      t.equal(r.headers.allow, 'GET, HEAD', `${method} ${path}: Allow`);
      t.equal(r.json.error.code, 'MethodNotAllowed');
    }
  }
  // The policy link is PATCH only: GET and HEAD are 405 there, saying so.
  for (const method of ['GET', 'HEAD', 'POST']) {
    const r = await call(method, `${PROFILES}/${profile}/policies/${link}`);
    t.equal(r.status, 405, `${method} on a link`);
    t.equal(r.headers.allow, 'PATCH');
  }
});

t.test('a malformed percent-escape in an id is 400 BadRequest on GET, as on PATCH', async (t) => {
  const { profile } = await ids();
  const patch = await call('PATCH', `${PROFILES}/${BAD}/policies/x`, {
    headers: { 'content-type': 'application/json' },
    body: '{"state":"enabled"}',
  });
  t.equal(patch.status, 400);
  t.equal(patch.json.error.code, 'BadRequest');
  const patch2 = await call('PATCH', `${PROFILES}/${profile}/policies/${BAD}`, {
    headers: { 'content-type': 'application/json' },
    body: '{"state":"enabled"}',
  });
  t.equal(patch2.status, 400);

  for (const path of [
    `${PROFILES}/${BAD}`,
    `${PROFILES}/${BAD}?$expand=policies`,
    `${PROFILES}/%ZZ`,
    `${NA}/forwardingPolicies/${BAD}`,
    `${NA}/forwardingPolicies/${BAD}/policyRules`,
    `${NA}/forwardingPolicies/%`,
  ]) {
    const r = await call('GET', path);
    t.equal(r.status, 400, `GET ${path}`);
    t.match(r.headers['content-type'], /^application\/json/);
    t.equal(r.json.error.code, 'BadRequest', `GET ${path}: code`);
    t.equal(
      r.json.error.message,
      patch.json.error.message,
      `GET ${path}: the PATCH route's message`,
    );
    t.notMatch(r.json.error.message, /null/);
    t.match(r.json.error.innerError, { date: String, 'request-id': String });
    t.same(
      Object.keys(r.json.error).sort(),
      Object.keys(patch.json.error).sort(),
      'the PATCH route’s error shape',
    );
    const head = await call('HEAD', path);
    t.equal(head.status, 400, `HEAD ${path}`);
    t.equal(head.text, '');
  }
  // Well-formed escapes still decode: an unknown id is 404, naming the decoded id.
  const nf = await call('GET', `${PROFILES}/no%20such`);
  t.equal(nf.status, 404);
  t.equal(nf.json.error.message, 'no forwarding profile no such');
  t.equal((await call('GET', `${PROFILES}/${encodeURIComponent(profile)}`)).status, 200);
});
