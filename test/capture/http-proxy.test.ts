import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { fetch, ProxyAgent } from 'undici';
import { HttpProxy, parseAuthority, refusalBody } from '../../src/capture/http-proxy.js';
import { pacScript, startPacServer } from '../../src/capture/pac.js';
import { until } from '../edge/helpers.js';
import { closedPort, decision, echoServer, fakeForwarder } from '../forward/fixtures/fakes.js';
import { hasIpv6Loopback, NO_IPV6_LOOPBACK } from '../util/ipv6.js';
import { brokenForwarder, warningLog } from './broken.js';
import { checkConnectionLimit } from './stalled.js';

const TUNNEL = decision({ action: 'tunnel', channel: 'internet', ruleId: 'ia' });
const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });
const BLOCK = decision({
  action: 'block',
  channel: 'internet',
  ruleId: 'r-42',
  ruleName: 'No gambling',
  profileName: 'Internet',
});

async function webServer(): Promise<{ server: Server; port: number; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(
      `${req.method} ${req.url} host=${req.headers.host} conn=${req.headers.connection} pa=${req.headers['proxy-authorization'] ?? '-'}`,
    );
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-server': 'demo' });
      res.end(`hello ${req.url} ${body}`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, requests };
}

async function setup(
  t: { teardown(fn: () => unknown): void },
  opts: Partial<ConstructorParameters<typeof HttpProxy>[0]> = {},
) {
  const {
    fwd: forwarder,
    tunnels,
    flows,
  } = fakeForwarder(
    [
      { host: 'tunnel.test', decision: TUNNEL },
      { host: 'hang.test', decision: TUNNEL },
      { host: 'casino.test', decision: BLOCK },
      { decision: BYPASS },
    ],
    { 'direct.test': '127.0.0.1' },
    { openTimeoutMs: 300 },
  );
  const proxy = new HttpProxy({
    forwarder,
    port: 0,
    pacScript: pacScript({ socks: '127.0.0.1:1080', http: '127.0.0.1:8080' }),
    ...opts,
  });
  const { port } = await proxy.listen();
  t.teardown(() => proxy.close());
  return { proxy, port, tunnels, flows };
}

/** Sends raw bytes, returns everything until close (bounded). */
async function raw(port: number, data: string | Buffer, waitMs = 2000): Promise<string> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(data);
  const parts: Buffer[] = [];
  s.on('data', (c) => parts.push(c));
  await Promise.race([
    new Promise((r) => s.once('close', r)),
    new Promise((r) => setTimeout(r, waitMs)),
  ]);
  s.destroy();
  return Buffer.concat(parts).toString('latin1');
}

t.test('parseAuthority', async (t) => {
  t.same(parseAuthority('example.test:443'), { host: 'example.test', port: 443 });
  t.same(parseAuthority('[::1]:8443'), { host: '::1', port: 8443 });
  t.same(parseAuthority('10.0.0.1:22'), { host: '10.0.0.1', port: 22 });
  for (const bad of [
    'example.test',
    'a:0',
    'a:70000',
    'http://a:80',
    '::1:80',
    'a b:80',
    'user@a:80',
    '',
  ]) {
    t.equal(parseAuthority(bad), null, bad);
  }
});

t.test(
  'parseAuthority: any string gives null or a host and a port in range; names round-trip',
  async (t) => {
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(fc.string({ maxLength: 80 }), (s) => {
            const a = parseAuthority(s);
            return a === null || (a.port >= 1 && a.port <= 65535 && a.host.length > 0);
          }),
          { numRuns: 3000 },
        ),
      'any string',
    );
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(fc.domain(), fc.integer({ min: 1, max: 65535 }), (host, port) => {
            const a = parseAuthority(`${host}:${port}`);
            return a !== null && a.host === host && a.port === port;
          }),
          { numRuns: 1000 },
        ),
      'host:port round-trips',
    );
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(fc.ipV6(), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
            const a = parseAuthority(`[${ip}]:${port}`);
            return a !== null && a.host === ip && a.port === port;
          }),
          { numRuns: 500 },
        ),
      '[v6]:port round-trips',
    );
  },
);

t.test(
  'fuzz: random request heads get an HTTP error or a close, and the proxy lives on',
  async (t) => {
    const { port, flows } = await setup(t, { maxHeaderSize: 2048, headersTimeoutMs: 300 });
    const token = fc.constantFrom(
      'GET',
      'CONNECT',
      'POST',
      ' ',
      '\r\n',
      '\n',
      ':',
      'HTTP/1.1',
      'HTTP/9.9',
      'http://',
      'https://',
      '[::1]',
      'casino.test',
      'direct.test:',
      '65536',
      '0',
      'Host:',
      'Proxy-Authorization: Basic !!',
      'Transfer-Encoding: chunked',
      'Content-Length: -1',
      '\u0000',
      '%',
    );
    const head = fc.oneof(
      fc.array(token, { maxLength: 24 }).map((a) => a.join('')),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')),
    );
    const samples = fc.sample(head, { numRuns: 60, seed: 4242 });
    let answered = 0;
    for (const h of samples) {
      // Each ends with a blank line so that a complete head is parsed, not timed out.
      const r = await raw(port, `${h}\r\n\r\n`, 1500);
      t.ok(
        r === '' || /^HTTP\/1\.[01] \d{3} /.test(r),
        `answer to ${JSON.stringify(h.slice(0, 40))}`,
      );
      if (r !== '') answered++;
    }
    t.ok(answered > 0, `${answered} of ${samples.length} got a status line`);
    // Still serving, and no flow was left open by the garbage.
    const r = await raw(port, 'GET /proxy.pac HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    t.match(r, /^HTTP\/1\.1 200 /, 'the proxy still answers');
    t.ok(await until(() => flows.activeCount === 0, 3000), 'no flow left open');
  },
);

t.test('maxConnections: stalled clients beyond the limit are closed at once', async (t) => {
  const { port, proxy } = await setup(t, { maxConnections: 5, headersTimeoutMs: 2000 });
  await checkConnectionLimit(t, {
    port,
    server: proxy.server,
    max: 5,
    n: 8,
    bytes: 'CONNECT direct.test:1 HTTP/1.1\r\nHost: dire',
    what: 'head',
  });
});

t.test('CONNECT: 200 and relay; 403 names the rule; 502; 504; 400', async (t) => {
  const echo = await echoServer();
  t.teardown(echo.close);
  const { port, tunnels } = await setup(t);
  const s = connect({ port, host: '127.0.0.1' });
  await once(s, 'connect');
  s.write(
    `CONNECT direct.test:${echo.port} HTTP/1.1\r\nHost: direct.test:${echo.port}\r\n\r\nearly`,
  );
  let got = '';
  while (!got.includes('early')) got += (await once(s, 'data'))[0].toString();
  t.match(got, /^HTTP\/1\.1 200 Connection Established\r\n/);
  t.match(
    got,
    /x-gsa-connection-id: [0-9a-f-]{36}\r\n\r\nearly$/,
    'bytes sent after the head are relayed',
  );
  s.destroy();

  let r = await raw(port, 'CONNECT casino.test:443 HTTP/1.1\r\nHost: casino.test:443\r\n\r\n');
  t.match(r, /^HTTP\/1\.1 403 Forbidden/);
  t.match(r, /Blocked by Global Secure Access/);
  t.match(r, /rule: "No gambling" \(r-42\)/);
  r = await raw(port, `CONNECT direct.test:${await closedPort()} HTTP/1.1\r\n\r\n`);
  t.match(r, /^HTTP\/1\.1 502 Bad Gateway/);
  r = await raw(port, 'CONNECT nowhere.invalid:80 HTTP/1.1\r\n\r\n');
  t.match(r, /^HTTP\/1\.1 502 /);
  t.match(
    r,
    /Connection failed: cannot resolve nowhere\.invalid\n.*\nprofile: none\nbypassed: test bypass\n$/,
    'a failed bypass says why the flow went direct',
  );
  tunnels.behaviour = { kind: 'hang' };
  r = await raw(port, 'CONNECT hang.test:443 HTTP/1.1\r\n\r\n');
  t.match(r, /^HTTP\/1\.1 504 Gateway Timeout/);
  r = await raw(port, 'CONNECT nonsense HTTP/1.1\r\n\r\n');
  t.match(r, /^HTTP\/1\.1 400 /);
});

t.test(
  'plain HTTP: absolute-form, keep-alive to the proxy, one request per upstream connection',
  async (t) => {
    const web = await webServer();
    t.teardown(() => web.server.close());
    const { port, flows } = await setup(t);
    const s = connect({ port, host: '127.0.0.1' });
    await once(s, 'connect');
    let buf = '';
    s.on('data', (c) => {
      buf += c.toString();
    });
    const url = `http://direct.test:${web.port}`;
    s.write(
      `GET ${url}/a HTTP/1.1\r\nHost: direct.test:${web.port}\r\nProxy-Connection: keep-alive\r\n\r\n`,
    );
    for (let i = 0; i < 200 && !buf.includes('hello /a'); i++)
      await new Promise((r) => setTimeout(r, 5));
    s.write(
      `POST ${url}/b HTTP/1.1\r\nHost: direct.test:${web.port}\r\nContent-Length: 4\r\n\r\nbody`,
    );
    for (let i = 0; i < 200 && !buf.includes('hello /b body'); i++)
      await new Promise((r) => setTimeout(r, 5));
    s.destroy();
    // The target's authority is the Host: none sent (HTTP/1.0) or a different one.
    const r10 = await raw(port, `GET ${url}/c HTTP/1.0\r\n\r\n`);
    t.match(r10, /^HTTP\/1\.1 200 [\s\S]*hello \/c/, 'HTTP/1.0 without Host');
    await raw(port, `GET ${url}/d HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n`);
    t.match(buf, /HTTP\/1\.1 200 OK[\s\S]*x-server: demo[\s\S]*hello \/a/);
    t.match(buf, /hello \/b body/, 'second request on the same proxy connection');
    t.equal(web.requests.length, 4);
    t.match(
      web.requests[0],
      new RegExp(`GET /a host=direct.test:${web.port} conn=keep-alive pa=-`),
      'origin-form path, Host kept, Connection: keep-alive (the proxy closes it after)',
    );
    t.match(web.requests[2], new RegExp(`GET /c host=direct.test:${web.port} `), 'Host added');
    t.match(web.requests[3], new RegExp(`GET /d host=direct.test:${web.port} `), 'Host replaced');
    await new Promise((r) => setTimeout(r, 20));
    const recs = flows.list().filter((f) => f.capture === 'http');
    t.equal(recs.length, 4, 'one flow per request');
    t.ok(recs.every((f) => f.status === 'Bypassed'));
    t.not(recs[0]!.connectionId, recs[1]!.connectionId);
  },
);

t.test('plain HTTP through undici ProxyAgent (tunneled) and refusals', async (t) => {
  const web = await webServer();
  t.teardown(() => web.server.close());
  const { port, tunnels } = await setup(t);
  tunnels.behaviour = { kind: 'connect', to: { 'tunnel.test': web.port } };
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${port}`, proxyTunnel: false });
  t.teardown(() => agent.close());
  const res = await fetch('http://tunnel.test/x?y=1', { dispatcher: agent });
  t.equal(res.status, 200);
  t.equal(await res.text(), 'hello /x?y=1 ');
  t.equal(tunnels.opened.at(-1)!.meta.host, 'tunnel.test');
  t.equal(tunnels.opened.at(-1)!.meta.port, 80);
  const blocked = await fetch('http://casino.test/', { dispatcher: agent });
  t.equal(blocked.status, 403);
  t.match(await blocked.text(), /No gambling/);
  const dead = await fetch(`http://direct.test:${await closedPort()}/`, { dispatcher: agent });
  t.equal(dead.status, 502);
  await dead.text();
});

t.test(
  '431 oversized headers, 400 origin-form and https absolute-form, PAC, slow headers',
  async (t) => {
    const { port } = await setup(t, { maxHeaderSize: 1024, headersTimeoutMs: 200 });
    let r = await raw(
      port,
      `GET http://direct.test/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`,
    );
    t.match(r, /^HTTP\/1\.1 431 /);
    r = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    t.match(r, /^HTTP\/1\.1 400 /);
    r = await raw(
      port,
      'GET https://direct.test/ HTTP/1.1\r\nHost: direct.test\r\nConnection: close\r\n\r\n',
    );
    t.match(r, /^HTTP\/1\.1 400 [\s\S]*CONNECT only/);
    r = await raw(
      port,
      'GET http://direct.test:0/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    t.match(r, /^HTTP\/1\.1 400 [\s\S]*port 0/, 'port 0: 400, as for CONNECT');
    r = await raw(port, 'GARBAGE\r\n\r\n');
    t.match(r, /^HTTP\/1\.1 400 /);
    r = await raw(port, 'GET /proxy.pac HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    t.match(r, /application\/x-ns-proxy-autoconfig/);
    t.match(r, /return "SOCKS5 127\.0\.0\.1:1080; PROXY 127\.0\.0\.1:8080";/);
    const t0 = Date.now();
    r = await raw(port, 'GET http://direct.test/ HTTP/1.1\r\nHost', 3000);
    t.ok(Date.now() - t0 < 2500, 'slow headers cut off');
    t.match(r, /^(HTTP\/1\.1 408 |)/);
  },
);

t.test('407 without credentials, OK with them; non-loopback needs credentials', async (t) => {
  const web = await webServer();
  t.teardown(() => web.server.close());
  const { port } = await setup(t, { auth: { username: 'bob', password: 'pw' } });
  let r = await raw(
    port,
    `GET http://direct.test:${web.port}/ HTTP/1.1\r\nHost: direct.test\r\nConnection: close\r\n\r\n`,
  );
  t.match(r, /^HTTP\/1\.1 407 [\s\S]*proxy-authenticate: Basic realm="gsa-emu"/i);
  r = await raw(port, 'CONNECT direct.test:443 HTTP/1.1\r\n\r\n');
  t.match(r, /^HTTP\/1\.1 407 /);
  const cred = Buffer.from('bob:pw').toString('base64');
  r = await raw(
    port,
    `GET http://direct.test:${web.port}/ok HTTP/1.1\r\nHost: direct.test\r\nProxy-Authorization: Basic ${cred}\r\nConnection: close\r\n\r\n`,
  );
  t.match(r, /^HTTP\/1\.1 200 [\s\S]*hello \/ok/);
  t.match(web.requests.at(-1)!, /pa=-$/, 'Proxy-Authorization is not forwarded');
  const forwarder = {} as ConstructorParameters<typeof HttpProxy>[0]['forwarder'];
  t.throws(() => new HttpProxy({ forwarder, host: '0.0.0.0' }), { code: 'GSA_ERR_OPEN_RELAY' });
  await t.rejects(startPacServer({ host: '0.0.0.0', socks: null, http: null }), {
    code: 'GSA_ERR_OPEN_RELAY',
  });
});

t.test(
  'credentials outside ASCII: UTF-8 (curl, undici) or ISO-8859-1 (Python requests)',
  async (t) => {
    // RFC 7617 leaves the charset of Basic credentials to the client unless the challenge
    // names UTF-8; Python's requests encodes them as ISO-8859-1, most others as UTF-8.
    const web = await webServer();
    t.teardown(() => web.server.close());
    const { port } = await setup(t, { auth: { username: 'bob', password: 'pässwörd' } });
    const get = (cred: Buffer, path: string) =>
      raw(
        port,
        `GET http://direct.test:${web.port}/${path} HTTP/1.1\r\nHost: direct.test\r\nProxy-Authorization: Basic ${cred.toString('base64')}\r\nConnection: close\r\n\r\n`,
      );
    const connect = async (cred: Buffer) =>
      (
        await raw(
          port,
          `CONNECT direct.test:${web.port} HTTP/1.1\r\nProxy-Authorization: Basic ${cred.toString('base64')}\r\n\r\n`,
          500,
        )
      ).split('\r\n')[0];
    t.match(
      await get(Buffer.from('bob:pässwörd', 'utf8'), 'utf8'),
      /^HTTP\/1\.1 200 [\s\S]*hello \/utf8/,
    );
    t.match(
      await get(Buffer.from('bob:pässwörd', 'latin1'), 'latin1'),
      /^HTTP\/1\.1 200 [\s\S]*hello \/latin1/,
    );
    t.equal(
      await connect(Buffer.from('bob:pässwörd', 'latin1')),
      'HTTP/1.1 200 Connection Established',
    );
    t.equal(
      await connect(Buffer.from('bob:pässwörd', 'utf8')),
      'HTTP/1.1 200 Connection Established',
    );
    const wrong = await get(Buffer.from('bob:passwort', 'latin1'), 'wrong');
    t.match(
      wrong,
      /^HTTP\/1\.1 407 [\s\S]*proxy-authenticate: Basic realm="gsa-emu", charset="UTF-8"/i,
    );
    t.equal(
      await connect(Buffer.from('bob:pässwörd', 'utf16le')),
      'HTTP/1.1 407 Proxy Authentication Required',
    );
  },
);

t.test('PAC server', async (t) => {
  const pac = await startPacServer({ socks: '127.0.0.1:1080', http: '127.0.0.1:8080' });
  t.teardown(() => pac.close());
  const res = await fetch(pac.url);
  t.equal(res.headers.get('content-type'), 'application/x-ns-proxy-autoconfig');
  const text = await res.text();
  // The script is valid JavaScript and routes everything to the proxies.
  const find = new Function(`${text}; return FindProxyForURL;`)() as (
    u: string,
    h: string,
  ) => string;
  t.equal(
    find('https://outlook.office365.com/', 'outlook.office365.com'),
    'SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:8080',
  );
  t.equal((await fetch(pac.url.replace('proxy.pac', 'other'))).status, 404);
});

t.test(
  'PAC: proxies on every address are named by the address the file was asked on',
  async (t) => {
    // As with `up --host 0.0.0.0` (or ::): 0.0.0.0 would mean the browser's own machine.
    const route = async (host: string) => {
      const pac = await startPacServer({ host, socks: '0.0.0.0:1080', http: '[::]:8080' });
      t.teardown(() => pac.close());
      const text = await (await fetch(pac.url)).text();
      return /return "([^"]*)"/.exec(text)?.[1];
    };
    t.equal(await route('127.0.0.1'), 'SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:8080');
    if (await hasIpv6Loopback()) {
      t.equal(await route('::1'), 'SOCKS5 [::1]:1080; PROXY [::1]:8080');
    } else t.comment(`${NO_IPV6_LOOPBACK}: the [::1] case is skipped`);
    const fixed = await startPacServer({ socks: '127.0.0.1:1080', http: null });
    t.teardown(() => fixed.close());
    t.match(
      await (await fetch(fixed.url)).text(),
      '"SOCKS5 127.0.0.1:1080"',
      'an address of its own stays',
    );
  },
);

t.test('a bug in one request closes that connection, not the proxy', async (t) => {
  const { log, warnings } = warningLog();
  const { proxy, port } = await setup(t, { forwarder: brokenForwarder(), log });
  const a = await raw(port, 'CONNECT direct.test:9 HTTP/1.1\r\nHost: direct.test:9\r\n\r\n');
  t.equal(a, '', 'CONNECT: closed without a reply');
  const b = await raw(port, 'GET http://direct.test:9/ HTTP/1.1\r\nHost: direct.test:9\r\n\r\n');
  t.equal(b, '', 'absolute-URI request: closed without a reply');
  t.equal(proxy.stats.internalErrors, 2);
  t.equal(warnings.length, 2);
  await proxy.close();
  t.equal(proxy.address.port, port, 'address still known after close');
});

t.test('refusalBody: a failed bypass says why the flow went direct', async (t) => {
  const tunnel = decision({
    action: 'tunnel',
    channel: 'internet',
    ruleId: 'ia',
    fallback: 'bypass',
  });
  const failed = (hardening: 'Y' | 'N', direct?: string) =>
    refusalBody({
      refused: 'unreachable',
      decision: tunnel,
      reason: 'cannot resolve x.test',
      flow: { hardening },
      ...(direct !== undefined ? { direct } : {}),
    });
  // The tile of its channel switched off after the decision: it went direct for that (the
  // forwarder says why: forwarder.test.ts, "toggle").
  t.match(
    failed('N', 'internet channel off: bypass'),
    /^Connection failed: cannot resolve x\.test\n.*\nbypassed: internet channel off: bypass\n$/s,
  );
  t.notMatch(failed('N'), /bypassed:/, 'tunneled: no such line');
  t.notMatch(failed('Y'), /bypassed:/, 'hardening: its reason says the channel is down');
  const bypass = decision({ action: 'bypass', reason: 'the VPN is off' });
  t.match(
    refusalBody({
      refused: 'timeout',
      decision: bypass,
      reason: 'connect timed out',
      direct: 'the VPN is off',
      flow: { hardening: 'N' },
    }),
    /\nbypassed: the VPN is off\n$/,
  );
});
