/**
 * The health checks across an event-loop stall (a loaded host descheduling the process, a
 * long synchronous task, a GC pause). The probes of the edge (its connect, its name's
 * lookup) are bounded at 2 s; a stall longer than that while one waits is not the edge's
 * silence: the connect the kernel completed during the stall must be read, not reported as
 * "no answer within 2 s" (a soak's `status --health` failed so under load). A stopped edge
 * still fails them, stall or not. In process and on loopback.
 */
import t from 'tap';
import { edgeAndClient } from './health-helpers.js';

/** Blocks this thread for `ms`: nothing else in the process runs meanwhile. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {}
}

const edgeChecks = (checks: { name: string; status: string; detail: string }[]) =>
  checks.filter((c) => c.name.startsWith('Edge ') || c.name.startsWith('Tunneling'));

t.test('a stall longer than the probes’ 2 s does not fail them', async (t) => {
  const { client, port } = await edgeAndClient(t, '127.0.0.1');
  // The probes start at once (the connect is sent); the stall holds the answer unread.
  const pending = client.health();
  stall(2500);
  const checks = edgeChecks(await pending);
  t.equal(checks.length, 7, 'name, reachability and tunneling checks');
  t.same(
    checks.filter((c) => c.status !== 'pass'),
    [],
    'the edge checks pass',
  );
  t.match(
    checks.find((c) => c.name === 'Edge reachable (Internet Access)'),
    {
      detail: `127.0.0.1:${port} answers`,
    },
  );
});

t.test('a stopped edge still fails them, across a stall too', async (t) => {
  const { client, edge } = await edgeAndClient(t, '127.0.0.1');
  const down = new Promise((r) => client.tunnels.once('down', r));
  await edge.close({ graceMs: 0 });
  await down;
  const pending = client.health();
  stall(2500);
  const checks = await pending;
  t.match(
    checks.find((c) => c.name === 'Edge reachable (Internet Access)'),
    {
      status: 'fail',
      detail: /^ECONNREFUSED 127\.0\.0\.1:\d+$/,
    },
  );
  t.match(
    checks.find((c) => c.name === 'Tunneling succeeded (Internet Access)'),
    {
      status: 'fail',
    },
  );
});
