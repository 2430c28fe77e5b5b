/**
 * A SOCKS client that aborts its connection (TCP RST) is passed on to the destination as a
 * reset, not as a clean end (FIN) the destination could take for complete data (data
 * delimited by the end of the connection: FTP data connections, `nc host port < file`,
 * HTTP/1.0 bodies). Bypassed: Forwarder.relay resets the upstream socket. Tunneled: the
 * stream is reset (CANCEL), and the edge's egress resets its destination socket. Both used
 * to destroy() the socket: a FIN. The other direction already aborted with an RST.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { domainRequest, hex, rawClient, sleep, startSocks, u16 } from '../capture/helpers.js';
import { startTestWorld, until } from '../e2e/helpers.js';

/** A TCP server that records how each connection ended: 'end' (FIN) or the error code. */
async function endRecorder(t: { teardown(fn: () => unknown): void }) {
  const ends: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.resume();
    s.once('end', () => ends.push('end'));
    s.once('error', (e: NodeJS.ErrnoException) => ends.push(e.code ?? 'error'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, ends };
}

t.test('bypassed: the client RST reaches the destination as a reset', async (t) => {
  const dest = await endRecorder(t);
  const { port } = await startSocks(t);
  const c = await rawClient(t, port, [
    hex('05 01 00'),
    Buffer.concat([hex('05 01 00 01 7f000001'), u16(dest.port)]),
  ]);
  t.equal((await c.waitBytes(12))[3], 0, 'granted');
  c.s.write('partial upload');
  await sleep(50);
  c.s.resetAndDestroy();
  await until(() => dest.ends.length > 0, 'the destination saw the connection end', 3000);
  t.same(dest.ends, ['ECONNRESET'], 'the destination saw a reset, not a FIN');
});

t.test('tunneled: the client RST reaches the destination as a reset', async (t) => {
  const dest = await endRecorder(t);
  const w = await startTestWorld({
    prefix: 'gsa-relay-client-reset-',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 },
    connectorHosts: { 'intranet.contoso.test:80': `127.0.0.1:${dest.port}` },
  });
  t.teardown(() => w.close());
  const port = Number(w.client.addresses.socks!.split(':')[1]);
  const c = await rawClient(t, port, [hex('05 01 00'), domainRequest('intranet.contoso.test', 80)]);
  t.equal((await c.waitBytes(12))[3], 0, 'granted');
  t.equal(w.flowTo('intranet.contoso.test')?.action, 'Tunnel');
  c.s.write('partial upload');
  await sleep(100);
  c.s.resetAndDestroy();
  await until(() => dest.ends.length > 0, 'the destination saw the connection end', 3000);
  t.same(dest.ends, ['ECONNRESET'], 'the destination saw a reset, not a FIN');
});
