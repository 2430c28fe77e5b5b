/**
 * End to end through the real edge: the client's HTTP proxy forwards a plain HTTP POST
 * through the tunnel (private channel) to an origin that answers 413 before reading the
 * body (no `Expect`), then reads and drops the rest. curl and node:http clients get the 413
 * whole, not a 502 (RFC 9112 9.6). Everything on 127.0.0.1; each server is closed here.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdge } from '../../src/edge/server.js';
import { curlPost, nodePost } from '../capture/early-response-helpers.js';
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

  const nodes: string[] = [];
  for (let k = 0; k < 3; k++) nodes.push(await nodePost(pport, url, SIZE));
  t.same(nodes, Array(3).fill('413 too big\n'), `node:http: ${nodes.join(' | ')}`);

  const file = join(mkdtempSync(join(tmpdir(), 'gsa-early-e2e-')), 'body');
  writeFileSync(file, Buffer.alloc(SIZE, 0x61));
  t.teardown(() => rmSync(dirname(file), { recursive: true, force: true }));
  const codes: string[] = [];
  for (let k = 0; k < 3; k++) codes.push(await curlPost(proxy, url, file));
  t.same(codes, ['413', '413', '413'], `curl: ${codes.join(' | ')}`);
  const flows = client.flows.list().filter((f) => f.destinationFqdn === HOST);
  t.ok(flows.length >= 6 && flows.every((f) => f.channel === 'private'), 'tunneled on private');
});
