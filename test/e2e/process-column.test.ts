/**
 * The process column of proxy flows (Linux): real child processes (curl, and a node child
 * with its own process title) connect through the client's SOCKS5 and HTTP proxies on
 * loopback, and the flow table, the admin API and `gsa-emu flows`' table name them and
 * their pid. The destination is a server on 127.0.0.1 that holds each response until the
 * test has seen the process, so the client socket is alive while it is looked up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { formatFlows } from '../../src/client/format.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import { tempDir } from '../edge/helpers.js';
import { collect, until } from './helpers.js';

const CURL = '/usr/bin/curl';

if (process.platform !== 'linux') {
  t.plan(0, 'the process lookup reads /proc: Linux only');
} else {
  let edge: Edge;
  let client: RunningClient;
  let port: number;
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    res.on('error', () => {});
    if (req.url === '/hold') held.push(res);
    else res.end('ok\n');
  });
  const release = (): void => {
    for (const r of held.splice(0)) r.end('released\n');
  };
  /** Answers the held request once it has arrived (the flow may open before it does). */
  const releaseHeld = async (): Promise<void> => {
    await until(() => held.length > 0, 'the held request').catch(() => {});
    release();
  };

  t.before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    const tmp = await tempDir();
    t.teardown(tmp.remove);
    edge = await startEdge({
      stateDir: join(tmp.dir, 'edge'),
      tls: false,
      // A private app (Quick Access *.contoso.test) served by the test server: tunneled.
      // (Quick Access covers port 8000; the edge maps the name to the test server.)
      connectorHosts: { 'hold.contoso.test:8000': `127.0.0.1:${port}` },
    });
    client = await startClient({
      edge: { url: edge.url },
      tenant: 'edge',
      listen: { socksPort: 0, httpPort: 0, pacPort: null, adminPort: 0 },
      resolver: { system: false },
    });
  });
  t.teardown(async () => {
    release();
    await client?.close();
    await edge?.close({ graceMs: 0 });
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** The flow of process `pid` through the `capture` proxy to the test server. */
  const flowOf = (capture: 'socks' | 'http', pid: number): Promise<FlowRecord> =>
    until(
      () =>
        client.flows
          .list()
          .filter((f) => f.capture === capture && f.destinationPort === port)
          .find((f) => f.processId === pid),
      `a ${capture} flow of pid ${pid}`,
      10_000,
    );

  /** curl through a proxy (`flag proxy`), bounded to 15 s. */
  const curl = (flag: string, proxy: string, url: string): ChildProcess =>
    spawn(CURL, ['-sS', '--max-time', '15', flag, proxy, url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  const ok = (c: ChildProcess, name: string): Promise<void> =>
    collect(c, 15_000).then((r) => {
      if (r.code !== 0) throw new Error(`${name} exited ${r.code}: ${r.err}`);
    });

  t.test(
    'curl through SOCKS5 shows as curl with its pid',
    { skip: !existsSync(CURL) },
    async (t) => {
      const c = curl('--socks5', client.addresses.socks!, `http://127.0.0.1:${port}/hold`);
      const done = ok(c, 'curl');
      const f = await flowOf('socks', c.pid!).finally(releaseHeld);
      await done;
      t.equal(f.process, 'curl');
      t.equal(f.processId, c.pid);
      t.equal(f.action, 'Bypass', 'loopback goes direct (Default Bypass)');

      // The admin API and the `gsa-emu flows` table show it too.
      const api = (await (
        await fetch(`http://${client.addresses.admin}/flows`, {
          headers: { authorization: `Bearer ${client.admin!.token}` },
        })
      ).json()) as {
        flows: FlowRecord[];
      };
      const row = api.flows.find((x) => x.flowId === f.flowId);
      t.equal(row?.process, 'curl');
      t.equal(row?.processId, c.pid);
      t.match(formatFlows([f]), new RegExp(`PROCESS[\\s\\S]*curl \\(${c.pid}\\)`));
    },
  );

  t.test(
    'a tunneled flow: the edge log names the process too (initiatingProcessName)',
    { skip: !existsSync(CURL) },
    async (t) => {
      const c = curl(
        '--socks5-hostname',
        client.addresses.socks!,
        'http://hold.contoso.test:8000/hold',
      );
      const done = ok(c, 'curl');
      const f = await until(
        () => client.flows.list().find((x) => x.processId === c.pid),
        `the flow of pid ${c.pid}`,
        10_000,
      ).finally(releaseHeld);
      await done;
      t.equal(f.process, 'curl');
      t.equal(f.action, 'Tunnel', 'a private app: tunneled');
      const r = await until(
        () => edge.logs.all().find((x) => x.connectionId === f.connectionId),
        `the edge's record of ${f.connectionId}`,
      );
      t.equal(r.initiatingProcessName, 'curl', 'sent to the edge after the lookup (META)');
      // The default user, as Entra shapes it: an object id and a sign-in name.
      t.equal(r.userPrincipalName, 'alice@contoso.test', 'UPN');
      t.match(r.userId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'userId');
      t.match(r.deviceId, /^[0-9a-f]{8}-[0-9a-f]{4}-/, 'deviceId');
    },
  );

  t.test('curl through the HTTP proxy shows as curl', { skip: !existsSync(CURL) }, async (t) => {
    const c = curl('-x', `http://${client.addresses.http}`, `http://127.0.0.1:${port}/hold`);
    const done = ok(c, 'curl');
    const f = await flowOf('http', c.pid!).finally(releaseHeld);
    await done;
    t.equal(f.process, 'curl');
    t.equal(f.processId, c.pid);
  });

  t.test('a node child with its own process title, by raw SOCKS5', async (t) => {
    const [host, sport] = client.addresses.socks!.split(':');
    // SOCKS5 no-auth greeting, CONNECT 127.0.0.1:port, then one HTTP request.
    const script = `
      process.title = 'gsa-probe';
      const s = require('node:net').connect(${Number(sport)}, '${host}');
      let stage = 0;
      s.on('data', (d) => {
        if (stage === 0) { stage = 1; s.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, ${port >> 8}, ${port & 0xff}])); }
        else if (stage === 1) { stage = 2; s.write('GET /hold HTTP/1.0\\r\\n\\r\\n'); }
        else if (String(d).includes('released')) s.end();
      });
      s.on('close', () => process.exit(0));
      s.write(Buffer.from([5, 1, 0]));
      setTimeout(() => process.exit(3), 15000).unref();
    `;
    const c = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const done = ok(c, 'node child');
    const f = await flowOf('socks', c.pid!).finally(releaseHeld);
    await done;
    t.equal(f.process, 'gsa-probe');
    t.equal(f.processId, c.pid);
  });

  t.test(
    'with processLookup false the column stays empty',
    { skip: !existsSync(CURL) },
    async (t) => {
      const off = await startClient({
        edge: { url: edge.url },
        tenant: 'edge',
        listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
        resolver: { system: false },
        processLookup: false,
      });
      t.teardown(() => off.close());
      const r = await collect(
        spawn(
          CURL,
          [
            '-sS',
            '--max-time',
            '10',
            '--socks5',
            off.addresses.socks!,
            `http://127.0.0.1:${port}/`,
          ],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        ),
        15_000,
      );
      t.equal(r.code, 0);
      const f = await until(
        () => off.flows.list().find((x) => x.destinationPort === port && x.endTime !== null),
        'the flow',
      );
      await new Promise((r) => setTimeout(r, 200));
      t.equal(f.process, null);
      t.equal(f.processId, undefined);
    },
  );
}
