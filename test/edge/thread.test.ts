/**
 * The edge on a worker thread (src/edge/thread.ts), as `gsa-emu up --edge-thread` runs it: a client
 * tunnels through it over wss, its traffic log (written by the thread) names the flow,
 * start-up errors come back as the errors startEdge() throws, and close() ends the thread.
 * Everything listens on 127.0.0.1 and is stopped by the test.
 */
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { SocksClient } from 'socks';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdgeThread } from '../../src/edge/thread.js';
import { ConfigError, ListenError } from '../../src/errors.js';
import { delay, echoServer, tempDir, until } from './helpers.js';

t.test('a client tunnels through the thread edge; the thread writes the traffic log', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const app = await echoServer();
  t.teardown(app.close);
  const logFile = join(tmp.dir, 'edge-traffic.jsonl');
  const edge = await startEdgeThread({
    stateDir: join(tmp.dir, 'edge'),
    persistKey: false,
    connectorHosts: { 'app.contoso.test:8000': `127.0.0.1:${app.port}` },
    egress: { systemResolver: false, directIp: false },
    logFile,
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  t.match(edge.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.match(edge.caPem, /BEGIN CERTIFICATE/);

  const client = await startClient({
    edge: { url: edge.url, ca: edge.caPem },
    tenant: 'edge',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    processLookup: false,
  });
  t.teardown(() => client.close());
  await client.waitConnected(5000);
  t.equal(client.status().tenantId, edge.tenantId, 'profiles came from the thread edge');

  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: client.socks!.address.port, type: 5 },
    command: 'connect',
    destination: { host: 'app.contoso.test', port: 8000 },
    timeout: 5000,
  });
  const echoed = new Promise<string>((resolve, reject) => {
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= 5) resolve(got);
    });
    socket.once('error', reject);
  });
  socket.write('hello');
  t.equal(await echoed, 'hello', 'the private app echoed through the tunnel');
  socket.end();

  const flow = client.flows.list().find((f) => f.destinationFqdn === 'app.contoso.test');
  t.ok(flow, 'the client recorded the flow');
  t.equal(flow?.action, 'Tunnel');
  const logged = await until(() => {
    try {
      return readFileSync(logFile, 'utf8').includes(flow!.connectionId);
    } catch {
      return false;
    }
  }, 5000);
  t.ok(logged, "the thread's traffic log has the flow's connection id");
});

t.test('a start-up error comes back as the ConfigError startEdge throws', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const err = await startEdgeThread({ stateDir: join(tmp.dir, 'edge'), tenantId: 'not a guid!' })
    .then(() => null)
    .catch((e: unknown) => e);
  t.ok(err instanceof ConfigError, 'a ConfigError');
  t.equal((err as ConfigError).issues[0]?.path, 'tenantId');
  t.match((err as Error).message, /tenantId: "not a guid!" is not a tenant id/);
});

t.test('a busy port comes back as the ListenError startEdge throws', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const port = (holder.address() as AddressInfo).port;
  const err = await startEdgeThread({ stateDir: join(tmp.dir, 'edge'), tls: false, port })
    .then((e) => e.close({ graceMs: 0 }).then(() => null))
    .catch((e: unknown) => e);
  t.ok(err instanceof ListenError, 'a ListenError');
  t.match(err, { code: 'GSA_ERR_LISTEN', errno: 'EADDRINUSE', what: 'edge', port });
  t.match(
    (err as Error).message,
    /^the edge cannot listen on 127\.0\.0\.1:\d+: the port is in use/,
  );
});

t.test('close() ends the thread and frees the port', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const edge = await startEdgeThread({
    stateDir: join(tmp.dir, 'edge'),
    tls: false,
    persistKey: false,
  });
  const port = Number(new URL(edge.url).port);
  const t0 = Date.now();
  await edge.close({ graceMs: 0 });
  // Ending on its own takes well under the 5 s after which close() terminates the thread.
  t.ok(Date.now() - t0 < 3000, `closed in ${Date.now() - t0} ms`);
  await edge.close({ graceMs: 0 });
  const refused = await new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
  t.ok(refused, 'nothing listens on the edge port any more');
});

t.test('an edge thread that dies is reported once, through onExit', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const errors: Error[] = [];
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  const edge = await startEdgeThread(
    { stateDir: join(tmp.dir, 'edge') },
    (err) => errors.push(err),
    new URL(`../fixtures/edge-thread/crash-after-ready.${ext}`, import.meta.url),
  );
  t.equal(edge.url, 'http://127.0.0.1:1', 'started');
  t.ok(await until(() => errors.length > 0, 5000), 'onExit was called');
  await delay(200);
  t.equal(errors.length, 1, 'once, for the error and the exit together');
  t.match(errors[0]!.message, /edge bug on purpose/);
  await edge.close({ graceMs: 0 });
  t.equal(errors.length, 1, 'close() after the death reports nothing more');
});
