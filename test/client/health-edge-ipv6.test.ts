/**
 * A client of an edge on [::1]: the health checks name the edge as `[::1]:port` (was
 * `::1:port`, which reads as another address). In process and on loopback.
 */
import t from 'tap';
import { skipWithoutIpv6 } from '../util/ipv6.js';
import { edgeAndClient } from './health-helpers.js';

t.test('health names an IPv6 edge in brackets', { skip: await skipWithoutIpv6() }, async (t) => {
  const { client, port } = await edgeAndClient(t, '::1', '[::1]');
  const health = await client.health();
  const reach = health.find((c) => c.name.startsWith('Edge reachable'));
  t.match(reach, { status: 'pass', detail: `[::1]:${port} answers` });
  const resolves = health.find((c) => c.name === 'Edge hostname resolves');
  t.match(resolves, { status: 'pass', detail: `[::1]:${port}` });
});
