/**
 * End to end on loopback: the demo servers, the real edge (startEdge, TLS, tokens, Graph
 * profiles, egress, web filtering, traffic log) and the real client (startClient: tunnels,
 * classifier from the edge's profiles, forwarder, SOCKS5/HTTP/PAC, admin API). Clients:
 * curl (SOCKS5 --socks5-hostname and HTTP proxy), undici ProxyAgent, and the `socks` npm
 * client for UDP ASSOCIATE. Each flow must take the path the classifier chose, checked on
 * the client's flow table, on the edge's traffic log (same connection id) and on the
 * destination server (peer 127.0.0.1 = the edge; 127.0.0.3 = the client's direct socket).
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { SocksClient } from 'socks';
import t from 'tap';
import { fetch, ProxyAgent, request } from 'undici';
import { type RunningClient, startClient } from '../../src/client/client.js';
import type { Demo } from '../../src/client/demo.js';
import type { Edge } from '../../src/edge/server.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import { startTestWorld, type TestWorld, until } from './helpers.js';

const CURL = '/usr/bin/curl';

function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      CURL,
      ['-sS', '--max-time', '10', ...args],
      { timeout: 15_000 },
      (err, out, errOut) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({
          code: typeof code === 'number' ? code : 1,
          out: String(out),
          err: String(errOut),
        });
      },
    );
  });
}

let w: TestWorld;
let demo: Demo;
let edge: Edge;
let client: RunningClient;
let S: string; // socks host:port
let H: string; // http proxy host:port
let A: string; // admin base URL

t.before(async () => {
  w = await startTestWorld({
    prefix: 'gsa-e2e-',
    listen: { socksPort: 0, httpPort: 0, pacPort: 0, adminPort: 0 },
  });
  ({ demo, edge, client } = w);
  S = client.addresses.socks!;
  H = client.addresses.http!;
  A = `http://${client.addresses.admin}`;
});

/** fetch on the admin API (`url` under A), with the client's token. */
function adminFetch(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  return fetch(url, {
    ...init,
    headers: { ...init.headers, authorization: `Bearer ${client.admin!.token}` },
  });
}

t.teardown(() => w?.close());

const flowTo = (host: string, proto: 'tcp' | 'udp' = 'tcp'): FlowRecord | undefined =>
  w.flowTo(host, proto);
const closedFlow = (host: string) => w.closedFlow(host);
const edgeRecord = (connectionId: string) => w.edgeRecord(connectionId);

t.test('status: Connected, every channel up, profile from the edge', async (t) => {
  const st = (await (await adminFetch(`${A}/status`)).json()) as {
    state: string;
    channels: Array<{ channel: string; up: boolean }>;
    tenantId: string;
    overview: Record<string, string | null>;
  };
  t.equal(st.state, 'Connected');
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  t.match(
    st.overview,
    {
      userPrincipalName: 'alice@contoso.test',
      userId: /^[0-9a-f-]{36}$/,
      deviceId: /^[0-9a-f-]{36}$/,
      tenantId: edge.tenantId,
      forwardingProfileId: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      clientVersion: pkg.version,
    },
    'the Overview tab: user, device, tenant, forwarding profile id, client version',
  );
  // "Last checked" follows the profile polls (every 30 s by default), not the last change.
  const checked = Date.parse(st.overview.lastChecked ?? '');
  await client.refreshProfiles();
  const again = (await (await adminFetch(`${A}/status`)).json()) as typeof st;
  t.ok(Date.parse(again.overview.lastChecked ?? '') > checked, 'a poll moves last checked');
  t.equal(
    again.overview.forwardingProfileId,
    st.overview.forwardingProfileId,
    'same profile, same id',
  );
  t.ok(
    st.channels.every((c) => c.up),
    'Entra + 3 channels up',
  );
  t.equal(st.tenantId, edge.tenantId);
  const prof = (await (await adminFetch(`${A}/profile`)).json()) as {
    profiles: Array<{ type: string; rules: unknown[] }>;
  };
  t.same(
    prof.profiles.map((p) => p.type),
    ['m365', 'private', 'internet'],
  );
  t.ok(prof.profiles.every((p) => p.rules.length > 0));
});

t.test('M365 over SOCKS5 (curl --socks5-hostname, HTTPS): tunneled on m365', async (t) => {
  const r = await curl([
    '--socks5-hostname',
    S,
    '--cacert',
    demo.caFile,
    'https://outlook.office365.com/mail',
  ]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /gsa-emu demo: https:\/\/outlook\.office365\.com\/mail/);
  t.match(r.out, /peer: 127\.0\.0\.1:\d+, from the GSA edge/);
  const f = await until(
    () => flowTo('outlook.office365.com')?.status === 'Closed' && flowTo('outlook.office365.com'),
    'flow closed',
  );
  t.equal(f.action, 'Tunnel');
  t.equal(f.channel, 'm365');
  t.equal(f.capture, 'socks');
  t.ok(f.bytesSent > 0 && f.bytesReceived > 0);
  const rec = await edgeRecord(f.connectionId);
  t.equal(rec.trafficType, 'microsoft365');
  t.equal(rec.destinationFQDN, 'outlook.office365.com');
  t.equal(rec.action, 'allow');
  t.equal(rec.sourcePort, f.sourcePort, 'the edge logs the app source port the client captured');
});

t.test(
  'private app over SOCKS5 (plain HTTP): tunneled on private through the connector',
  async (t) => {
    const r = await curl(['--socks5-hostname', S, 'http://intranet.contoso.test/wiki']);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /from the GSA edge/);
    const f = await closedFlow('intranet.contoso.test');
    t.equal(f.channel, 'private');
    const rec = await edgeRecord(f.connectionId);
    t.equal(rec.trafficType, 'private');
    t.equal(demo.hits.at(-1)!.peer, '127.0.0.1');
  },
);

t.test(
  'internet site through the HTTP proxy (CONNECT): acquired by address, tunneled on internet',
  async (t) => {
    const r = await curl([
      '-x',
      `http://${H}`,
      '--cacert',
      demo.caFile,
      'https://www.example.test/',
    ]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /from the GSA edge/);
    const f = await closedFlow('www.example.test');
    t.equal(f.action, 'Tunnel');
    t.equal(f.channel, 'internet');
    t.equal(f.capture, 'http');
    t.equal((await edgeRecord(f.connectionId)).trafficType, 'internet');
    // news.test matches no name rule: resolved (client view 6.6.254.11) and acquired by the
    // Default Acquire rule (0.0.0.0/0, TCP 80/443); the edge still connects by name.
    const r2 = await curl(['-x', `http://${H}`, '--cacert', demo.caFile, 'https://news.test/']);
    t.equal(r2.code, 0, r2.err);
    t.match(r2.out, /from the GSA edge/);
    const g = await closedFlow('news.test');
    t.equal(g.channel, 'internet');
    t.equal(g.destinationIp, '6.6.254.11', 'classified by the address the name resolves to');
    t.match(
      client
        .profile()
        .profiles.find((p) => p.type === 'internet')!
        .rules.find((x) => x.ruleId === g.ruleId)!.destination,
      '0.0.0.0/0',
    );
  },
);

t.test('bypassed name: direct from the client (peer 127.0.0.3), nothing at the edge', async (t) => {
  const before = edge.logs.all().length;
  const r = await curl(['--socks5-hostname', S, 'http://bypass.example.test/']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /peer: 127\.0\.0\.3:\d+, direct from the client/);
  const f = await closedFlow('bypass.example.test');
  t.equal(f.action, 'Bypass');
  t.equal(f.status, 'Bypassed');
  t.equal(f.channel, null);
  t.equal(f.destinationIp, '127.0.0.1', 'the address the dial map sent the name to');
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(
    edge.logs
      .all()
      .slice(before)
      .some((x) => x.connectionId === f.connectionId),
  );
});

t.test(
  'blocked name: edge web filtering -> SOCKS 0x02 and HTTP 403, same connection id',
  async (t) => {
    const r = await curl(['--socks5-hostname', S, 'http://casino.test/']);
    t.not(r.code, 0);
    t.match(r.err, /not allowed|ruleset|\(2\)/i, 'SOCKS reply 0x02');
    const f = await until(() => flowTo('casino.test'), 'flow');
    t.equal(f.status, 'Terminated');
    // The edge's own reason, not the tunnel's wording of its RST ("stream reset by peer").
    const why = 'web content filtering: casino.test is in blocked category gambling';
    t.equal(f.reason, why, 'the flow says why the edge blocked it');
    const rec = await edgeRecord(f.connectionId);
    t.equal(rec.action, 'block');
    const h = await curl(['-x', `http://${H}`, '-i', 'http://casino.test/']);
    t.match(h.out, /^HTTP\/1\.1 403 /);
    t.match(h.out, `\r\n\r\nBlocked by Global Secure Access at the edge: ${why}\n`);
    const cid = /x-gsa-connection-id: ([0-9a-f-]+)/i.exec(h.out)?.[1];
    t.ok(cid);
    t.equal((await edgeRecord(cid!)).action, 'block');
    t.equal(
      demo.hits.filter((x) => x.host === 'casino.test').length,
      0,
      'the site was never reached',
    );
  },
);

t.test(
  'blocked name dialed by address: the edge filters on the TLS SNI and the HTTP Host',
  async (t) => {
    // curl resolves the name itself (--socks5, --resolve): the OPEN carries only the address.
    const ip = '6.6.254.12';
    const hitsBefore = demo.hits.length;
    const recordFor = async (port: number) => {
      const f = await until(
        () =>
          client.flows
            .list()
            .filter(
              (x) => x.destinationIp === ip && x.destinationPort === port && !x.destinationFqdn,
            )
            .find((x) => x.endTime !== null),
        `closed flow to ${ip}:${port}`,
      );
      t.equal(f.action, 'Tunnel', 'the client tunnels it: no name to block on');
      t.equal(f.channel, 'internet');
      t.match(
        f.reason,
        /^stream reset by the edge: BLOCKED \(web content filtering: casino\.test /,
      );
      return edgeRecord(f.connectionId);
    };
    const tls = await curl([
      '--socks5',
      S,
      '-k',
      '--resolve',
      `casino.test:443:${ip}`,
      'https://casino.test/',
    ]);
    t.not(tls.code, 0, 'the TLS handshake is reset');
    const recTls = await recordFor(443);
    t.equal(recTls.action, 'block');
    t.equal(recTls.destinationFQDN, 'casino.test', 'named from the SNI');
    t.equal(recTls.destinationIp, ip);
    t.match(recTls.failureReason, /casino\.test is in blocked category gambling \(TLS SNI\)/);
    const http = await curl([
      '--socks5',
      S,
      '--resolve',
      `casino.test:80:${ip}`,
      'http://casino.test/',
    ]);
    t.not(http.code, 0, 'the request is reset');
    const recHttp = await recordFor(80);
    t.equal(recHttp.action, 'block');
    t.match(recHttp.failureReason, /\(HTTP Host\)/);
    t.equal(demo.hits.length, hitsBefore, 'the site was never reached');
    // The same address with another name in the SNI goes through (no blocked name).
    const ok = await curl([
      '--socks5',
      S,
      '-k',
      '--resolve',
      `www.example.test:443:${ip}`,
      'https://www.example.test/',
    ]);
    t.equal(ok.code, 0, ok.err);
  },
);

t.test('undici ProxyAgent (CONNECT) to SharePoint and plain HTTP through the proxy', async (t) => {
  const agent = new ProxyAgent({
    uri: `http://${H}`,
    requestTls: { ca: await import('node:fs').then((fs) => fs.readFileSync(demo.caFile, 'utf8')) },
  });
  t.teardown(() => agent.close());
  const res = await request('https://contoso.sharepoint.com/sites/x', { dispatcher: agent });
  t.equal(res.statusCode, 200);
  t.match(await res.body.text(), /from the GSA edge/);
  const f = await until(() => flowTo('contoso.sharepoint.com'), 'flow');
  t.equal(f.channel, 'm365');
  const plain = new ProxyAgent({ uri: `http://${H}`, proxyTunnel: false });
  t.teardown(() => plain.close());
  const r2 = await fetch('http://news.test/today', { dispatcher: plain });
  t.equal(r2.status, 200);
  t.match(await r2.text(), /gsa-emu demo: http:\/\/news\.test\/today[\s\S]*from the GSA edge/);
  const pac = await (await fetch(`${client.addresses.pac}`)).text();
  t.match(pac, new RegExp(`SOCKS5 ${S.replace(/\./g, '\\.')}; PROXY ${H.replace(/\./g, '\\.')}`));
});

t.test('RDP app segment by address (127.77.0.5:3389) tunneled on private', async (t) => {
  const info = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: Number(S.split(':')[1]), type: 5 },
    command: 'connect',
    destination: { host: '127.77.0.5', port: 3389 },
  });
  info.socket.write('rdp-hello');
  const [echo] = await once(info.socket, 'data');
  t.equal(String(echo), 'rdp-hello');
  info.socket.destroy();
  const f = await until(
    () => client.flows.list().find((x) => x.destinationIp === '127.77.0.5'),
    'flow',
  );
  t.equal(f.channel, 'private');
});

t.test(
  'UDP ASSOCIATE: EXO QUIC relayed, other QUIC dropped, private UDP app tunneled',
  async (t) => {
    const sc = new SocksClient({
      proxy: { host: '127.0.0.1', port: Number(S.split(':')[1]), type: 5 },
      command: 'associate',
      destination: { host: '0.0.0.0', port: 0 },
    });
    const est = once(sc, 'established');
    sc.connect();
    const [info] = (await est) as [{ socket: Socket; remoteHost: { host: string; port: number } }];
    t.teardown(() => info.socket.destroy());
    const u = createSocket('udp4');
    u.bind(0, '127.0.0.1');
    await once(u, 'listening');
    t.teardown(() => u.close());
    const got: Array<{ host: string; data: string }> = [];
    u.on('message', (m) => {
      const p = SocksClient.parseUDPFrame(m);
      got.push({ host: p.remoteHost.host, data: p.data.toString() });
    });
    const send = (host: string, port: number, data: string) =>
      u.send(
        SocksClient.createUDPFrame({ remoteHost: { host, port }, data: Buffer.from(data) }),
        info.remoteHost.port,
        info.remoteHost.host,
      );
    const dropsBefore = client.flows.counters.drops.get('quic') ?? 0;
    send('outlook.office365.com', 443, 'quic-exo');
    send('www.example.test', 443, 'quic-web');
    send('news.test', 443, 'quic-news');
    send('udp-echo.contoso.test', 7000, 'private-udp');
    await until(() => got.length >= 2, 'two UDP replies');
    await new Promise((r) => setTimeout(r, 100));
    t.same(got.map((g) => g.data).sort(), ['echo(private): private-udp', 'echo(quic): quic-exo']);
    t.equal(
      (client.flows.counters.drops.get('quic') ?? 0) - dropsBefore,
      2,
      'non-EXO QUIC dropped',
    );
    const exo = flowTo('outlook.office365.com', 'udp')!;
    t.equal(exo.channel, 'm365');
    t.equal(flowTo('www.example.test', 'udp')!.action, 'Drop');
    t.equal(flowTo('udp-echo.contoso.test', 'udp')!.channel, 'private');
    t.equal(
      demo.udpHits.filter((h) => h.server === 'quic').length,
      1,
      'only EXO QUIC reached a server',
    );
    const metrics = await (await adminFetch(`${A}/metrics`)).text();
    t.match(metrics, /gsa_client_drops_total\{reason="quic"\} [1-9]/);
    t.match(metrics, /gsa_client_session_up\{channel="m365"\} 1/);
    // Every counter is named *_total (OpenMetrics; promtool's lint).
    const counters = [...metrics.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!);
    t.ok(counters.length > 0, 'some counters');
    t.same(
      counters.filter((n) => !n.endsWith('_total')),
      [],
      'counters end in _total',
    );
  },
);

t.test(
  'toggling the internet channel off makes internet flows bypass; admin-locked toggles are refused',
  async (t) => {
    const off = await adminFetch(`${A}/toggle`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'internet', on: false }),
    });
    t.equal(off.status, 200);
    const r = await curl(['--socks5-hostname', S, 'http://www.example.test/after-toggle']);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /direct from the client/);
    const f = client.flows
      .list()
      .filter((x) => x.destinationFqdn === 'www.example.test')
      .at(-1)!;
    t.equal(f.action, 'Bypass');
    t.equal(f.hardening, 'N');
    // M365 still tunneled.
    const m = await curl(['--socks5-hostname', S, 'http://outlook.office.com/']);
    t.match(m.out, /from the GSA edge/);
    const st = (await (await adminFetch(`${A}/status`)).json()) as {
      state: string;
      notes: string[];
    };
    t.equal(st.state, 'Connected');
    t.ok(st.notes.includes('Internet Access is disabled'));
    await adminFetch(`${A}/toggle`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"channel":"internet","on":true}',
    });

    const cross = await adminFetch(`${A}/toggle`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'http://evil.test' },
      body: '{}',
    });
    t.equal(cross.status, 403, 'cross-origin refused');
    for (const body of ['', '{', 'null', '[]', '42', '"internet"', '{"channel":"internet"}']) {
      const bad = await adminFetch(`${A}/toggle`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      t.equal(bad.status, 400, `toggle body ${JSON.stringify(body)}: 400`);
    }

    const locked = await startClient({
      edge: { url: edge.url, ca: edge.caPem },
      tenant: 'edge',
      clientConfig: {
        enableGSA: 2,
        enableGSAPrivateChannel: 2,
        enableGSAInternetChannel: 3,
        silentOnboard: true,
        enableVPNToggleInApp: false,
        blockUsersFromDisablingAutomaticVPN: true,
      },
      listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
    });
    t.teardown(() => locked.close());
    const res = await fetch(`http://${locked.addresses.admin}/toggle`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${locked.admin!.token}`,
      },
      body: JSON.stringify({ channel: 'internet', on: false }),
    });
    t.equal(res.status, 409);
    const body = (await res.json()) as { error: string; message: string };
    t.equal(body.error, 'GSA_ERR_TOGGLE_LOCKED');
    t.match(body.message, /locked by the administrator/);
  },
);

t.test(
  'hardening: with the edge gone, M365 falls back to bypass and private to block',
  async (t) => {
    const health = (await (await adminFetch(`${A}/health`)).json()) as {
      checks: Array<{ name: string; status: string }>;
    };
    t.ok(
      health.checks.find((c) => c.name === 'Forwarding profile present and valid')?.status ===
        'pass',
    );
    t.ok(health.checks.find((c) => c.name === 'Cached token')?.status === 'pass');
    await edge.kill();
    await until(
      () => !client.tunnels.isUp('m365') && !client.tunnels.isUp('private'),
      'channels down',
    );
    const m = await curl(['--socks5-hostname', S, 'http://outlook.office365.com/offline']);
    t.equal(m.code, 0, m.err);
    t.match(m.out, /direct from the client/);
    const f = client.flows
      .list()
      .filter((x) => x.destinationFqdn === 'outlook.office365.com')
      .at(-1)!;
    t.equal(f.hardening, 'Y');
    t.equal(f.action, 'Bypass');
    const p = await curl(['--socks5-hostname', S, 'http://intranet.contoso.test/']);
    t.not(p.code, 0, 'private access blocked while its edge is unreachable');
    const pf = flowTo('intranet.contoso.test')!;
    t.equal(pf.hardening, 'Y');
    t.equal(pf.action, 'Block');
    // Every channel that forwards is down: the real client's Disconnected.
    const st = (await (await adminFetch(`${A}/status`)).json()) as { state: string };
    t.equal(st.state, 'Disconnected');
  },
);
