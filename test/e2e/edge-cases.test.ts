/**
 * Edge cases a review of the day's changes checked (2026-11-27), kept as regression tests:
 * 1. local subnets in the classifier: compiled == oracle on every Decision field, with
 *    subnets at the edges of the tenant's Private ranges (0.0.0.0/0, /32s at and beside
 *    their ends, equal, adjacent, nested, overlapping), QUIC flows included;
 * 2. the nested `$expand` parser: a tree or a ConfigError for odd input, quickly;
 * 3. `up` and `edge` with stdout and/or stderr closed: they run on, `stop` works;
 * 4. the HTTP proxy with trailers: pipelined requests, Expect: 100-continue, a client reset
 *    mid-trailer.
 * Loopback only; every process and server started is bounded and stopped.
 */
import fc from 'fast-check';
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { OracleClassifier } from '../../src/classify/oracle.js';
import type { ClientState, TenantSpec } from '../../src/policy/model.js';
import { formatIPv4, formatIPv6, parseCidr, parseIPv4 } from '../../src/util/ip.js';
import {
  addLocalSubnetEdges,
  edgesOf,
  fields,
  localStateArb,
  privateTenantArb,
  prng,
  randomFlow,
} from '../classify/gen.js';

/** Edge-case local subnets built from the tenant's Private Access IPv4 destinations. */
function edgeSubnets(spec: TenantSpec, rnd: () => number): string[] {
  const ranges: Array<[number, number, string | null]> = [];
  for (const p of spec.profiles) {
    if (p.type !== 'private') continue;
    for (const q of p.policies)
      for (const r of q.rules)
        for (const d of r.destinations) {
          if (d.type === 'ipRange' && parseIPv4(d.begin) >= 0)
            ranges.push([parseIPv4(d.begin), parseIPv4(d.end), null]);
          else if (d.type === 'ipSubnet' || d.type === 'ipAddress') {
            const c = parseCidr(d.value);
            if (typeof c !== 'string' && c.family === 4)
              ranges.push([c.first, c.last, `${formatIPv4(c.first)}/${c.prefix}`]);
          }
        }
  }
  const out: string[] = [];
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(rnd() * 9);
    if (k === 0 || ranges.length === 0) {
      out.push(rnd() < 0.5 ? '0.0.0.0/0' : '255.255.255.255/32');
      continue;
    }
    const [f, l, cidr] = ranges[Math.floor(rnd() * ranges.length)]!;
    const at = (x: number, p: number) =>
      x >= 0 && x <= 0xffffffff ? `${formatIPv4(x)}/${p}` : '0.0.0.0/32';
    switch (k) {
      case 1:
        out.push(cidr ?? at(f, 32));
        break; // exactly the range
      case 2:
        out.push(at(f, 32));
        break;
      case 3:
        out.push(at(l, 32));
        break;
      case 4:
        out.push(at(f - 1, 32));
        break; // touching before
      case 5:
        out.push(at(l + 1, 32));
        break; // touching after
      case 6:
        out.push(at(l + 1, 24), at(l, 31));
        break; // adjacent / overlapping
      case 7:
        out.push(at(f, 24), at(f, 16), at(f, 30));
        break; // nested
      default:
        out.push(at(f + Math.floor(rnd() * (l - f + 1)), [32, 30, 28][Math.floor(rnd() * 3)]!));
    }
  }
  return out;
}

t.test('local subnets: compiled == oracle on edge subnets (every field)', async (t) => {
  let flows = 0;
  let local = 0;
  fc.assert(
    fc.property(privateTenantArb, localStateArb, fc.integer(), (spec, st0, seed) => {
      const rnd = prng(seed);
      const st: ClientState = { ...st0, localSubnets: edgeSubnets(spec, rnd) };
      const c = compile(spec, st);
      const o = new OracleClassifier(spec, st);
      const e = addLocalSubnetEdges(edgesOf(spec), st);
      for (let i = 0; i < 400; i++) {
        const f = randomFlow(e, rnd);
        const got = c.decide(f);
        const want = o.decide(f);
        flows++;
        if (got.reason.includes('local subnet')) local++;
        if (fields(got) !== fields(want)) {
          const where =
            f.family === 4 ? formatIPv4(f.ip4) : f.family === 6 ? formatIPv6(f.ip6) : '-';
          throw new Error(
            `flow proto=${f.proto} fam=${f.family} ip=${where} port=${f.port} host=${JSON.stringify(f.host)} localSubnets=${JSON.stringify(st.localSubnets)}\n got  ${fields(got)}\n want ${fields(want)}`,
          );
        }
      }
    }),
    { numRuns: 300, seed: Number(process.env.REVIEW_SEED ?? 1127) },
  );
  t.ok(local > flows / 100, `${local} of ${flows} flows in a local subnet`);
});

/* 2. The nested $expand parser: a tree or a ConfigError, for any input, quickly. */
import { ConfigError } from '../../src/errors.js';
import { GRAPH_NAVIGATION } from '../../src/policy/graph.js';
import { parseExpand } from '../../src/policy/odata-expand.js';

t.test('$expand: a tree or a ConfigError for odd input', async (t) => {
  const tok = fc.constantFrom(
    'policies',
    'policy',
    'policyRules',
    '*',
    '(',
    ')',
    ',',
    ';',
    '=',
    '$expand',
    '$select',
    '$levels',
    ' ',
    '%28',
    'é',
    '\u{1F600}',
    '\ud800',
    '__proto__',
    'constructor',
    'x',
    '.',
  );
  const deep = (n: number) => `${'policies($expand='.repeat(n)}policy${')'.repeat(n)}`;
  const fixed = [
    'policies($expand=policy;$select=x)',
    'policies($expand=policy($expand=policyRules;$expand=policyRules))',
    deep(9),
    deep(200),
    'policies'.repeat(2000),
    '('.repeat(1024),
    `${'*,'.repeat(511)}*`,
    '*,policies',
    'policies()',
    'policies($expand=)',
  ];
  const entities = Object.keys(GRAPH_NAVIGATION) as Array<keyof typeof GRAPH_NAVIGATION>;
  const check = (s: string, e: string) => {
    const t0 = performance.now();
    try {
      const tree = parseExpand(s, GRAPH_NAVIGATION, e);
      if (typeof tree !== 'object' || tree === null) throw new Error(`not a tree for ${s}`);
    } catch (err) {
      if (!(err instanceof ConfigError) || err.issues[0]?.path !== '$expand')
        throw new Error(`${JSON.stringify(s.slice(0, 80))}: ${String(err)}`);
    }
    // Catastrophic backtracking takes seconds or more; a GC pause or a descheduling does not.
    if (performance.now() - t0 > 2000) throw new Error(`slow on ${JSON.stringify(s.slice(0, 80))}`);
  };
  for (const s of fixed) for (const e of entities) check(s, e);
  fc.assert(
    fc.property(fc.array(tok, { maxLength: 60 }), fc.constantFrom(...entities), (a, e) =>
      check(a.join(''), e),
    ),
    { numRuns: 20_000, seed: 1127 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), (s) =>
      check(s, 'forwardingProfile'),
    ),
    { numRuns: 5_000, seed: 1127 },
  );
  t.pass('no crash, no hang');
});

/* 3. Closed stdout / stderr (src/cli/stdio.ts), with the built CLI (dist/). */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, freePort, mainJs, running, skip, viaHttpProxy } from '../cli/cli-ux-helpers.js';
import { collect } from '../util/ts-child.js';
import { until } from '../util/wait.js';

for (const closed of [['stderr'], ['stdout', 'stderr']] as const) {
  t.test(`up with ${closed.join(' and ')} closed: runs, stop works`, { skip }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'gsa-review-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const args = ['up', '--state-dir', dir, '--socks-port', '0', '--http-port', '0', '--no-tty'];
    const child = spawn(process.execPath, [mainJs, ...args, '--exit-after', '60'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const s of closed) child[s]!.destroy();
    const done = collect(child, 60_000);
    t.teardown(async () => {
      if (running(child)) child.kill('SIGKILL');
      await done;
    });
    const stateFile = join(dir, 'client.json');
    t.ok(await until(() => existsSync(stateFile), 20_000), 'up is ready');
    const http = (JSON.parse(readFileSync(stateFile, 'utf8')) as { http: string }).http;
    t.equal(await viaHttpProxy(http, 'http://news.test/'), 200, 'a flow is answered');
    t.ok(running(child), 'up runs on');
    const stop = await cli(['stop', '--state-dir', dir]);
    t.equal(stop.code, 0, `gsa-emu stop: ${stop.err}`);
    const r = await done;
    t.equal(r.code, 0, 'up exits 0');
    t.notOk(existsSync(stateFile), 'no stale client.json');
  });
}

t.test('edge with stdout closed, a request, then SIGTERM', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsa-review-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [mainJs, 'edge', '--no-tls', '--port', String(port), '--state-dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.destroy();
  const done = collect(child, 30_000);
  t.teardown(async () => {
    if (running(child)) child.kill('SIGKILL');
    await done;
  });
  const health = () =>
    new Promise<number>((resolve) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/health', timeout: 2000 },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  let code = 0;
  for (let i = 0; i < 200 && code !== 200; i++) {
    code = await health();
    if (code !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(code, 200, 'the edge answers /health');
  code = 0;
  for (let i = 0; i < 20; i++) code = await health();
  t.equal(code, 200, 'and 20 more requests');
  t.ok(running(child), 'edge runs on');
  child.kill('SIGTERM');
  const r = await done;
  t.equal(r.code, 0, `edge exits 0 (${r.signal}) ${r.err}`);
});

/* 4. http-proxy 102/103 and trailers: pipelining, Expect: 100-continue, a client gone mid-trailer. */
import { once } from 'node:events';
import { createServer as httpServer } from 'node:http';
import { connect } from 'node:net';
import { proxyFor, rawClient, rawUpstream } from '../capture/http-proxy-raw.js';
import { delay } from '../util/wait.js';

t.test(
  'http-proxy: trailers with pipelining, 100-continue, and a client gone mid-trailer',
  async (t) => {
    const up = await rawUpstream(t, (path, s) => {
      if (path === '/t')
        s.end(
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n',
        );
      else s.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain');
    });
    const { port, connections } = await proxyFor(t);
    const get = (p: string, te = '') =>
      `GET http://direct.test:${up.port}${p} HTTP/1.1\r\nHost: x\r\n${te}\r\n`;
    const r = await rawClient(
      port,
      get('/t', 'TE: trailers\r\n') + get('/p') + get('/t'),
      (g) => (g.match(/HTTP\/1\.1 200/g) ?? []).length === 3 && g.endsWith('X-Sum: 1\r\n\r\n'),
    );
    t.match(
      r.got,
      /\r\n0\r\nX-Sum: 1\r\n\r\nHTTP\/1\.1 200 OK[\s\S]*\r\n\r\nplainHTTP\/1\.1 200 OK[\s\S]*\r\n0\r\nX-Sum: 1\r\n\r\n$/,
      'pipelined: trailers, then plain, then trailers, nothing lost',
    );

    let seen: { body: string; trailers: object } | null = null;
    const server = httpServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => {
        seen = { body, trailers: { ...req.trailers } };
        res.end('done');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const upPort = (server.address() as { port: number }).port;
    const serverConns = () => new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
    });
    s.on('error', () => {});
    await once(s, 'connect');
    s.write(
      `POST http://direct.test:${upPort}/u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nTrailer: X-D\r\n\r\n`,
    );
    for (let i = 0; i < 200 && !got.includes('100 Continue'); i++) await delay(10);
    s.write('5\r\nhello\r\n0\r\nX-D: abc\r\n\r\n');
    for (let i = 0; i < 200 && !got.endsWith('done'); i++) await delay(10);
    s.destroy();
    t.match(
      got,
      /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*done$/,
      '100, then 200',
    );
    t.same(seen, { body: 'hello', trailers: { 'x-d': 'abc' } }, 'body and trailer upstream');

    // The first request's upstream connection is gone before the second one starts.
    for (let i = 0; i < 100 && (await serverConns()) !== 0; i++) await delay(50);
    const s2 = connect({ port, host: '127.0.0.1' });
    s2.on('error', () => {});
    await once(s2, 'connect');
    s2.write(
      `POST http://direct.test:${upPort}/u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-D: ab`,
    );
    let conns = 0;
    for (let i = 0; i < 100 && conns !== 1; i++) {
      await delay(50);
      conns = await serverConns();
    }
    t.equal(conns, 1, 'mid-trailer: the request is upstream');
    s2.resetAndDestroy();
    let left = -1;
    for (let i = 0; i < 100 && left !== 0; i++) {
      await delay(20);
      left = (await connections()) + (await serverConns());
    }
    t.equal(left, 0, 'a client reset mid-trailer: both sides closed, nothing hangs');
  },
);
