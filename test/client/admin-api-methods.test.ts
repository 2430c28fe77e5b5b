/**
 * The admin API's methods, paths and media type (RFC 9110): the GET endpoints answer HEAD
 * and their 405 says `Allow: GET, HEAD`; /toggle exists (405 `Allow: POST` for GET/HEAD);
 * an unknown path is 404 whatever the method; POST /toggle takes `application/json` in any
 * case, with parameters, and nothing else (a browser cannot send that cross-site without
 * a preflight). The edge and the client listen on 127.0.0.1 and are closed by the test.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { tempDir } from '../edge/helpers.js';

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
let client: RunningClient;
let base: string;

t.before(async () => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  client = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
    resolver: { system: false },
    processLookup: false,
  });
  t.teardown(() => client.close());
  base = client.admin!.url;
});

async function call(
  method: string,
  path: string,
  o: { body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const r = await request(`${base}${path}`, {
    method: method as 'GET',
    headers: o.headers ?? {},
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

/** HEAD over a raw socket (`Connection: close`): the head, and whatever came after it. */
async function rawHead(path: string): Promise<{ status: number; head: string; after: string }> {
  const u = new URL(base);
  const sock = connect(Number(u.port), '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise<void>((resolve, reject) => {
    sock.on('end', () => resolve());
    sock.on('error', reject);
  });
  sock.write(`HEAD ${path} HTTP/1.1\r\nhost: ${u.host}\r\nconnection: close\r\n\r\n`);
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
    t.equal(get.status, 200, `GET ${path}`);
    t.equal(head.status, 200, `HEAD ${path}`);
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
      t.same(r.json, { error: 'unsupported_media_type', message: 'send application/json' });
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
