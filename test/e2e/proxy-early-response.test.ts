/**
 * End to end through the real edge: the client's HTTP proxy forwards a plain HTTP POST
 * through the tunnel (private channel) to an origin that answers 413 before reading the
 * body (no `Expect`), then reads and drops the rest. curl and node:http clients get the 413
 * whole, not a 502 (RFC 9112 9.6). Everything on 127.0.0.1; each server is closed here.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdge } from '../../src/edge/server.js';
import { tempDir } from '../edge/helpers.js';

const SIZE = 16 * 1024 * 1024;
const HOST = 'early.contoso.test';

t.test('tunneled: an early 413 reaches curl and node:http clients whole', async (t) => {
  const origin = createServer((req, res) => {
    res.writeHead(413, { 'content-length': '8' });
    res.end('too big\n');
    req.resume();
  });
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  t.teardown(() => {
    origin.closeAllConnections();
    origin.close();
  });
  const oport = (origin.address() as { port: number }).port;

  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'edge'),
    tls: false,
    persistKey: false,
    connectorHosts: { [`${HOST}:8000`]: `127.0.0.1:${oport}` },
    egress: { systemResolver: false, directIp: false },
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url },
    tenant: 'edge',
    listen: { socksPort: null, httpPort: 0, pacPort: null, adminPort: null },
    resolver: { system: false },
  });
  t.teardown(() => client.close());
  await client.waitConnected(5000);
  const proxy = client.addresses.http!;
  const pport = Number(proxy.split(':').at(-1));
  const url = `http://${HOST}:8000/upload`;

  // node:http: sends its whole body whatever the answer; any error after the response counts.
  const nodePost = (): Promise<string> =>
    new Promise((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: pport,
        method: 'POST',
        path: url,
        headers: { 'content-length': String(SIZE) },
        agent: false,
      });
      let out = '';
      let answered = false;
      let closed = false;
      const timer = setTimeout(() => {
        req.destroy();
        resolve(`${out}timeout`);
      }, 10_000);
      const settle = (): void => {
        if (!answered || !closed) return;
        clearTimeout(timer);
        resolve(out);
      };
      req.on('error', (e) => {
        out += ` error ${e.message}`;
        answered = true;
      });
      req.on('close', () => {
        closed = true;
        settle();
      });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          out = `${res.statusCode} ${body}${out}`;
          answered = true;
          settle();
        });
      });
      const chunk = Buffer.alloc(256 * 1024, 3);
      let left = SIZE / chunk.length;
      const pump = (): void => {
        while (left > 0 && !req.destroyed) {
          left--;
          if (left === 0) req.end(chunk);
          else if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  const nodes: string[] = [];
  for (let k = 0; k < 3; k++) nodes.push(await nodePost());
  t.same(nodes, Array(3).fill('413 too big\n'), `node:http: ${nodes.join(' | ')}`);

  const file = join(mkdtempSync(join(tmpdir(), 'gsa-early-e2e-')), 'body');
  writeFileSync(file, Buffer.alloc(SIZE, 0x61));
  t.teardown(() => rmSync(dirname(file), { recursive: true, force: true }));
  const curl = (): Promise<string> =>
    new Promise((resolve) => {
      execFile(
        'curl',
        [
          '-sS',
          '--max-time',
          '10',
          '-x',
          `http://${proxy}`,
          '-H',
          'Expect:',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--data-binary',
          `@${file}`,
          url,
        ],
        { timeout: 15_000 },
        (_err, out, err) => resolve(`${out}${err}`.trim()),
      );
    });
  const codes: string[] = [];
  for (let k = 0; k < 3; k++) codes.push(await curl());
  t.same(codes, ['413', '413', '413'], `curl: ${codes.join(' | ')}`);
  const flows = client.flows.list().filter((f) => f.destinationFqdn === HOST);
  t.ok(flows.length >= 6 && flows.every((f) => f.channel === 'private'), 'tunneled on private');
});
