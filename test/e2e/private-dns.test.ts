/**
 * Private DNS for single-label names, end to end on loopback with curl through the SOCKS5
 * and HTTP proxies: the client qualifies `fs1` as `fs1.<appId>.globalsecureaccess.local`
 * (the default tenant's file share app), tunnels it on the private channel, and the edge
 * strips the suffix and has the connector resolve `fs1` with its DNS search suffixes (here
 * configured: `lab.test`, then `corp.contoso.test`). Checked on the client's flow table,
 * the edge's traffic log (same connection id) and the demo server.
 */
import { execFile } from 'node:child_process';
import t from 'tap';
import type { RunningClient } from '../../src/client/client.js';
import type { Demo } from '../../src/client/demo.js';
import type { Edge } from '../../src/edge/server.js';
import { startTestWorld, type TestWorld, until } from './helpers.js';

const CURL = '/usr/bin/curl';
const SUFFIX = '0be01cca-76cb-5e88-9948-8a09e00e8f62.globalsecureaccess.local';
const FILE_SHARE_RULE = '1498a3d0-694d-5475-9ac4-7c1191fdbed6';

function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(CURL, ['-sS', '--max-time', '10', ...args], { timeout: 15_000 }, (err, out, e) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, out: String(out), err: String(e) });
    });
  });
}

let w: TestWorld;
let demo: Demo;
let edge: Edge;
let client: RunningClient;
let S: string;
let H: string;

t.before(async () => {
  w = await startTestWorld({
    prefix: 'gsa-private-dns-',
    listen: { socksPort: 0, httpPort: 0, pacPort: null, adminPort: 0 },
    connectorSearch: ['lab.test', 'corp.contoso.test'],
    // fs2 exists only under lab.test; fs1 (the demo's) only under corp.contoso.test.
    connectorHosts: (d) => ({ 'fs2.lab.test:80': `127.0.0.1:${d.httpPort}` }),
  });
  ({ demo, edge, client } = w);
  S = client.addresses.socks!;
  H = client.addresses.http!;
});
t.teardown(() => w?.close());

t.test('SOCKS5: fs1 is qualified, tunneled on private, stripped and resolved', async (t) => {
  const r = await curl(['--socks5-hostname', S, 'http://fs1/share']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^gsa-emu demo: http:\/\/fs1\/share\npeer: 127\.0\.0\.1:\d+, from the GSA edge/);
  const f = await w.closedFlow(`fs1.${SUFFIX}`);
  t.equal(f.action, 'Tunnel');
  t.equal(f.channel, 'private');
  t.equal(f.ruleId, FILE_SHARE_RULE);
  t.equal(f.capture, 'socks');
  const rec = await w.edgeRecord(f.connectionId);
  t.equal(rec.trafficType, 'private');
  t.equal(rec.destinationFQDN, `fs1.${SUFFIX}`, 'the edge logs the name the client sent');
  t.equal(rec.policyRuleId, FILE_SHARE_RULE, "the file share app's segment allowed it");
  t.equal(
    rec.privateAccessDetails?.resolvedDestination,
    `127.0.0.1:${demo.httpPort}`,
    'fs1.corp.contoso.test, the second search suffix',
  );
  t.equal(demo.hits.at(-1)?.host, 'fs1', 'the server saw the name the application used');
});

t.test('HTTP proxy: an upper-case single label, and one only the first suffix has', async (t) => {
  const r = await curl(['-x', `http://${H}`, 'http://FS2/x']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /from the GSA edge/);
  const f = await w.closedFlow(`fs2.${SUFFIX}`);
  t.equal(f.capture, 'http');
  t.equal(f.channel, 'private');
  const rec = await w.edgeRecord(f.connectionId);
  t.equal(rec.privateAccessDetails?.resolvedDestination, `127.0.0.1:${demo.httpPort}`);
});

t.test(
  'a label no search suffix resolves: SOCKS host unreachable, the reason logged',
  async (t) => {
    const r = await curl(['--socks5-hostname', S, 'http://nosuch/']);
    t.not(r.code, 0);
    t.match(r.err, /\(4\)|unreachable/i, 'SOCKS reply 0x04');
    const f = await until(() => {
      const x = w.flowTo(`nosuch.${SUFFIX}`);
      return x?.endTime ? x : undefined;
    }, 'flow');
    t.equal(f.status, 'Terminated');
    t.match(
      f.reason,
      /connector cannot resolve nosuch \(search suffixes: lab\.test, corp\.contoso\.test\)/,
    );
    const rec = await w.edgeRecord(f.connectionId);
    t.equal(rec.operationStatus, 'failure');
    const h = await curl(['-x', `http://${H}`, '-i', 'http://nosuch/']);
    t.match(h.out, /^HTTP\/1\.1 502 /, 'HTTP proxy: 502');
  },
);

t.test('not qualified: a port the app lacks, and the private channel off', async (t) => {
  const before = edge.logs.all().length;
  // TCP 22 is not among the file share's ports: fs1 stays fs1 and nothing acquires it.
  const r = await curl(['--socks5-hostname', S, 'http://fs1:22/']);
  t.not(r.code, 0);
  const f = await until(() => {
    const x = w.flowTo('fs1');
    return x?.endTime ? x : undefined;
  }, 'flow to fs1');
  t.equal(f.channel, null);
  t.equal(f.action, 'Bypass');
  t.equal(edge.logs.all().length, before, 'nothing reached the edge');

  client.toggle('private', false);
  t.teardown(() => {
    client.toggle('private', true);
  });
  const off = await curl(['--socks5-hostname', S, 'http://fs1/off']);
  t.not(off.code, 0, 'bypassed: the host cannot resolve fs1');
  const g = await until(() => {
    const x = client.flows
      .list()
      .filter((y) => y.destinationFqdn === 'fs1' && y.destinationPort === 80)
      .at(-1);
    return x?.endTime ? x : undefined;
  }, 'flow to fs1:80');
  t.equal(g.channel, null);
  t.notOk(
    client.flows
      .list()
      .some((x) => x.destinationFqdn === `fs1.${SUFFIX}` && x.beginTime >= g.beginTime),
    'no qualified flow while Private Access is off',
  );
  t.equal(edge.logs.all().length, before, 'nothing reached the edge');
});
