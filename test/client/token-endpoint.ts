/**
 * A token endpoint of the test's own on 127.0.0.1, for tests of how the client times the
 * tokens it gets (src/client/edge-api.ts): unsigned JWTs, which the client reads without
 * verifying them.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';
import { EdgeApi, type EdgeApiOptions } from '../../src/client/edge-api.js';

/** An unsigned JWT with `payload`. */
export function unsignedJwt(payload: Record<string, unknown>): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'JWT' })}.${part(payload)}.c2ln`;
}

/**
 * An EdgeApi whose token requests are answered by `answer()` (the access token's claims and
 * `expires_in`, computed per request); the server and the api are closed when `t` ends.
 */
export async function tokenEndpointApi(
  t: Test,
  answer: () => { claims: Record<string, unknown>; expiresIn: number },
  opts: Partial<EdgeApiOptions> = {},
): Promise<EdgeApi> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const { claims, expiresIn } = answer();
      const body = JSON.stringify({
        token_type: 'Bearer',
        access_token: unsignedJwt(claims),
        expires_in: expiresIn,
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const api = new EdgeApi({
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    userId: 'u1',
    deviceId: 'd1',
    timeoutMs: 5000,
    ...opts,
  });
  t.teardown(() => api.close());
  return api;
}
