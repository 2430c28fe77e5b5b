/**
 * A client that resets its connection mid-handshake (an error, no FIN: a program killed, or
 * one that closes with the server's method reply unread) releases the handshake's timer at
 * once. Left armed, each such timer kept the closed socket for the whole handshake timeout,
 * counted a timeout that never happened and, being a ref'd timer, held up the process's
 * exit: `gsa-emu up` took up to 10 s to exit on Ctrl+C after a burst of such clients.
 * Loopback only; the server is stopped by the test.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import t from 'tap';
import { domainRequest, hex, startSocks } from './helpers.js';

const timeouts = (): number =>
  process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

t.test('a client that resets mid-handshake releases its handshake timer', async (t) => {
  const { server, port } = await startSocks(t, { socks: { handshakeTimeoutMs: 1500 } });
  const sockets = (server as unknown as { sockets: Set<unknown> }).sockets;
  const before = timeouts();
  const n = 5;
  for (let i = 0; i < n; i++) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    await once(s, 'connect');
    // The greeting and half a request; the method reply is left unread, then a reset.
    s.write(Buffer.concat([hex('050100'), domainRequest('direct.test', 80).subarray(0, 6)]));
    await new Promise((r) => setTimeout(r, 20));
    s.resetAndDestroy();
    await once(s, 'close');
  }
  for (let i = 0; i < 100 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(sockets.size, 0, 'the server closed its sockets');
  t.equal(timeouts(), before, 'no handshake timer left armed for the closed connections');
  // Past the handshake timeout: nothing timed out, each handshake counted once as failed.
  await new Promise((r) => setTimeout(r, 1800));
  t.equal(server.stats.timeouts, 0, 'no timeout counted');
  t.equal(server.stats.failed, n, 'each reset handshake counted once as failed');
});

t.test('a handshake that times out is still counted once', async (t) => {
  const { server, port } = await startSocks(t, { socks: { handshakeTimeoutMs: 200 } });
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  s.write(hex('05'));
  s.resume();
  await once(s, 'close');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(server.stats.timeouts, 1);
  t.equal(server.stats.failed, 1);
});
