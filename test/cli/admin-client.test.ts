/**
 * The admin API client (`gsa-emu status | flows | toggle`): an error status becomes an
 * AdminApiError (a GsaError) with a stable code; an unreachable API is GSA_ERR_ADMIN_UNREACHABLE.
 * The fake admin API listens on loopback only and is closed by the test.
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADMIN_API_HEADER, adminCall, adminTarget } from '../../src/client/admin-client.js';
import { AdminApiError, GsaError } from '../../src/errors.js';

t.test('admin API errors are AdminApiError with stable codes', async (t) => {
  const server = createServer((req, res) => {
    const send = (status: number, body: string) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        [ADMIN_API_HEADER]: 'admin-api',
      });
      res.end(body);
    };
    if (req.url === '/toggle')
      send(409, JSON.stringify({ error: 'GSA_ERR_TOGGLE_LOCKED', message: 'locked by the admin' }));
    else if (req.url === '/garbled') send(500, 'not json');
    else send(404, JSON.stringify({ error: 'not_found', message: `no such endpoint ${req.url}` }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const locked = await adminCall(base, 'POST', '/toggle', { channel: 'internet', on: false }).catch(
    (e: unknown) => e,
  );
  t.ok(locked instanceof AdminApiError);
  t.ok(locked instanceof GsaError);
  t.match(locked, {
    code: 'GSA_ERR_TOGGLE_LOCKED',
    status: 409,
    apiError: 'GSA_ERR_TOGGLE_LOCKED',
    message: 'locked by the admin',
  });

  const missing = await adminCall(base, 'GET', '/nope').catch((e: unknown) => e);
  t.ok(missing instanceof AdminApiError);
  t.match(missing, {
    code: 'GSA_ERR_ADMIN',
    status: 404,
    apiError: 'not_found',
    message: 'no such endpoint /nope',
  });

  const garbled = await adminCall(base, 'GET', '/garbled').catch((e: unknown) => e);
  t.match(garbled, { code: 'GSA_ERR_ADMIN', status: 500, apiError: null, message: 'HTTP 500' });
});

t.test('an admin API nobody listens on is GSA_ERR_ADMIN_UNREACHABLE', async (t) => {
  // A port that was free a moment ago: bind, read the port, close.
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  const err = await adminCall(`http://127.0.0.1:${port}`, 'GET', '/status').catch(
    (e: unknown) => e,
  );
  t.ok(err instanceof GsaError);
  t.notOk(err instanceof AdminApiError);
  t.match(err, { code: 'GSA_ERR_ADMIN_UNREACHABLE' });
});

t.test('another program answering on the admin port is not taken for the admin API', async (t) => {
  // As a stale client.json's port reused by some web server: 200 with JSON of another shape.
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"hello":"world"}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const err = await adminCall(base, 'GET', '/status').catch((e: unknown) => e);
  t.ok(err instanceof GsaError);
  t.match(err, {
    code: 'GSA_ERR_ADMIN_UNREACHABLE',
    message:
      /^something answers at http:\/\/127\.0\.0\.1:\d+ \(HTTP 200\), but not gsa-emu's admin API/,
  });
});

t.test(
  'a token from --admin-token that the API refuses: the message names that file',
  async (t) => {
    const server = createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json', [ADMIN_API_HEADER]: 'admin-api' });
      res.end(JSON.stringify({ error: 'unauthorized', message: 'send its token' }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const dir = await mkdtemp(join(tmpdir(), 'gsa-admin-token-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'old.token');
    await writeFile(file, 'a-token-of-an-earlier-run\n');
    const admin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const err = await adminCall(
      adminTarget(dir, { admin, adminToken: file }),
      'GET',
      '/status',
    ).catch((e: unknown) => e);
    t.ok(err instanceof AdminApiError);
    t.match(err, { code: 'GSA_ERR_ADMIN', status: 401, apiError: 'unauthorized' });
    t.match((err as Error).message, `refused the token in ${file} (--admin-token)`);
    t.notMatch((err as Error).message, 'wants its token', 'not told to give the flag it gave');
    // Without --admin-token the message still asks for it.
    const none = await adminCall(adminTarget(dir, { admin }), 'GET', '/status').catch(
      (e: unknown) => e,
    );
    t.match((none as Error).message, /wants its token: give --admin-token <file>/);
  },
);
