/**
 * A client of an edge on [::1]: the health checks name the edge as `[::1]:port` (was
 * `::1:port`, which reads as another address). In process and on loopback.
 */
import { join } from 'node:path';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdge } from '../../src/edge/server.js';
import { tempDir } from '../edge/helpers.js';
import { skipWithoutIpv6 } from '../util/ipv6.js';

t.test('health names an IPv6 edge in brackets', { skip: await skipWithoutIpv6() }, async (t) => {
  const tmp = await tempDir('gsa-health-v6-');
  t.teardown(tmp.remove);
  const edge = await startEdge({
    host: '::1',
    stateDir: join(tmp.dir, 'edge'),
    tls: false,
    persistKey: false,
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const port = new URL(edge.url).port;
  const client = await startClient({
    edge: { url: `http://[::1]:${port}`, ca: null },
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: null },
    resolver: { system: false },
    processLookup: false,
    localSubnets: [],
  });
  t.teardown(() => client.close());
  await client.waitConnected(10_000);
  const health = await client.health();
  const reach = health.find((c) => c.name.startsWith('Edge reachable'));
  t.match(reach, { status: 'pass', detail: `[::1]:${port} answers` });
  const resolves = health.find((c) => c.name === 'Edge hostname resolves');
  t.match(resolves, { status: 'pass', detail: `[::1]:${port}` });
});
