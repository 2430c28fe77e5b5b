/**
 * `gsa-emu up` through its command function (in-process edge + demo servers on loopback):
 * banner, state file, a locked toggle refused through the admin API the state file names,
 * `--once` and `--exit-after`.
 */
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { flowsText } from '../../src/cli/commands/flows.js';
import { up } from '../../src/cli/commands/up.js';
import { adminCall, adminTarget } from '../../src/client/admin-client.js';
import { statusView } from '../../src/client/diagnostics.js';
import { formatFlowLine, formatStatus } from '../../src/client/format.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import { loadTenantFile } from '../../src/policy/tenant-file.js';
import { TEST_OVERVIEW } from '../client/helpers.js';
import { startUp, upOnce } from '../util/up-in-process.js';

t.test(
  'up --once prints tiles, addresses and examples, then stops and removes client.json',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-up-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const text = await upOnce({ stateDir: dir });
    t.match(text, /Global Secure Access Connected/);
    t.match(text, /Microsoft 365\s+ON\s+on\s+user\s+EnableGSA=2/);
    t.match(text, /SOCKS5\s+127\.0\.0\.1:\d+/);
    t.match(text, /curl --socks5-hostname 127\.0\.0\.1:\d+ http:\/\/intranet\.contoso\.test\//);
    t.notOk(existsSync(join(dir, 'client.json')), 'state file removed at exit');
    t.ok(existsSync(join(dir, 'logs', 'client.log')));
  },
);

t.test(
  'up --plain-edge: the in-process edge speaks http/ws; not with a remote --edge',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-up-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const text = await upOnce({ stateDir: dir, plainEdge: true });
    t.match(text, /Global Secure Access Connected/, 'the client connected over plain ws');
    t.match(text, /edge http:\/\/127\.0\.0\.1:\d+ \(in-process/, 'the edge URL is http');
    await t.rejects(
      up({ stateDir: dir, once: true, tty: false, plainEdge: true, edge: 'https://127.0.0.1:1' }),
      { code: 'GSA_ERR_USAGE', message: /--plain-edge is for the in-process edge/ },
    );
    const tls = await upOnce({ stateDir: dir });
    t.match(tls, /edge https:\/\/127\.0\.0\.1:\d+ \(in-process/, 'TLS by default');
  },
);

t.test(
  'up --edge-thread: the in-process edge on its own thread; not with a remote --edge',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-up-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const text = await upOnce({ stateDir: dir, edgeThread: true });
    t.match(text, /Global Secure Access Connected/, 'the client connected to the thread edge');
    t.match(text, /edge https:\/\/127\.0\.0\.1:\d+ \(in-process on its own thread/);
    await t.rejects(
      up({ stateDir: dir, once: true, tty: false, edgeThread: true, edge: 'https://127.0.0.1:1' }),
      { code: 'GSA_ERR_USAGE', message: /--edge-thread is for the in-process edge/ },
    );
  },
);

t.test('up with a locked internet tile (client config file) and --exit-after', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-up-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'gsa.json');
  await import('node:fs/promises').then((fs) =>
    fs.writeFile(
      cfg,
      JSON.stringify({
        EnableGSA: 2,
        EnableGSAPrivateChannel: 1,
        EnableGSAInternetChannel: 3,
        SilentOnboard: true,
      }),
    ),
  );
  const u = startUp({
    stateDir: dir,
    socksPort: '0',
    httpPort: '0',
    clientConfig: cfg,
    exitAfter: '3',
    tty: false,
  });
  for (let i = 0; i < 200 && !existsSync(join(dir, 'client.json')); i++)
    await new Promise((r) => setTimeout(r, 25));
  const state = JSON.parse(readFileSync(join(dir, 'client.json'), 'utf8')) as {
    admin: string;
    adminToken: string;
  };
  t.ok(state.admin, 'admin address in client.json');
  t.match(state.adminToken, /^[\w-]{43}$/, 'and its token');
  const res = await fetch(`http://${state.admin}/toggle`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${state.adminToken}` },
    body: JSON.stringify({ channel: 'internet', on: false }),
  });
  t.equal(res.status, 409, 'level 3 is locked');
  await u.run;
  const { text } = u;
  t.match(text, /Private Access\s+off\s+off\s+user\s+EnableGSAPrivateChannel=1/);
  t.match(text, /Internet Access\s+ON\s+on\s+admin only \(locked\)/);
  t.match(text, /stopped\. logs: /);
});

t.test('statusView states and the one-line flow format', async (t) => {
  const tiles = createClientTiles(defaultClientConfig());
  const base = {
    overview: TEST_OVERVIEW,
    tenant: { tenantId: 't', name: 'n', profiles: [] as never[] },
    profileSource: 'x',
    profileLoadedAt: null,
    generation: 0,
    tiles: tiles.snapshot(),
    tunnelUp: () => true,
    tunnelDetail: () => 'up',
    tokenAt: 1,
    tokenError: null,
    listeners: {},
    activeFlows: 0,
  };
  t.equal(statusView(base).state, 'Disabled by your organization', 'no enabled profile');
  t.equal(statusView({ ...base, tenant: null }).state, 'Initializing');
  t.equal(statusView({ ...base, tenant: null }).overview.forwardingProfileId, null);
  const one = loadTenantFile(undefined).tenant;
  const two = { ...one, profiles: one.profiles.slice(1) };
  const id1 = statusView({ ...base, tenant: one }).overview.forwardingProfileId;
  t.match(id1, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  t.equal(statusView({ ...base, tenant: { ...one } }).overview.forwardingProfileId, id1);
  t.not(
    statusView({ ...base, tenant: two }).overview.forwardingProfileId,
    id1,
    'new rules, new id',
  );
  t.match(
    formatStatus(statusView({ ...base, tenant: one })),
    new RegExp(`user: u; device: d; forwarding profile: ${id1}, last checked -; gsa-emu 0`),
  );
  const rec = {
    flowId: '7',
    connectionId: 'c-1',
    beginTime: Date.UTC(2026, 0, 1, 10, 0, 0),
    endTime: null,
    status: 'Active',
    protocol: 'tcp',
    destinationFqdn: 'outlook.office365.com',
    destinationIp: null,
    destinationPort: 443,
    sourceIp: '127.0.0.1',
    sourcePort: 5000,
    process: null,
    bytesSent: 0,
    bytesReceived: 0,
    channel: 'm365',
    ruleId: 'r',
    action: 'Tunnel',
    hardening: 'N',
    capture: 'socks',
    reason: '',
    drops: 0,
  } satisfies FlowRecord;
  const line = formatFlowLine(rec);
  t.equal(line, '10:00:00Z tcp outlook.office365.com:443 -> Tunnel m365 [socks flow 7 conn c-1]');
  // flows --wide: every Traffic tab column, the connection id whole; times say UTC.
  const conn = '0fc46689-1111-4222-8333-444455556666';
  const closed = {
    ...rec,
    connectionId: conn,
    endTime: Date.UTC(2026, 0, 1, 10, 0, 2),
    status: 'Closed' as const,
  };
  const [head, row] = flowsText([closed], { limit: 5, wide: true }).split('\n');
  t.match(
    head,
    /^BEGIN +END +STATUS +PROTO +FQDN +IP +PORT +SPORT +CONNECTION ID +PROCESS +SENT +RECV +CHANNEL +FLOW +RULE ID +ACTION +H +VIA +REASON$/,
  );
  t.match(
    row,
    new RegExp(
      `^10:00:00Z 10:00:02Z Closed +TCP +outlook\\.office365\\.com +443 +5000 +${conn} +- +0 +0 +m365 +7 +r +Tunnel +N socks`,
    ),
  );
  t.notMatch(flowsText([closed], { limit: 5 }), conn, 'the narrow table shortens the id');
});

t.test(
  'up looks up the process behind proxy flows unless --no-process-lookup',
  { skip: process.platform === 'linux' ? false : 'the process lookup reads /proc (Linux only)' },
  async (t) => {
    for (const lookup of [true, false]) {
      const dir = await mkdtemp(join(tmpdir(), 'gsa-up-proc-'));
      t.teardown(() => rm(dir, { recursive: true, force: true }));
      const run = up(
        {
          stateDir: dir,
          socksPort: '0',
          httpPort: '0',
          exitAfter: '4',
          tty: false,
          ...(lookup ? {} : { processLookup: false }),
        },
        new PassThrough(),
      );
      for (let i = 0; i < 200 && !existsSync(join(dir, 'client.json')); i++)
        await new Promise((r) => setTimeout(r, 25));
      const state = JSON.parse(readFileSync(join(dir, 'client.json'), 'utf8')) as {
        admin: string;
        adminToken: string;
        socks: string;
      };
      // A SOCKS5 CONNECT from this process to the admin API's port (127.0.0.0/8: bypassed).
      const [sh, sp] = state.socks.split(':');
      const [, ap] = state.admin.split(':');
      const sock = net.connect(Number(sp), sh);
      await once(sock, 'connect');
      sock.write(Buffer.from([5, 1, 0]));
      await once(sock, 'data');
      sock.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, Number(ap) >> 8, Number(ap) & 255]));
      await once(sock, 'data');
      let flow: { process: string | null; processId?: number | null } | undefined;
      for (let i = 0; i < 40; i++) {
        const flows = (await (
          await fetch(`http://${state.admin}/flows`, {
            headers: { authorization: `Bearer ${state.adminToken}` },
          })
        ).json()) as {
          flows: Array<{
            destinationPort: number;
            process: string | null;
            processId?: number | null;
          }>;
        };
        flow = flows.flows.find((f) => f.destinationPort === Number(ap));
        if (flow && (!lookup || flow.process)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      sock.destroy();
      t.ok(flow, `${lookup ? 'default' : '--no-process-lookup'}: the flow is in /flows`);
      if (lookup) {
        t.equal(flow?.processId, process.pid, 'default: the flow names this process');
        t.ok(flow?.process, `default: process name ${flow?.process}`);
      } else {
        t.equal(flow?.process ?? null, null, '--no-process-lookup: no process');
      }
      await run;
    }
  },
);

t.test(
  'POST /shutdown (gsa-emu stop) takes the path of Ctrl+C; the banner names the token file',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-up-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const u = startUp({
      stateDir: dir,
      socksPort: '0',
      httpPort: '0',
      exitAfter: '60',
      tty: false,
      processLookup: false,
    });
    await u.waitFor('Ctrl+C to stop.');
    const tokenFile = join(dir, 'client.token');
    t.match(u.text, `\n            token in ${tokenFile} (send "Authorization: Bearer <token>")\n`);
    const target = adminTarget(dir);
    t.equal(
      target.token,
      readFileSync(tokenFile, 'utf8').trim(),
      'client.json and client.token agree',
    );
    const r = await adminCall<{ pid: number; stopping: boolean }>(target, 'POST', '/shutdown', {
      pid: process.pid,
    });
    t.same(r, { pid: process.pid, stopping: true });
    const t0 = Date.now();
    await u.run;
    t.ok(Date.now() - t0 < 20_000, 'up returned (not at --exit-after)');
    t.match(u.text, /stopping\.\.\.\nstopped\. logs: /, 'the clean shutdown of Ctrl+C');
    t.notOk(existsSync(join(dir, 'client.json')), 'client.json removed');
    t.notOk(existsSync(tokenFile), 'and the token file');
    t.notOk(existsSync(join(dir, 'up.lock')), 'and the lock');
  },
);
