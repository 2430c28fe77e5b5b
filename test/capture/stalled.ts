/**
 * A test of a listener's connection limit: `n` clients connect to 127.0.0.1:`port` one
 * after the other, each writes `bytes` (an unfinished handshake) and stalls, reading what
 * comes back, and `max` of them should be held until the handshake timeout while the rest
 * are closed at once. The checks are made on `t`; the sockets are destroyed at the end.
 * "At once" is under a second: the callers' timeout is 2 s, so a loaded machine's stall
 * (the connects are sequential) does not let the held ones time out first.
 */
import { once } from 'node:events';
import { connect, type Server, type Socket } from 'node:net';
import type { Test } from 'tap';
import { until } from '../edge/helpers.js';

export async function checkConnectionLimit(
  t: Test,
  o: { port: number; server: Server; max: number; n: number; bytes: string | Buffer; what: string },
): Promise<void> {
  const clients: Socket[] = [];
  const closedAt: number[] = [];
  const t0 = Date.now();
  for (let i = 0; i < o.n; i++) {
    const s = connect({ port: o.port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.once('close', () => closedAt.push(Date.now() - t0));
    s.resume(); // read the error reply and the FIN
    s.write(o.bytes);
    clients.push(s);
    await once(s, 'connect');
  }
  const over = o.n - o.max;
  t.ok(await until(() => closedAt.length >= over, 2000), `the ${over} over the limit closed`);
  t.ok(
    closedAt.slice(0, over).every((ms) => ms < 1000),
    `at once (${closedAt.slice(0, over)} ms)`,
  );
  t.equal(
    await new Promise((r) => o.server.getConnections((_e, k) => r(k))),
    o.max,
    `${o.max} held`,
  );
  t.ok(
    await until(() => closedAt.length === o.n, 6000),
    `the rest by the ${o.what} timeout (${closedAt} ms)`,
  );
  for (const s of clients) s.destroy();
}
