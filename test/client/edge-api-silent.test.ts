/**
 * An edge that accepts the connection and never answers (a hung host, a proxy that holds
 * it): each EdgeApi request gives up within its timeoutMs, including the connect and TLS
 * handshake, not after undici's own 10 s connect timeout. `up --edge` asks such an edge
 * for a token before it starts (checkEdgeToken, 5 s). Loopback only.
 */
import net from 'node:net';
import t from 'tap';
import { EdgeApi } from '../../src/client/edge-api.js';

t.test('a silent edge: getToken fails within timeoutMs', async (t) => {
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
  const { port } = server.address() as net.AddressInfo;

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
