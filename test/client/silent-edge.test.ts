/**
 * An edge that goes silent without closing anything (its host suspended, a route lost:
 * nothing comes back, no FIN, no RST). Keepalive alone declares the session dead only after
 * 15 s between PINGs plus 30 s of silence; meanwhile each new tunneled flow would wait the
 * whole open timeout and be refused as a timeout (SOCKS 0x06), without its rule's fallback.
 * An OPEN that gets nothing at all back within the open timeout closes the session (4408):
 * that flow and the next ones get the fallback (M365: bypass). Also: stopping the client
 * while its edge is silent does not wait for a profile poll in flight (up to 10 s).
 */
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { delay, tempDir } from '../edge/helpers.js';
import { plainEdge, type SilentRelay, silentRelay, socksConnect } from './edge-restart-helpers.js';

t.test('silent edge: new M365 flows get their fallback (bypass), not a timeout', async (t) => {
  const tmp = await tempDir('gsa-silent-edge-');
  // The M365 destination, reached directly once the fallback applies.
  const conns = new Set<Socket>();
  const web = createServer((s) => {
    conns.add(s);
    s.on('error', () => {});
    s.once('close', () => conns.delete(s));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  const webPort = (web.address() as { port: number }).port;
  let edge: Edge | null = null;
  let relay: SilentRelay | null = null;
  let client: RunningClient | null = null;
  t.teardown(async () => {
    await client?.close();
    await relay?.close();
    await edge?.close({ graceMs: 0 });
    for (const s of conns) s.destroy();
    await new Promise<void>((r) => web.close(() => r()));
    await tmp.remove();
  });
  edge = await startEdge(plainEdge(join(tmp.dir, 'edge')));
  relay = await silentRelay(edge.port);
  // The open timeout is 2 s; keepalive keeps its defaults, as in `up`.
  client = await startClient({
    edge: { url: `http://127.0.0.1:${relay.port}` },
    tenant: 'edge',
    profilePollMs: 60_000,
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    resolver: { dial: { 'outlook.office365.com': `127.0.0.1:${webPort}` }, system: false },
    limits: { openTimeoutMs: 2000 },
    processLookup: false,
  });
  await client.waitConnected(10_000);
  relay.silence();
  const socksPort = client.socks!.address.port;
  const last = () =>
    client!.flows
      .list()
      .filter((x) => x.destinationFqdn === 'outlook.office365.com')
      .at(-1);

  // The first flow meets the silence: its OPEN gets nothing back.
  const first = await socksConnect(socksPort, 'outlook.office365.com', 80);
  first.s.destroy();
  const f1 = last();
  t.equal(
    first.rep,
    0,
    `first flow: SOCKS reply 0x00 (fallback bypass), got 0x0${first.rep} after ${first.ms} ms: ${f1?.action} hardening ${f1?.hardening}, ${f1?.reason}`,
  );
  t.equal(f1?.hardening, 'Y', 'the flow record says hardening applied');
  const m365 = client.status().channels.find((x) => x.channel === 'm365');
  t.match(m365?.detail, /session closed: 4408 nothing received within 2000 ms of an OPEN/);

  // The next flow finds the channel down: the fallback at once.
  const second = await socksConnect(socksPort, 'outlook.office365.com', 80);
  second.s.destroy();
  t.equal(second.rep, 0, 'second flow: fallback bypass');
  t.ok(second.ms < 1000, `at once (${second.ms} ms)`);
  t.equal(last()?.hardening, 'Y');
});

t.test('silent edge: close() does not wait for a profile poll in flight', async (t) => {
  const tmp = await tempDir('gsa-silent-close-');
  let edge: Edge | null = null;
  let relay: SilentRelay | null = null;
  let client: RunningClient | null = null;
  let closing: Promise<void> | null = null;
  t.teardown(async () => {
    await (closing ?? client?.close());
    await relay?.close();
    await edge?.close({ graceMs: 0 });
    await tmp.remove();
  });
  edge = await startEdge(plainEdge(join(tmp.dir, 'edge')));
  relay = await silentRelay(edge.port);
  client = await startClient({
    edge: { url: `http://127.0.0.1:${relay.port}` },
    tenant: 'edge',
    profilePollMs: 60_000,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: null },
    processLookup: false,
  });
  await client.waitConnected(10_000);
  relay.silence();
  // The next poll (every 30 s in `up`) goes out and gets no answer.
  void client.refreshProfiles();
  await delay(200);
  const t0 = Date.now();
  closing = client.close();
  const done = await Promise.race([
    closing.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 3000).unref()),
  ]);
  t.ok(done, `close() resolved within 3 s (${done ? `${Date.now() - t0} ms` : 'still waiting'})`);
});
