/**
 * Flows opened while a channel reconnects after the edge closed its session at token expiry
 * (4419, `closeOnTokenExpiry`): the client reconnects at once and holds such a flow until
 * the new session is up, instead of giving it the channel's fallback (Private Access: block),
 * also when the session ended under the flow's OPEN (it opens again on the new one). A run
 * with 2 s tokens opens a short Private Access flow every 15 ms across two expiries; none
 * may be refused (a flow already relaying as its session closes is reset, by design).
 * Everything is on 127.0.0.1; every server is stopped.
 */
import { once } from 'node:events';
import { SocksClient } from 'socks';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { delay } from '../edge/helpers.js';
import { edgeWithPongApp } from './helpers.js';

t.test('flows across token expiry closes are not refused', async (t) => {
  const edge = await edgeWithPongApp(t, 'app.contoso.test:8000', {
    limits: { closeOnTokenExpiry: true },
  });
  const client = await startClient({
    edge: { url: edge.url, tokenTtlSeconds: 2 },
    tenant: 'edge',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    resolver: { system: false },
    processLookup: { enabled: false },
  });
  t.teardown(() => client.close());
  await client.waitConnected(5000);
  const socksPort = client.socks!.address.port;
  const closes: number[] = [];
  client.tunnels.on('down', (channel: string, info: { code?: number }) => {
    if (channel === 'private' && info.code !== undefined) closes.push(info.code);
  });

  const flow = async (): Promise<string> => {
    try {
      const { socket } = await SocksClient.createConnection({
        proxy: { host: '127.0.0.1', port: socksPort, type: 5 },
        command: 'connect',
        destination: { host: 'app.contoso.test', port: 8000 },
        timeout: 10_000,
      });
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d;
      });
      socket.on('error', () => {});
      socket.write('ping\n');
      await Promise.race([once(socket, 'close'), delay(10_000)]);
      socket.destroy();
      return got === 'pong\n' ? 'ok' : `answer ${JSON.stringify(got)}`;
    } catch (err) {
      return (err as Error).message;
    }
  };
  // Bounded: at most 400 flows or 6 s (two closes at least, with 2 s tokens).
  const started = Date.now();
  const runs: Promise<string>[] = [];
  for (let i = 0; i < 400 && Date.now() - started < 6000 && closes.length < 2; i++) {
    runs.push(flow());
    await delay(15);
  }
  // A few more right after the last close.
  for (let i = 0; i < 10; i++) {
    runs.push(flow());
    await delay(15);
  }
  const results = await Promise.all(runs);
  t.ok(closes.length >= 1, `the edge closed the private session at expiry (${closes})`);
  t.ok(
    closes.every((c) => c === 4419),
    'every close was at token expiry (4419)',
  );
  // Refused by the client (SOCKS 0x02: the channel's fallback, block): what this is about.
  const refused = results.filter((r) => /rejected connection/.test(r));
  t.same(refused, [], `none of ${results.length} flows refused`);
  // A flow in flight on a session as the edge closes it is reset, by design (its bytes
  // cannot move to the new session): one or two per close at most at this pace.
  const reset = results.filter((r) => r !== 'ok' && !/rejected connection/.test(r));
  t.ok(reset.length <= 3 * closes.length, `in flight at a close, reset: ${JSON.stringify(reset)}`);
});
