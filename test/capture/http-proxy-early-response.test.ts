/**
 * Plain HTTP: an upstream's final response that arrives while the client is still sending
 * its body (RFC 9112 9.6, RFC 9110 15). The response reaches the client whole (not a 502),
 * the body stops going upstream, and the client's connection is not reset before it read
 * the response. Raw sockets, node:http and curl clients; bypassed and tunneled flows;
 * servers on 127.0.0.1 only, each closed by its test.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, createServer as netServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { curlPost, listen, nodePost, proxyTo } from './early-response-helpers.js';
import { sleep } from './helpers.js';

const SIZE = 16 * 1024 * 1024;
const FLOWS = [
  ['bypassed', 'direct.test'],
  ['tunneled', 'tunnel.test'],
] as const;

/**
 * A node:http origin answering 413 at once. `closes`: with `Connection: close` (node then
 * closes while the body still arrives: a reset); else it reads and drops the rest.
 */
function refusing(t: Test, closes: boolean): Promise<number> {
  const server = createServer((req, res) => {
    res.writeHead(413, { 'content-length': '8', ...(closes ? { connection: 'close' } : {}) });
    res.end('too big\n');
    req.resume();
  });
  return listen(t, server);
}

/**
 * A raw client: head, then the body in 256 KiB writes; what came back once `done` matches it
 * or the proxy closed, within 10 s (a loaded machine is slow).
 */
async function rawPost(pport: number, target: string, done = /too big\n/): Promise<string> {
  const s = connect({ port: pport, host: '127.0.0.1' });
  s.on('error', () => {});
  let got = '';
  let closed = false;
  s.on('data', (c: Buffer) => {
    got += c.toString('latin1');
  });
  s.on('close', () => {
    closed = true;
  });
  try {
    await once(s, 'connect');
    s.write(`POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: ${SIZE}\r\n\r\n`);
    const chunk = Buffer.alloc(256 * 1024, 1);
    for (let i = 0; i < SIZE / chunk.length && !closed; i++) {
      if (!s.write(chunk)) await Promise.race([once(s, 'drain').catch(() => {}), sleep(200)]);
    }
    const end = Date.now() + 10_000;
    while (!done.test(got) && !closed && Date.now() < end) await sleep(10);
    return got;
  } finally {
    s.destroy();
  }
}

// An origin that resets is only handled for bypassed flows: through the tunnel the edge's own
// socket to the origin meets the reset first (src/edge/egress.ts, not the proxy's part).
for (const closes of [true, false]) {
  const kind = closes ? 'closes at once (reset)' : 'reads and drops the rest';
  for (const [flow, host] of closes ? FLOWS.slice(0, 1) : FLOWS) {
    t.test(`raw client, ${flow}: an origin that answers 413 and ${kind}`, async (t) => {
      const eport = await refusing(t, closes);
      const { pport } = await proxyTo(t, eport);
      const outcomes: string[] = [];
      for (let k = 0; k < 4; k++) {
        const got = await rawPost(pport, `http://${host}:${eport}/big`);
        outcomes.push(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 'nothing');
        if (got.startsWith('HTTP/1.1 413')) {
          t.match(got, /\r\nconnection: close\r\n/i, 'says it closes');
          t.ok(got.endsWith('\r\n\r\ntoo big\n'), 'the whole response');
        }
      }
      t.same(outcomes, ['413', '413', '413', '413'], outcomes.join(' '));
    });

    t.test(`node:http client, ${flow}: an origin that answers 413 and ${kind}`, async (t) => {
      const eport = await refusing(t, closes);
      const { pport } = await proxyTo(t, eport);
      const outcomes: string[] = [];
      for (let k = 0; k < 4; k++)
        outcomes.push(await nodePost(pport, `http://${host}:${eport}/n`, SIZE));
      t.same(outcomes, Array(4).fill('413 too big\n'), outcomes.join(' | '));
    });
  }
}

t.test('curl without Expect: the 413, not a 502', async (t) => {
  const closing = await refusing(t, true);
  const lingering = await refusing(t, false);
  const file = join(mkdtempSync(join(tmpdir(), 'gsa-early-')), 'body');
  writeFileSync(file, Buffer.alloc(SIZE, 0x61));
  t.teardown(() => rmSync(dirname(file), { recursive: true, force: true }));
  for (const [eport, label] of [
    [closing, 'closing'],
    [lingering, 'lingering'],
  ] as const) {
    const { pport } = await proxyTo(t, eport);
    for (const [flow, host] of label === 'closing' ? FLOWS.slice(0, 1) : FLOWS) {
      const codes: string[] = [];
      for (let k = 0; k < 3; k++)
        codes.push(await curlPost(`127.0.0.1:${pport}`, `http://${host}:${eport}/c`, file));
      t.same(codes, ['413', '413', '413'], `${flow}, ${label} origin: ${codes.join(' | ')}`);
    }
  }
});

t.test('an origin that answers at once and reads the body as it goes gets all of it', async (t) => {
  // Full duplex: the early head does not stop the body (the origin does not say it closes).
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.flushHeaders();
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => res.end(`read ${n}`));
  });
  const eport = await listen(t, server);
  const { pport } = await proxyTo(t, eport);
  for (const [, host] of FLOWS) {
    t.equal(await nodePost(pport, `http://${host}:${eport}/d`, SIZE), `200 read ${SIZE}`, host);
  }
});

t.test('an upstream that resets without a response: 502 naming the failure', async (t) => {
  // Reads the head, then stops reading and resets the connection as the body arrives: the
  // 16 MiB body cannot have been sent whole (a socket left flowing took it all within the
  // 20 ms on a fast run, and the proxy rightly kept the client's connection then).
  const sockets = new Set<Socket>();
  const server = netServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('data', () => {
      s.pause();
      setTimeout(() => s.resetAndDestroy(), 20);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const eport = (server.address() as { port: number }).port;
  const { pport } = await proxyTo(t, eport);
  const started = Date.now();
  const got = await rawPost(pport, `http://direct.test:${eport}/r`, /upstream error: [^\n]*\n/);
  t.match(got, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*connection: close[\s\S]*upstream error: /);
  t.ok(Date.now() - started < 15_000, 'answered within a bounded time');
});
