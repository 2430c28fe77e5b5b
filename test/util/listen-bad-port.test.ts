/**
 * A port out of range given through the API (the CLI checks its own flags) is a ListenError
 * naming the listener, GSA_ERR_LISTEN (docs/errors.md), not Node's RangeError
 * ERR_SOCKET_BAD_PORT; the edge and the client leave nothing listening behind.
 */
import { createServer } from 'node:net';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdge } from '../../src/edge/server.js';
import { ListenError } from '../../src/errors.js';
import { listenOn } from '../../src/util/listen.js';
import { tempDir } from '../edge/helpers.js';

t.test('listenOn', async (t) => {
  for (const port of [65536, 99999, -1, 1.5]) {
    const s = createServer();
    const err = await listenOn(s, port, '127.0.0.1', 'SOCKS5 proxy').catch((e) => e);
    t.ok(err instanceof ListenError, `${port}: a ListenError`);
    t.match(err, { code: 'GSA_ERR_LISTEN', errno: 'ERR_SOCKET_BAD_PORT', port });
    t.match(err.message, /^the SOCKS5 proxy cannot listen on 127\.0\.0\.1:.*: not a port/);
    t.notOk(s.listening, 'not listening');
  }
});

t.test('startEdge and startClient', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  await t.rejects(startEdge({ stateDir: tmp.dir, tls: false, persistKey: false, port: 99999 }), {
    code: 'GSA_ERR_LISTEN',
    what: 'edge',
  });
  await t.rejects(
    startClient({
      edge: { url: 'http://127.0.0.1:1' },
      tenant: 'default',
      listen: { socksPort: 0, httpPort: -5, pacPort: null, adminPort: null },
      processLookup: false,
    }),
    { code: 'GSA_ERR_LISTEN', what: 'HTTP proxy' },
  );
  await t.rejects(
    startClient({
      edge: { url: 'http://127.0.0.1:1' },
      tenant: 'default',
      listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 70000 },
      processLookup: false,
    }),
    { code: 'GSA_ERR_LISTEN', what: 'admin API' },
  );
});
