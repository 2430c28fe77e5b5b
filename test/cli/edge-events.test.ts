/**
 * `gsa-emu edge` prints its operational events after the banner, a line each: sessions up
 * and down (channel, user, device), refused tokens (a client with a wrong secret) and
 * refused tunnels, so a team running a shared edge sees a client being turned away;
 * `--quiet` prints the banner only. The edge and `up --once` run as children on loopback,
 * bounded in time and stopped by the test.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { edgeEventLine } from '../../src/cli/commands/edge.js';
import { until } from '../util/wait.js';
import { skip, startEdgeProcess, tempRoot, upOnce } from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);
const SECRET = 'ZWRnZS1ldmVudHMtdGVzdC1zZWNyZXQ';
const READY = /listening on (\S+)[\s\S]*Ctrl\+C to stop\.\n/;

t.test('edgeEventLine: time, event, key=value; odd values quoted', async (t) => {
  const line = edgeEventLine(
    'warn',
    { status: 401, error: 'invalid_client', description: "not this edge's", n: null },
    'token refused',
  );
  t.match(
    line,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warn token refused status=401 error=invalid_client description="not this edge's"\n$/,
  );
  t.match(
    edgeEventLine('info', { a: 'x=y', b: true }, 'session up'),
    / session up a="x=y" b=true\n$/,
  );
  t.match(edgeEventLine('info', {}, 'bare'), /Z bare\n$/);
});

async function tokenWith(url: string, secret: string): Promise<number> {
  const res = await fetch(`${url}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      userId: 'bob',
      deviceId: 'd1',
      channel: 'internet',
      client_secret: secret,
    }),
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  return res.status;
}

t.test('sessions and refusals, a line each', { skip }, async (t) => {
  const secretFile = join(root, 'secret');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const edge = await startEdgeProcess(
    t,
    newDir(),
    ['--client-secret-file', secretFile],
    READY,
    90_000,
  );
  const url = edge.m[1]!;
  const events = () => edge.output().slice(edge.out.length).split('\n').filter(Boolean);

  for (let i = 0; i < 8; i++)
    t.equal(await tokenWith(url, 'd3JvbmctZWRnZS1ldmVudHMtc2VjcmV0'), 401);
  t.ok(
    await until(() => events().some((l) => / warn token refused /.test(l)), 5000),
    'a refused token is a line',
  );
  const refused = events().filter((l) => / warn token refused /.test(l));
  t.match(
    refused[0],
    /status=401 error=invalid_client description="the client_secret is not this edge's" remote=127\.0\.0\.1/,
  );
  t.ok(
    refused.length >= 1 && refused.length <= 5,
    `a client retrying is not a line per try (${refused.length} of 8)`,
  );

  // A tunnel upgrade without a token (ws refuses it with 401 before any WebSocket).
  const status = await new Promise<number | string>((resolve) => {
    const req = request(`${url}/tunnel/internet`, {
      headers: {
        connection: 'upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
      timeout: 10_000,
    });
    req.on('response', (r) => {
      r.resume();
      resolve(r.statusCode ?? 0);
    });
    req.on('upgrade', (_r, sock) => {
      sock.destroy();
      resolve('upgraded');
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(e.message));
    req.end();
  });
  t.equal(status, 401, 'the upgrade without a token is refused');
  t.ok(
    await until(
      () => events().some((l) => / warn tunnel refused channel=internet status=401/.test(l)),
      5000,
    ),
    'a refused tunnel is a line',
  );

  const up = await upOnce(newDir(), ['--edge', url, '--edge-secret', secretFile]);
  t.equal(up.code, 0, `up --once with the secret (${up.err.trim()})`);
  t.ok(
    await until(() => events().filter((l) => / session down /.test(l)).length === 3, 10_000),
    'three sessions up and down',
  );
  for (const channel of ['m365', 'private', 'internet']) {
    t.ok(
      events().some((l) =>
        new RegExp(
          `Z session up channel=${channel} sessionId=\\S+ upn=alice@contoso\\.test userId=\\S+ deviceId=\\S+$`,
        ).test(l),
      ),
      `session up: ${channel}, with the user`,
    );
    t.ok(
      events().some((l) =>
        new RegExp(
          `Z session down channel=${channel} .*upn=alice@contoso\\.test .*closedBy=client$`,
        ).test(l),
      ),
      `session down: ${channel}, closed by the client`,
    );
  }
});

t.test('--quiet: the banner only', { skip }, async (t) => {
  const secretFile = join(root, 'secret-quiet');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const edge = await startEdgeProcess(
    t,
    newDir(),
    ['--client-secret-file', secretFile, '--quiet'],
    READY,
    60_000,
  );
  t.equal(await tokenWith(edge.m[1]!, 'd3JvbmctZWRnZS1ldmVudHMtc2VjcmV0'), 401);
  const up = await upOnce(newDir(), ['--edge', edge.m[1]!, '--edge-secret', secretFile]);
  t.equal(up.code, 0);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(edge.output(), edge.out, 'nothing after the banner');
});
