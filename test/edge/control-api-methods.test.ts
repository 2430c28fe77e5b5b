/**
 * The control API's methods and paths (RFC 9110): HEAD wherever GET (same status and
 * headers, no body; auth checked first), 405 with `Allow: GET, HEAD`, and an id that is not
 * valid percent-encoding is 400 BadRequest on GET as on PATCH. The edge listens on
 * 127.0.0.1 (plain HTTP) and is closed by the test.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { tempDir } from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: response JSON of many shapes
type Json = any;
interface Reply {
  status: number;
  headers: Record<string, unknown>;
  json: Json;
  text: string;
}

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

let edge: Edge;
let tmpRemove: () => Promise<void>;
let token: string;

t.before(async () => {
  const tmp = await tempDir();
  tmpRemove = tmp.remove;
  edge = await startEdge({ stateDir: join(tmp.dir, 'state'), tls: false, persistKey: false });
  token = await edge.issueToken({ channel: 'graph', userId: 'admin' });
});
t.teardown(async () => {
  await edge.close({ graceMs: 0 });
  await tmpRemove();
});

async function call(
  method: string,
  path: string,
  o: { token?: string | null; body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const tok = o.token === undefined ? token : o.token;
  if (tok !== null) headers.authorization = `Bearer ${tok}`;
  const r = await request(`${edge.url}${path}`, {
    method: method as 'GET',
    headers,
    dispatcher,
    ...(o.body !== undefined ? { body: o.body } : {}),
  });
  const text = await r.body.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: r.statusCode, headers: r.headers, json, text };
}

/**
 * HEAD over a raw socket (`Connection: close`): everything the server wrote, split at the
 * end of the head, so a body sent after a HEAD's head would show.
 */
async function rawHead(
  path: string,
  tok: string | null = token,
): Promise<{ status: number; head: string; after: string }> {
  const u = new URL(edge.url);
  const sock = connect(Number(u.port), '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise<void>((resolve, reject) => {
    sock.on('end', () => resolve());
    sock.on('error', reject);
  });
  const auth = tok === null ? '' : `authorization: Bearer ${tok}\r\n`;
  sock.write(`HEAD ${path} HTTP/1.1\r\nhost: ${u.host}\r\n${auth}connection: close\r\n\r\n`);
  const timer = setTimeout(() => sock.destroy(new Error('raw HEAD timed out')), 5000);
  try {
    await done;
  } finally {
    clearTimeout(timer);
    sock.destroy();
  }
  const all = Buffer.concat(chunks).toString('latin1');
  const end = all.indexOf('\r\n\r\n');
  const head = end === -1 ? all : all.slice(0, end);
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
    head,
    after: end === -1 ? '' : all.slice(end + 4),
  };
}

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
    [PROFILES, token],
    [`${PROFILES}/${profile}`, token],
    [`${NA}/forwardingPolicies/${policy}`, token],
    [`${NA}/forwardingPolicies/${policy}/policyRules`, token],
    [`${NA}/logs/traffic`, token],
    ['/beta/organization', token],
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
