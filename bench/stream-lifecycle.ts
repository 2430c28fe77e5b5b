/**
 * What one tunneled connection costs the tunnel layer alone: a client and a server Session
 * over the in-memory transport (no sockets, no policy), each lifecycle as a proxied
 * connection uses it: OPEN with a full flow meta, OPEN_OK, 8 bytes up, 1 byte and FIN down,
 * FIN up, both streams released. Sequential. Prints CPU and wall time per lifecycle (both
 * sessions together), median of 5 runs after a warm-up.
 *
 *   npx tsc -p tsconfig.bench.json && node dist-bench/bench/stream-lifecycle.js [lifecycles]
 *
 * Compare with the CPU per connection of the client and edge processes that `CPU_REPORT=1
 * npm run bench:proxy` prints: the difference is everything around the tunnel layer.
 */

import { Session } from '../src/tunnel/session.js';
import type { Stream } from '../src/tunnel/stream.js';
import { memoryPair } from '../src/tunnel/transport.js';
import type { OpenMeta } from '../src/tunnel/types.js';

const n = Math.min(Math.max(Number(process.argv[2] ?? 20_000) || 20_000, 100), 1_000_000);
const [a, b] = memoryPair();
const client = new Session(a, 'client', {});
const server = new Session(b, 'server', {});
let served = 0;
let received = 0;
server.on('stream', (s: Stream) => {
  served++;
  s.on('error', () => {});
  s.accept();
  s.on('data', () => s.end(Buffer.from('x')));
});

const meta: OpenMeta = {
  proto: 'tcp',
  host: 'bench.contoso.test',
  ip: null,
  port: 8000,
  flowId: '1',
  connectionId: '6f1c2d3e-4b5a-4978-8c9d-0e1f2a3b4c5d',
  channel: 'private',
  ruleId: '00000000-0000-0000-0000-000000000001',
  policyId: '00000000-0000-0000-0000-000000000002',
  srcIp: '127.0.0.1',
  srcPort: 40000,
  process: null,
};
const request = Buffer.alloc(8, 1);

async function lifecycle(): Promise<void> {
  const s = client.open(meta) as Stream;
  s.on('error', () => {});
  await s.opened;
  await new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      received += d.length;
    });
    s.on('end', () => s.end());
    s.on('close', () => resolve());
    s.write(request);
  });
}

async function run(count: number): Promise<{ cpu: number; wall: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await lifecycle();
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / count, wall: ((performance.now() - t0) * 1000) / count };
}

await run(Math.min(n, 5000));
const runs: Array<{ cpu: number; wall: number }> = [];
for (let i = 0; i < 5; i++) runs.push(await run(n));
runs.sort((x, y) => x.cpu - y.cpu);
const med = runs[2]!;
const expected = Math.min(n, 5000) + 5 * n;
if (served !== expected || received !== expected) {
  throw new Error(`served ${served} streams and received ${received} bytes, expected ${expected}`);
}
process.stdout.write(
  `tunnel stream lifecycle (client + server session, in memory): ${med.cpu.toFixed(1)} us CPU, ${med.wall.toFixed(1)} us wall (median of 5 x ${n}; CPU range ${runs[0]!.cpu.toFixed(1)}-${runs[4]!.cpu.toFixed(1)})\n`,
);
client.close();
server.close();
