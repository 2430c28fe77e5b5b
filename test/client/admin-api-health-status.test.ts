/**
 * GET /health's HTTP status tells a script (curl -f, a readiness probe) what its checks say:
 * 200 while no check fails, 503 while one does (the edge stopped: unreachable, tunnels down),
 * 200 again once the edge is back; the body is the same either way, with `healthy`. The
 * `status --health` command still prints the checks of an unhealthy client. The edge and
 * the client listen on 127.0.0.1 (free ports) and are closed by the test.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Agent } from 'undici';
import { adminCall } from '../../src/client/admin-client.js';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { CHANNELS } from '../../src/policy/model.js';
import { tempDir } from '../edge/helpers.js';
import { httpCall, type Reply } from '../util/http-calls.js';
import { collect } from '../util/ts-child.js';
import { until } from '../util/wait.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

interface Health {
  healthy: boolean;
  checks: Array<{ name: string; status: string; detail: string }>;
}

t.test('/health: 503 while a check fails, 200 once they pass again', async (t) => {
  const tmp = await tempDir('gsa-health-status-');
  t.teardown(tmp.remove);
  const stateDir = join(tmp.dir, 'edge');
  let edge: Edge = await startEdge({ stateDir, tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const port = Number(new URL(edge.url).port);
  const client: RunningClient = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    // A capture service, so that "Services running" passes.
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 },
    resolver: { system: false },
    processLookup: false,
  });
  t.teardown(() => client.close());
  const admin = client.admin!;
  const auth = { authorization: `Bearer ${admin.token}` };
  const health = (): Promise<Reply> =>
    httpCall(`${admin.url}/health`, 'GET', { headers: auth, dispatcher });
  const failing = (r: Reply) =>
    (r.json as Health).checks.filter((c) => c.status === 'fail').map((c) => c.name);

  const allUp = () => CHANNELS.every((c) => client.tunnels.isUp(c));
  t.ok(await until(allUp, 10_000), 'the tunnels are up');
  const up = await health();
  t.same(failing(up), [], 'no check fails with the edge up');
  t.equal(up.status, 200, 'healthy: 200');
  t.equal((up.json as Health).healthy, true, 'healthy: true');

  await edge.close({ graceMs: 0 });
  t.ok(await until(() => !client.tunnels.isUp('internet')), 'the tunnel is down');
  const down = await health();
  t.ok(failing(down).includes('Edge reachable (Internet Access)'), 'the edge is unreachable');
  t.equal(down.status, 503, 'unhealthy: 503');
  t.equal((down.json as Health).healthy, false, 'healthy: false');
  t.equal(down.headers['content-type'], 'application/json; charset=utf-8', 'still JSON');
  const head = await httpCall(`${admin.url}/health`, 'HEAD', { headers: auth, dispatcher });
  t.equal(head.status, 503, 'HEAD says the same');

  // What `status --health` reads: the checks of an unhealthy client, not an error.
  const viaCli = await adminCall<Health>(
    { url: admin.url, token: admin.token, from: null },
    'GET',
    '/health',
    undefined,
    { accept: [503] },
  );
  t.equal(viaCli.healthy, false, 'adminCall takes the 503 body when asked to');

  // The command: the checks on stdout, then exit 1 with the failed ones named on stderr.
  const tokenFile = join(tmp.dir, 'admin.token');
  await writeFile(tokenFile, admin.token ?? '', { mode: 0o600 });
  const statusHealth = async (json: boolean) =>
    collect(
      spawn(
        process.execPath,
        [
          mainJs,
          'status',
          '--health',
          '--admin',
          admin.url,
          '--admin-token',
          tokenFile,
          ...(json ? ['--json'] : []),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      30_000,
    );
  const cli = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
  if (!cli) {
    const text = await statusHealth(false);
    t.equal(text.code, 1, 'status --health: exit 1 while a check fails');
    t.match(text.out, /FAIL\s+Edge reachable \(Internet Access\)/, 'the checks are printed');
    t.match(
      text.err,
      /^gsa-emu: \d+ health checks failed: .*Edge reachable \(Internet Access\)/,
      'stderr names the failed checks',
    );
    const json = await statusHealth(true);
    t.equal(json.code, 1, 'status --health --json: exit 1 too');
    t.equal(
      (JSON.parse(json.out) as { health: Health['checks'] }).health.some(
        (c) => c.status === 'fail',
      ),
      true,
      'the JSON has the checks',
    );
  }

  edge = await startEdge({ stateDir, tls: false, persistKey: false, port });
  t.ok(await until(allUp, 30_000), 'the tunnels are back');
  const back = await health();
  t.same(failing(back), [], 'no check fails once the edge is back');
  t.equal(back.status, 200, 'healthy again: 200');
  if (!cli) {
    const ok = await statusHealth(false);
    t.equal(ok.code, 0, 'status --health: exit 0 once no check fails');
    t.equal(ok.err, '', 'nothing on stderr');
  } else t.comment(`skipped the status --health command: ${cli}`);
});
