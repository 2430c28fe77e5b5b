/**
 * A proxy flow that ends before the client found its process: the OPEN says the lookup is
 * pending, the edge holds the flow's traffic-log record, and the client's late META names
 * the process (or says it was not found), which releases the record at once. The /proc the
 * client reads is a fake tree the test writes, so the lookup's answer and its timing are the
 * test's: the first scan runs on a decoy connection, and the next one may not start before
 * `minIntervalMs` later, after the flow under test has ended. Everything is on 127.0.0.1.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { SocksClient } from 'socks';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { fakeProc, tcpLine } from '../client/fake-proc.js';
import { delay } from '../edge/helpers.js';
import { edgeWithPongApp, until } from './helpers.js';

/**
 * Scans at most this often; the flow under test ends well inside it. The edge waits
 * PROCESS_WAIT_MS for a late META: both are longer than the defaults (700 ms, 1.5 s) so
 * that a loaded machine's stall does not blur "released by the META" and "by the wait".
 */
const SCAN_INTERVAL_MS = 2000;
const PROCESS_WAIT_MS = 10_000;

t.test('late process: named or not found after the flow, the edge logs it at once', async (t) => {
  const proc = fakeProc(t);
  proc.tcp('');
  proc.tcp6('');

  // The private app answers one line and closes.
  const edge = await edgeWithPongApp(t, 'late.contoso.test:8000', {
    egress: { processWaitMs: PROCESS_WAIT_MS },
  });
  const client = await startClient({
    edge: { url: edge.url },
    tenant: 'edge',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    resolver: { system: false },
    processLookup: {
      enabled: true,
      procRoot: proc.root,
      minIntervalMs: SCAN_INTERVAL_MS,
      // The fake tree names the socket: read its net/tcp, not the kernel (sock_diag).
      inodeOf: null,
      timeoutMs: 5000,
      cacheMs: 0,
    },
  });
  t.teardown(() => client.close());
  await client.waitConnected(5000);
  const socksPort = client.socks!.address.port;

  /** One short tunneled flow: connect, ping, pong, close. Returns its client port. */
  const shortFlow = async (): Promise<number> => {
    const { socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: socksPort, type: 5 },
      command: 'connect',
      destination: { host: 'late.contoso.test', port: 8000 },
      timeout: 5000,
    });
    const port = socket.localPort!;
    socket.write('ping\n');
    await once(socket, 'end');
    socket.destroy();
    return port;
  };
  const flowOf = (port: number) =>
    until(
      () => client.flows.list().find((f) => f.sourcePort === port && f.status !== 'Active'),
      `the ended flow from port ${port}`,
    );
  const edgeRecord = (connectionId: string) =>
    edge.logs.waitFor((r) => r.connectionId === connectionId, 5000);
  /** A connection the proxy accepts and that goes nowhere: it starts a scan. */
  const decoy = async (): Promise<void> => {
    const s = connect(socksPort, '127.0.0.1');
    await once(s, 'connect');
    s.destroy();
  };

  for (const found of [true, false]) {
    const what = found ? 'found' : 'not found';
    // Start a scan now, so that the next one cannot come before SCAN_INTERVAL_MS.
    await decoy();
    await delay(100);
    const t0 = Date.now();
    const port = await shortFlow();
    const flow = await flowOf(port);
    t.ok(Date.now() - t0 < SCAN_INTERVAL_MS - 500, `${what}: the flow ended before the next scan`);
    t.equal(flow.action, 'Tunnel');
    t.equal(flow.process, null, `${what}: no process yet`);
    t.notOk(
      edge.logs.all().some((r) => r.connectionId === flow.connectionId),
      `${what}: the edge holds the record`,
    );
    if (found) {
      // The socket "still exists" in the fake /proc, owned by pid 31.
      proc.tcp(tcpLine(0, port, socksPort, 4242));
      proc.proc(31, 'lateapp', [4242]);
    }
    const rec = await edgeRecord(flow.connectionId);
    const waited = Date.now() - t0;
    // The scan comes at most SCAN_INTERVAL_MS after the decoy; the edge alone would wait
    // PROCESS_WAIT_MS after the flow ended.
    t.ok(waited < PROCESS_WAIT_MS / 2, `${what}: released by the META (${waited} ms)`);
    t.equal(rec.initiatingProcessName, found ? 'lateapp' : null, `${what}: the edge's name`);
    t.equal(
      client.flows.get(flow.flowId)?.process ?? null,
      found ? 'lateapp' : null,
      `${what}: the client's`,
    );
    if (found) {
      proc.tcp('');
      proc.exit(31);
    }
  }
});
