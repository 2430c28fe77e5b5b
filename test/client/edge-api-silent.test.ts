/**
 * An edge that accepts the connection and never answers (a hung host, a proxy that holds
 * it): each EdgeApi request gives up within its timeoutMs, including the connect and TLS
 * handshake, not after undici's own 10 s connect timeout. `up --edge` asks such an edge
 * for a token before it starts (checkEdgeToken, 5 s), and the client's start waits for it
 * 5 s in all (token, then first profile), not each request's timeout in turn. Loopback only.
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import { startClient } from '../../src/client/client.js';
import { EdgeApi } from '../../src/client/edge-api.js';
import { NO_LISTENERS } from './edge-restart-helpers.js';

async function silentServer(t: Test): Promise<number> {
  const held = new Set<net.Socket>();
  const server = net.createServer((s) => {
    held.add(s);
    s.on('error', () => {});
    s.on('close', () => held.delete(s));
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  t.teardown(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((res) => server.close(() => res()));
  });
  return (server.address() as net.AddressInfo).port;
}

t.test('a silent edge: getToken fails within timeoutMs', async (t) => {
  const port = await silentServer(t);
  for (const scheme of ['https', 'http']) {
    const api = new EdgeApi({
      url: `${scheme}://127.0.0.1:${port}`,
      userId: 'u1',
      deviceId: 'd1',
      timeoutMs: 1000,
    });
    const t0 = Date.now();
    let err: (Error & { code?: string }) | null = null;
    try {
      await api.getToken('m365');
    } catch (e) {
      err = e as Error & { code?: string };
    } finally {
      await api.close();
    }
    const took = Date.now() - t0;
    t.ok(err, `${scheme}: no token from a silent edge`);
    t.ok(took < 4000, `${scheme}: gave up in ${took} ms (timeoutMs 1000, not 10 s)`);
  }
});

t.test('a silent edge: close() does not wait for a TLS handshake in progress', async (t) => {
  const port = await silentServer(t);
  const api = new EdgeApi({
    url: `https://127.0.0.1:${port}`,
    userId: 'u1',
    deviceId: 'd1',
    timeoutMs: 10_000,
  });
  const pending = api.getToken('m365').then(
    () => null,
    (e: unknown) => e as Error,
  );
  await new Promise((res) => setTimeout(res, 300));
  const t0 = Date.now();
  await api.close();
  const took = Date.now() - t0;
  t.ok(took < 2000, `closed in ${took} ms (not the 10 s handshake timeout)`);
  t.ok(await pending, 'the request failed');
});

t.test('a silent edge: the client starts within 5 s, Initializing', async (t) => {
  const port = await silentServer(t);
  const t0 = Date.now();
  const client = await startClient({
    edge: { url: `http://127.0.0.1:${port}` },
    tenant: 'edge',
    listen: NO_LISTENERS,
    processLookup: false,
  });
  const took = Date.now() - t0;
  t.teardown(() => client.close());
  t.ok(took < 8000, `started in ${took} ms (not the token's 10 s timeout + 5 s for the profile)`);
  const st = client.status();
  t.equal(st.state, 'Initializing', 'no profile yet');
  t.match(
    JSON.stringify(st),
    /no answer from the edge http:\/\/127\.0\.0\.1:\d+ within 5 s \(still waiting\)/,
    'status says why (the banner shows it)',
  );
});
