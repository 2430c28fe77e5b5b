/**
 * Flows across the edge's session closes at token expiry (`closeOnTokenExpiry`, 2 s tokens).
 *
 * By default the edge says on the upgrade when it will close a session, and the client
 * replaces it before then (make-before-break): a short Private Access flow every 15 ms
 * across two expiries is neither refused nor reset, and the channel never goes down.
 *
 * Without the replacement (`rotateSessions: false`), the session is closed (4419): the
 * client reconnects at once and holds a flow opened meanwhile until the new session is up,
 * instead of giving it the channel's fallback (Private Access: block), also when the session
 * ended under the flow's OPEN (it opens again on the new one). None may be refused (a flow
 * already relaying as its session closes is reset, by design). The same for UDP (SOCKS UDP
 * ASSOCIATE, the demo's Private Access UDP echo): a datagram every 15 ms across two
 * expiries; the flow the first datagram after a close opens waits for the new session
 * instead of taking the fallback (which would discard the destination's datagrams for
 * udpIdleMs).
 * Everything is on 127.0.0.1; every server is stopped.
 */
import { once } from 'node:events';
import { SocksClient } from 'socks';
import t from 'tap';
import { encodeUdpHeader, parseUdpHeader } from '../../src/capture/socks5.js';
import { startClient } from '../../src/client/client.js';
import { delay } from '../edge/helpers.js';
import { udpApp, udpAssociate } from '../util/socks-udp.js';
import { edgeWithPongApp, startTestWorld } from './helpers.js';

for (const rotate of [true, false]) {
  t.test(
    rotate
      ? 'sessions replaced before the edge closes them: flows neither refused nor reset'
      : 'sessions closed at token expiry: flows opened meanwhile are not refused',
    async (t) => {
      const edge = await edgeWithPongApp(t, 'app.contoso.test:8000', {
        limits: { closeOnTokenExpiry: true },
      });
      const client = await startClient({
        // Replaced a quarter of a token's life before expiry: with 4 s tokens 1 s, which a
        // loaded machine's stalls do not outlast (2 s tokens left 0.5 s).
        edge: { url: edge.url, tokenTtlSeconds: rotate ? 4 : 2, rotateSessions: rotate },
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
      let rotations = 0;
      client.tunnels.on('rotated', (channel: string) => {
        if (channel === 'private') rotations++;
      });
      const ends = (): number => (rotate ? rotations : closes.length);

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
      // Bounded: at most 600 flows or 6 s (10 s with 4 s tokens): two expiries at least.
      const started = Date.now();
      const runs: Promise<string>[] = [];
      const until = rotate ? 10_000 : 6000;
      for (let i = 0; i < 600 && Date.now() - started < until && ends() < 2; i++) {
        runs.push(flow());
        await delay(15);
      }
      // A few more right after the last close.
      for (let i = 0; i < 10; i++) {
        runs.push(flow());
        await delay(15);
      }
      const results = await Promise.all(runs);
      // Refused by the client (SOCKS 0x02: the channel's fallback, block).
      const refused = results.filter((r) => /rejected connection/.test(r));
      t.same(refused, [], `none of ${results.length} flows refused`);
      const reset = results.filter((r) => r !== 'ok' && !/rejected connection/.test(r));
      if (rotate) {
        t.ok(rotations >= 1, `the private session was replaced before expiry (${rotations})`);
        t.same(closes, [], 'the channel never went down');
        // The old session drains in the last quarter of its life (1 s here): a flow of a
        // few milliseconds is done long before the edge closes it. (At most one per expiry
        // on a machine slow enough to stretch one past that.)
        t.ok(reset.length <= rotations, `none reset: ${JSON.stringify(reset)}`);
      } else {
        t.ok(closes.length >= 1, `the edge closed the private session at expiry (${closes})`);
        t.ok(
          closes.every((c) => c === 4419),
          'every close was at token expiry (4419)',
        );
        // A flow in flight on a session as the edge closes it is reset, by design (its bytes
        // cannot move to the new session): one or two per close at most at this pace.
        t.ok(
          reset.length <= 3 * closes.length,
          `in flight at a close, reset: ${JSON.stringify(reset)}`,
        );
      }
    },
  );
}

t.test('datagrams across token expiry closes do not take the fallback', async (t) => {
  const w = await startTestWorld({
    prefix: 'gsa-e2e-udp-expiry-',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    edgeLimits: { closeOnTokenExpiry: true },
    // The close path: the session is not replaced before the edge closes it.
    clientEdge: { tokenTtlSeconds: 2, rotateSessions: false },
  });
  t.teardown(w.close);
  const { client } = w;
  const closes: number[] = [];
  client.tunnels.on('down', (channel: string, info: { code?: number }) => {
    if (channel === 'private' && info.code !== undefined) closes.push(info.code);
  });
  const relayPort = await udpAssociate(t, client.socks!.address.port);
  const { u } = await udpApp(t);
  const answered = new Set<string>();
  u.on('message', (m: Buffer) => {
    const h = parseUdpHeader(m);
    if (h !== null) answered.add(m.subarray(h.data).toString());
  });
  // Bounded: at most 400 datagrams or 6 s (two closes at least, with 2 s tokens).
  const started = Date.now();
  let sent = 0;
  const datagram = (n: number): Buffer =>
    Buffer.concat([encodeUdpHeader('udp-echo.contoso.test', null, 7000), Buffer.from(`d${n}`)]);
  for (; sent < 400 && Date.now() - started < 6000 && closes.length < 2; sent++) {
    u.send(datagram(sent), relayPort, '127.0.0.1');
    await delay(15);
  }
  // A few more right after the last close.
  for (let i = 0; i < 10; i++, sent++) {
    u.send(datagram(sent), relayPort, '127.0.0.1');
    await delay(15);
  }
  for (let i = 0; i < 50 && answered.size < sent; i++) await delay(20);
  const drops = Object.fromEntries(client.flows.counters.drops);
  t.ok(closes.length >= 1, `the edge closed the private session at expiry (${closes})`);
  t.equal(
    drops.hardening ?? 0,
    0,
    `no datagram got the fallback (drops: ${JSON.stringify(drops)})`,
  );
  const flows = client.flows.list().filter((f) => f.protocol === 'udp');
  t.same(
    flows.filter((f) => f.hardening === 'Y').map((f) => f.flowId),
    [],
    'no UDP flow was a fallback decision',
  );
  t.ok(flows.length >= 1 + closes.length, `a fresh flow after each close (${flows.length})`);
  // A datagram in flight as a session closes is lost (UDP), a few per close at this pace.
  t.ok(
    sent - answered.size <= 5 * closes.length,
    `answered ${answered.size} of ${sent} datagrams across ${closes.length} closes`,
  );
});
