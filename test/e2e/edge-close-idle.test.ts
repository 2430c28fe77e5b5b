/**
 * `await edge.close()` before `await client.close()`, from code: a client with no flow in
 * progress lets the edge close at once (each session ends on GOAWAY as soon as it has no
 * stream, src/tunnel/session.ts maybeFinish), not after the grace period; a flow still open
 * keeps its session for the grace period (tunnel.test.ts "graceful close"). The grace here
 * is 60 s, so a close within 2 s is not the grace running out.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import t from 'tap';
import { startTestWorld, until } from './helpers.js';

const GRACE_MS = 60_000;

/** Resolves 'closed' when `p` settles, or 'grace' when `ms` pass first. */
async function within(p: Promise<void>, ms: number): Promise<'closed' | 'grace'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'grace'>((r) => {
    timer = setTimeout(() => r('grace'), ms);
  });
  try {
    return await Promise.race([p.then(() => 'closed' as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('an idle client: the edge closes without waiting for the grace period', async (t) => {
  const w = await startTestWorld({
    prefix: 'gsa-h133-idle-',
    listen: { socksPort: null, httpPort: 0, pacPort: null, adminPort: null },
  });
  t.teardown(() => w.close());
  t.ok(w.edge.sessions.size > 0, 'the client has its sessions');
  // One flow, ended: the proxy connection asks for close.
  const c = connect(Number(w.client.addresses.http!.split(':').at(-1)), '127.0.0.1');
  await once(c, 'connect');
  c.end(
    'GET http://intranet.contoso.test/ HTTP/1.1\r\nHost: intranet.contoso.test\r\nConnection: close\r\n\r\n',
  );
  let answer = '';
  c.on('data', (d: Buffer) => (answer += d));
  await once(c, 'close');
  t.match(answer, /tunneled/, 'the flow went through the tunnel');
  await until(() => w.closedFlow('intranet.contoso.test'), 'the flow ended');
  await until(() => w.edge.activeFlows === 0, 'no flow at the edge');
  const closing = w.edge.close({ graceMs: GRACE_MS });
  t.equal(await within(closing, 2000), 'closed', 'closed long before the grace');
  t.equal(w.edge.sessions.size, 0, 'every session ended');
  await closing;
});

t.test('a flow in progress keeps its session until it ends', async (t) => {
  const w = await startTestWorld({
    prefix: 'gsa-h133-open-',
    listen: { socksPort: null, httpPort: 0, pacPort: null, adminPort: null },
  });
  t.teardown(() => w.close());
  // A CONNECT tunnel (as undici's ProxyAgent makes, kept alive in its pool): the flow stays
  // open after its answer, though the application is not sending anything.
  const c = connect(Number(w.client.addresses.http!.split(':').at(-1)), '127.0.0.1');
  c.on('error', () => {});
  await once(c, 'connect');
  c.write('CONNECT intranet.contoso.test:80 HTTP/1.1\r\nHost: intranet.contoso.test:80\r\n\r\n');
  await once(c, 'data');
  c.write('GET / HTTP/1.1\r\nHost: intranet.contoso.test\r\n\r\n');
  await once(c, 'data');
  await until(() => w.edge.activeFlows > 0, 'the flow at the edge');
  const closing = w.edge.close({ graceMs: GRACE_MS });
  t.equal(await within(closing, 1000), 'grace', 'the edge waits for the open flow');
  c.end();
  t.equal(await within(closing, 10_000), 'closed', 'and closes once it ended');
});
