/**
 * A web app on `localhost` reached through the proxies.
 *
 * A developer who points a test run at the proxy (`HTTPS_PROXY`/`HTTP_PROXY` as docs/usage.md's
 * CI example does, undici `ProxyAgent`, `curl -x`, `ALL_PROXY=socks5h://...`) also
 * sends requests for `http://localhost:<port>/` through it. `localhost` is loopback by
 * definition (RFC 6761 section 6.3), and loopback may always be dialed. Without
 * `--allow-internet` the client's resolver knows only the hosts map, and the flow failed
 * with "cannot resolve localhost" (HTTP 502, SOCKS5 reply 0x04).
 *
 * Loopback only; every server and process is closed by the test. Needs `npm run build`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { cli, skip, startHttpOnlyUp, tempRoot, viaHttpProxy } from './cli-ux-helpers.js';

const { newDir } = await tempRoot(t);

t.test('http://localhost:<port>/ through the HTTP proxy reaches 127.0.0.1', { skip }, async (t) => {
  const server = createServer((_q, r) => r.end('app\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as AddressInfo).port;
  const dir = newDir();
  const { done, http } = await startHttpOnlyUp(t, dir);
  t.equal(await viaHttpProxy(http, `http://127.0.0.1:${port}/`), 200, '127.0.0.1 works');
  t.equal(await viaHttpProxy(http, `http://localhost:${port}/`), 200, 'localhost works too');
  const flows = await cli(['flows', '--state-dir', dir, '-n', '1']);
  t.notMatch(flows.out, /cannot resolve localhost/, 'no "cannot resolve localhost" flow');
  t.equal((await cli(['stop', '--state-dir', dir])).code, 0, 'gsa-emu stop stops it');
  await done;
});
