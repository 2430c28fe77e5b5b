/**
 * The admin API's methods, paths and media type (RFC 9110): the GET endpoints answer HEAD
 * and their 405 says `Allow: GET, HEAD`; /toggle exists (405 `Allow: POST` for GET/HEAD);
 * an unknown path is 404 whatever the method; POST /toggle takes `application/json` in any
 * case, with parameters, and nothing else (a browser cannot send that cross-site without
 * a preflight). Every request carries the client's admin token (its absence is
 * test/client/admin-api-auth.test.ts). The edge and the client listen on 127.0.0.1 and are
 * closed by the test.
 */
import { connect } from 'node:net';
import t from 'tap';
import { Agent } from 'undici';
import { hostAllowed } from '../../src/client/admin-api.js';
import type { RunningClient } from '../../src/client/client.js';
import { httpCall, type Reply, rawHead as rawHeadAt } from '../util/http-calls.js';
import { adminWorld } from './helpers.js';

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

let client: RunningClient;
let base: string;
let auth: Record<string, string>;

t.before(async () => {
  ({ client, base, auth } = await adminWorld(t));
});

function call(
  method: string,
  path: string,
  o: { body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return httpCall(`${base}${path}`, method, {
    ...o,
    headers: { ...auth, ...o.headers },
    dispatcher,
  });
}

const rawHead = (path: string) => rawHeadAt(base, path, `authorization: ${auth.authorization}\r\n`);

const GET_ENDPOINTS = [
  '/',
  '/status',
  '/flows',
  '/hostnames',
  '/profile',
  '/health',
  '/explain?target=10.1.2.3:443',
  '/metrics',
];

function toggle(contentType: string | null, on: boolean): Promise<Reply> {
  return call('POST', '/toggle', {
    headers: contentType === null ? {} : { 'content-type': contentType },
    body: JSON.stringify({ channel: 'internet', on }),
  });
}

t.test('/toggle exists: GET and HEAD are 405 with Allow: POST', async (t) => {
  for (const method of ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH']) {
    const r = await call(method, '/toggle');
    t.equal(r.status, 405, `${method} /toggle`);
    t.equal(r.headers.allow, 'POST', `${method} /toggle: Allow`);
    if (method !== 'HEAD') t.equal(r.json.error, 'method_not_allowed');
  }
  t.equal((await call('GET', '/toggle?channel=internet')).status, 405, 'with a query too');
});

t.test('an unknown path is 404 whatever the method', async (t) => {
  for (const path of ['/nosuch', '/toggle/', '/status/x', '/Toggle']) {
    for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await call(method, path, {
        headers: { 'content-type': 'application/json' },
        ...(method === 'GET' || method === 'HEAD' ? {} : { body: '{}' }),
      });
      t.equal(r.status, 404, `${method} ${path}`);
      t.equal(r.headers.allow, undefined, `${method} ${path}: no Allow`);
      if (method !== 'HEAD') {
        t.same(r.json, { error: 'not_found', message: `no such endpoint ${path}` });
      }
    }
  }
});

t.test('the GET endpoints answer HEAD, and their 405 says Allow: GET, HEAD', async (t) => {
  for (const path of GET_ENDPOINTS) {
    const get = await call('GET', path);
    const head = await call('HEAD', path);
    // This client captures nothing (no proxy, no TUN): its "Services running" check fails,
    // and /health says so with a 503 (test/client/admin-api-health-status.test.ts).
    const ok = path === '/health' ? 503 : 200;
    t.equal(get.status, ok, `GET ${path}`);
    t.equal(head.status, ok, `HEAD ${path}`);
    t.equal(head.headers['content-type'], get.headers['content-type'], `HEAD ${path}: type`);
    t.ok(Number(head.headers['content-length']) > 0, `HEAD ${path}: content-length`);
    t.equal(head.text, '', `HEAD ${path}: no body`);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await call(method, path, {
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      t.equal(r.status, 405, `${method} ${path}`);
      t.equal(r.headers.allow, 'GET, HEAD', `${method} ${path}: Allow`);
      t.equal(r.json.error, 'method_not_allowed');
    }
  }
  const raw = await rawHead('/profile');
  t.equal(raw.status, 200);
  t.match(raw.head, /\r\ncontent-length: [1-9]\d*\r\n/i);
  t.equal(raw.after, '', 'nothing after the head');
  // Cross-site stays refused whatever the method.
  for (const method of ['GET', 'HEAD', 'POST']) {
    const r = await call(method, '/status', { headers: { origin: 'https://evil.test' } });
    t.equal(r.status, 403, `${method} with Origin`);
  }
});

t.test(
  'POST /toggle: application/json in any case and with parameters; nothing else',
  async (t) => {
    t.teardown(() => {
      client.toggle('internet', true);
    });
    for (const ct of [
      'application/json',
      'Application/JSON',
      'APPLICATION/JSON',
      'application/json; charset=utf-8',
      'Application/Json;charset=UTF-8',
      'application/json ; charset="utf-8"',
      'application/json\t;charset=utf-8',
    ]) {
      const off = await toggle(ct, false);
      t.equal(off.status, 200, `${JSON.stringify(ct)}: accepted`);
      t.match(off.json, { channel: 'internet', on: false });
      t.equal(client.tiles.state().internet, false, `${JSON.stringify(ct)}: the tile is off`);
      const on = await toggle(ct, true);
      t.equal(on.status, 200);
      t.equal(client.tiles.state().internet, true);
    }
    for (const ct of [
      null,
      '',
      'text/plain',
      'text/plain; charset=utf-8',
      'text/plain; x=application/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonp',
      'application/json-patch+json',
      'application/json5',
      'application/json, text/plain',
      'text/json',
    ]) {
      const r = await toggle(ct, false);
      t.equal(r.status, 415, `${JSON.stringify(ct)}: refused`);
      t.same(r.json, {
        error: 'unsupported_media_type',
        message: 'send Content-Type: application/json',
      });
      t.equal(client.tiles.state().internet, true, `${JSON.stringify(ct)}: the tile is unchanged`);
    }
    // With an Origin header even a JSON POST is refused.
    const cross = await call('POST', '/toggle', {
      headers: { 'content-type': 'application/json', origin: 'https://evil.test' },
      body: JSON.stringify({ channel: 'internet', on: false }),
    });
    t.equal(cross.status, 403);
    t.equal(client.tiles.state().internet, true);
  },
);

/** The status line of `GET path` sent with `host` as the Host header, over a raw socket. */
function statusWithHost(path: string, host: string, method = 'GET'): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname);
    let got = '';
    s.setTimeout(5000, () => s.destroy(new Error('no answer')));
    s.on('connect', () =>
      s.write(
        `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${auth.authorization}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
      ),
    );
    s.on('data', (d) => (got += d));
    s.on('error', reject);
    s.on('close', () => resolve(got.split('\r\n')[0] ?? ''));
  });
}

t.test('a POST without a body or Content-Type: the 415 names the header', async (t) => {
  // `curl -X POST .../shutdown` sends neither: "send application/json" read as "send a body".
  for (const path of ['/shutdown', '/profile/refresh', '/onboard']) {
    const r = await call('POST', path);
    t.equal(r.status, 415, `POST ${path}`);
    t.same(r.json, {
      error: 'unsupported_media_type',
      message: 'send Content-Type: application/json',
    });
  }
});

t.test('DNS rebinding: a Host that is not the API itself gets 403', async (t) => {
  const port = new URL(base).port;
  for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1:${Number(port) + 1}`]) {
    t.equal(await statusWithHost('/status', host), 'HTTP/1.1 403 Forbidden', `Host: ${host}`);
  }
  t.equal(await statusWithHost('/toggle', 'evil.example', 'POST'), 'HTTP/1.1 403 Forbidden');
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, '127.0.0.1', 'LOCALHOST']) {
    t.equal(await statusWithHost('/status', host), 'HTTP/1.1 200 OK', `Host: ${host}`);
  }
  const at = { address: '::1', family: 'IPv6', port: 9 };
  t.ok(hostAllowed('[::1]:9', at));
  t.notOk(hostAllowed('[::2]:9', at));
  t.notOk(hostAllowed('127.0.0.1:9:9', at));
  t.ok(hostAllowed(undefined, at), 'HTTP/1.0 without Host');
});

t.test('idle connections are not held for good', async (t) => {
  const server = client.admin!.server;
  t.ok(server.timeout > 0 && server.timeout <= 60_000, `idle timeout ${server.timeout} ms`);
  t.ok((server.maxConnections ?? Infinity) <= 1024, `at most ${server.maxConnections} connections`);
});

t.test('a toggle that changes nothing does not swap the classifier', async (t) => {
  const before = client.generation;
  const r = await toggle('application/json', true);
  t.equal(r.status, 200);
  t.equal(client.generation, before, 'internet was already on');
  await toggle('application/json', false);
  t.equal(client.generation, before + 1, 'a real change swaps it');
  await toggle('application/json', true);
});
