/**
 * Stopping the proxies (`gsa-emu stop`, Ctrl+C) mid-transfer resets the applications'
 * connections: a download cut short must not end with a FIN that an application reading to
 * the end takes for complete data. Loopback only; every server is stopped by the test.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { domainRequest, rawClient, startSocks } from './helpers.js';

t.test('SOCKS5 close() resets a relayed connection mid-transfer', async (t) => {
  // A destination that sends a little and then holds the connection open.
  const held = new Set<Socket>();
  const dest = createServer((s) => {
    held.add(s);
    s.on('error', () => {});
    s.write(Buffer.alloc(1000, 0x61));
  });
  dest.listen(0, '127.0.0.1');
  await once(dest, 'listening');
  t.teardown(() => {
    for (const s of held) s.destroy();
    dest.close();
  });
  const port = (dest.address() as { port: number }).port;
  const { server, port: socksPort } = await startSocks(t);
  const c = await rawClient(t, socksPort, [
    Buffer.from([5, 1, 0]),
    domainRequest('direct.test', port),
  ]);
  // Method reply (2) + CONNECT reply (10) + 1000 bytes of the download.
  await c.waitBytes(2 + 10 + 1000);
  const how = new Promise<string>((resolve) => {
    c.s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    c.s.once('end', () => resolve('FIN'));
  });
  await server.close();
  t.equal(await how, 'ECONNRESET', 'the application sees a reset, not a clean end');
});
