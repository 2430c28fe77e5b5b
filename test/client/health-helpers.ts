/**
 * The health tests' setup: an edge on `host` (plain, its key not kept) and a client of it,
 * connected, with no listeners, no DNS and no process lookup; both stopped at the end of `t`
 * (the edge may be stopped before).
 */
import { join } from 'node:path';
import type { Test } from 'tap';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { tempDir } from '../edge/helpers.js';
import { NO_LISTENERS } from './edge-restart-helpers.js';

/** `urlHost` is how the client names the edge (`[::1]`, `localhost`); default `host`. */
export async function edgeAndClient(
  t: Test,
  host: string,
  urlHost = host,
): Promise<{ client: RunningClient; edge: Edge; port: string; dir: string }> {
  const tmp = await tempDir('gsa-health-');
  t.teardown(tmp.remove);
  const edge = await startEdge({
    host,
    stateDir: join(tmp.dir, 'edge'),
    tls: false,
    persistKey: false,
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const port = new URL(edge.url).port;
  const client = await startClient({
    edge: { url: `http://${urlHost}:${port}`, ca: null },
    listen: NO_LISTENERS,
    resolver: { system: false },
    processLookup: false,
    localSubnets: [],
  });
  t.teardown(() => client.close());
  await client.waitConnected(10_000);
  return { client, edge, port, dir: tmp.dir };
}
