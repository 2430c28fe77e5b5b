/**
 * The admin API obeys only whoever can read the run's state file: every request needs
 * `Authorization: Bearer <token>` (a random token per run), else 401. Origin / Host checks
 * stop browsers, not the other accounts of the same machine, which can all connect to
 * 127.0.0.1 and find the port (`ss -ltn`). POST /shutdown (gsa-emu stop) is authenticated
 * too. `token: null` turns the credential off (tests only).
 *
 * The edge and the clients listen on 127.0.0.1 and are closed by the test.
 */
import t from 'tap';
import { Agent } from 'undici';
import { bearerMatches, newAdminToken, startAdminApi } from '../../src/client/admin-api.js';
import type { RunningClient } from '../../src/client/client.js';
import { httpCall, rawHead } from '../util/http-calls.js';
import { adminWorld } from './helpers.js';

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

let client: RunningClient;
let base: string;
let token: string;

t.before(async () => {
  ({ client, base } = await adminWorld(t, {}, 'gsa-admin-auth-'));
  token = client.admin!.token!;
});

const bearer = (tok: string) => ({ authorization: `Bearer ${tok}` });

t.test('a client gets a random token of its own by default', async (t) => {
  t.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  t.not(newAdminToken(), newAdminToken(), 'a new one each time');
});

t.test('POST /toggle with nothing but the port is refused', async (t) => {
  const before = client.status().channels.find((c) => c.channel === 'internet');
  const r = await httpCall(`${base}/toggle`, 'POST', {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel: 'internet', on: false }),
    dispatcher,
  });
  t.equal(r.status, 401, 'no credential: 401');
  const after = client.status().channels.find((c) => c.channel === 'internet');
  t.same(after, before, "the owner's internet channel is unchanged");
});

t.test('GET /flows with nothing but the port is refused', async (t) => {
  const r = await httpCall(`${base}/flows`, 'GET', { dispatcher });
  t.equal(r.status, 401, 'no credential: 401');
});

t.test('every endpoint wants the token; the right one is let in', async (t) => {
  for (const path of ['/', '/status', '/flows', '/profile', '/health', '/metrics', '/nosuch']) {
    const none = await httpCall(`${base}${path}`, 'GET', { dispatcher });
    t.equal(none.status, 401, `GET ${path} without a token`);
    t.equal(none.json?.error, 'unauthorized', `GET ${path}: a JSON error`);
    t.match(none.json?.message, /Authorization: Bearer <token>.*client\.json/);
    t.equal(none.headers['www-authenticate'], 'Bearer realm="gsa-emu admin API"');
    t.ok(none.headers['x-gsa-emu'], 'still says it is the admin API');
    for (const headers of [
      bearer(newAdminToken()),
      bearer(`${token}x`),
      bearer(token.slice(1)),
      { authorization: token },
      { authorization: `Basic ${token}` },
      { authorization: `Bearer ${token} extra` },
    ]) {
      const wrong = await httpCall(`${base}${path}`, 'GET', { headers, dispatcher });
      t.equal(wrong.status, 401, `GET ${path} with ${JSON.stringify(headers).slice(0, 30)}...`);
    }
    const ok = await httpCall(`${base}${path}`, 'GET', { headers: bearer(token), dispatcher });
    // /health: 503 while a check fails (this test's client is not Connected), still let in.
    const want = path === '/nosuch' ? [404] : path === '/health' ? [200, 503] : [200];
    t.ok(want.includes(ok.status), `GET ${path} with the token (${ok.status})`);
  }
  const lower = await httpCall(`${base}/status`, 'GET', {
    headers: { authorization: `bearer ${token}` },
    dispatcher,
  });
  t.equal(lower.status, 200, 'the scheme in any case (RFC 6750)');
  const head = await rawHead(base, '/metrics');
  t.equal(head.status, 401, 'HEAD too');
  t.equal(head.after, '', 'no body after a HEAD 401');
});

t.test('bearerMatches', async (t) => {
  t.ok(bearerMatches('Bearer abc', 'abc'));
  t.ok(bearerMatches('BEARER abc', 'abc'));
  t.notOk(bearerMatches(undefined, 'abc'));
  t.notOk(bearerMatches('', 'abc'));
  t.notOk(bearerMatches('Bearer ', 'abc'));
  t.notOk(bearerMatches('Bearer abcd', 'abc'));
  t.notOk(bearerMatches('Bearer ab', 'abc'));
  t.notOk(bearerMatches('Bearer abc def', 'abc'));
});

t.test('POST /shutdown: authenticated, JSON, this pid, and only with a handler', async (t) => {
  const call = (headers: Record<string, string>, body = '{}') =>
    httpCall(`${base}/shutdown`, 'POST', { headers, body, dispatcher });
  const json = { 'content-type': 'application/json' };
  let stops = 0;
  t.equal((await call(json)).status, 401, 'no token: 401');
  const none = await call({ ...json, ...bearer(token) });
  t.equal(none.status, 409, 'no handler (not `gsa-emu up`): 409');
  t.equal(none.json.error, 'not_supported');
  client.admin!.onShutdown(() => {
    stops++;
  });
  t.teardown(() => client.admin!.onShutdown(null));
  const get = await httpCall(`${base}/shutdown`, 'GET', { headers: bearer(token), dispatcher });
  t.equal(get.status, 405);
  t.equal(get.headers.allow, 'POST');
  t.equal((await call({ 'content-type': 'text/plain', ...bearer(token) })).status, 415);
  t.equal((await call({ ...json, ...bearer(token) }, '[]')).status, 400, 'not an object');
  t.equal((await call({ ...json, ...bearer(token) }, '{"pid":"1"}')).status, 400);
  const other = await call({ ...json, ...bearer(token) }, JSON.stringify({ pid: process.pid + 1 }));
  t.equal(other.status, 409, 'another pid: 409 (a stale address)');
  t.equal(other.json.error, 'pid_mismatch');
  t.equal(stops, 0, 'none of these stopped it');
  const ok = await call({ ...json, ...bearer(token) }, JSON.stringify({ pid: process.pid }));
  t.equal(ok.status, 202);
  t.same(ok.json, { pid: process.pid, stopping: true });
  for (let i = 0; i < 50 && stops === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(stops, 1, 'the handler ran once the answer was sent');
});

t.test('token: null (tests only) asks for nothing; a given token is used', async (t) => {
  const open = await startAdminApi(client, { token: null });
  t.teardown(() => open.close());
  t.equal(open.token, null);
  t.equal((await httpCall(`${open.url}/status`, 'GET', { dispatcher })).status, 200);
  const given = await startAdminApi(client, { token: 'my-token' });
  t.teardown(() => given.close());
  t.equal(given.token, 'my-token');
  t.equal((await httpCall(`${given.url}/status`, 'GET', { dispatcher })).status, 401);
  const r = await httpCall(`${given.url}/status`, 'GET', {
    headers: bearer('my-token'),
    dispatcher,
  });
  t.equal(r.status, 200);
});

t.test(
  'the admin API listens on a loopback address only, not a name that looks like one',
  async (t) => {
    for (const host of ['127.0.0.1.example', '127.evil.test', '0.0.0.0', '::', '192.0.2.1']) {
      await t.rejects(
        startAdminApi(client, { host }),
        { code: 'GSA_ERR_USAGE', message: `the admin API listens on loopback only, not ${host}` },
        host,
      );
    }
    const v6 = await startAdminApi(client, { host: '::1' }).catch((e: Error) => e);
    if (v6 instanceof Error) t.comment(`::1 not available here: ${v6.message}`);
    else {
      t.teardown(() => v6.close());
      t.ok(v6.url.includes('[::1]'), `::1 is loopback: ${v6.url}`);
    }
  },
);
