/**
 * UDP over the tunnel, end to end: the edge ends a UDP flow idle for `udpIdleTimeoutMs`
 * with FIN and resets it UDP_LINGER_MS (5 s) later if the client never ends its side
 * (docs/edge.md, limits; src/edge/egress.ts relayUdp). The client ends its side on that FIN
 * and forgets the flow, so a datagram the application sends after the edge ended it opens a
 * fresh flow and is answered, instead of going into a stream the edge no longer relays
 * (its idle sweep runs every udpIdleMs/2, ending flows between 1x and 1.5x udpIdleMs).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { encodeUdpHeader, parseUdpHeader } from '../../src/capture/socks5.js';
import { startClient } from '../../src/client/client.js';
import { startDemo } from '../../src/client/demo.js';
import { startEdge } from '../../src/edge/server.js';
import { udpApp, udpAssociate } from '../util/socks-udp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a datagram after the edge ended an idle UDP flow is delivered', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-e2e-udp-idle-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const demo = await startDemo({ stateDir: dir });
  t.teardown(() => demo.close());
  const edge = await startEdge({
    stateDir: join(dir, 'edge'),
    hostsMap: demo.edge.hostsMap,
    connectorHosts: demo.edge.connectorHosts,
    filtering: demo.edge.filtering,
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 100, connectTimeoutMs: 2000, udpIdleTimeoutMs: 300 },
  });
  t.teardown(() => edge.close({ graceMs: 100 }));
  const client = await startClient({
    edge: { url: edge.url, ca: edge.caPem },
    tenant: 'edge',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    resolver: { hosts: demo.client.hosts, dial: demo.client.dial, system: false, directIp: false },
    bypassLocalAddress: demo.bypassSource,
    limits: { openTimeoutMs: 3000, connectTimeoutMs: 2000, udpIdleMs: 10_000 },
  });
  t.teardown(() => client.close());
  await client.waitConnected(10_000);

  const port = Number(client.addresses.socks!.split(':')[1]);
  const relayPort = await udpAssociate(t, port);
  const { u } = await udpApp(t);
  const got: string[] = [];
  u.on('message', (m: Buffer) => got.push(m.subarray(parseUdpHeader(m)!.data).toString()));
  const send = (s: string) =>
    u.send(
      Buffer.concat([encodeUdpHeader('udp-echo.contoso.test', null, 7000), Buffer.from(s)]),
      relayPort,
      '127.0.0.1',
    );

  send('first');
  for (let i = 0; i < 150 && got.length < 1; i++) await sleep(20);
  t.same(got, ['echo(private): first'], 'the flow works');
  const flows = () =>
    client.flows.list().filter((f) => f.protocol === 'udp' && f.destinationPort === 7000);
  // The edge's udpIdleTimeoutMs (300 ms) passes: it sends FIN (bounded: 5 s).
  for (let i = 0; i < 250 && flows()[0]?.status !== 'Closed'; i++) await sleep(20);
  t.equal(flows()[0]?.status, 'Closed', 'the client ended the flow on the edge FIN');
  send('second');
  for (let i = 0; i < 75 && got.length < 2; i++) await sleep(20);
  t.same(got, ['echo(private): first', 'echo(private): second'], 'the second datagram is answered');
  t.equal(flows().length, 2, 'through a fresh flow');
  const log = edge.logs.all().filter((r) => r.transportProtocol === 'udp');
  t.comment(`edge log: ${JSON.stringify(log.map((r) => [r.sentBytes, r.operationStatus]))}`);
});
