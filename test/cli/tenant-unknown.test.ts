/**
 * Before the first forwarding profile arrives from the edge (an edge not reached), `up`'s
 * banner and `status` say that the tenant is not known yet, in the same words, not
 * `tenant - (-)`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { bannerText } from '../../src/cli/commands/up.js';
import { startClient } from '../../src/client/client.js';
import { formatStatus } from '../../src/client/format.js';
import { closedPort } from '../util/free-port.js';
import { startUp } from '../util/up-in-process.js';
import { bannerClient } from './banner-helpers.js';

const UNKNOWN = 'unknown (no forwarding profile from the edge yet)';

const dir = await mkdtemp(join(tmpdir(), 'gsa-tenant-unknown-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('up: the banner of an edge not reached', async (t) => {
  const port = await closedPort();
  const u = startUp({
    stateDir: join(dir, 'up'),
    edge: `https://127.0.0.1:${port}`,
    socksPort: '0',
    httpPort: '0',
    once: true,
    tty: false,
  });
  await t.rejects(u.run, { code: 'GSA_ERR_NOT_READY' });
  t.match(u.text, `\ntenant ${UNKNOWN}, platform ios, edge https://127.0.0.1:${port}\n`);
  t.notMatch(u.text, '- (-)');
});

t.test('status: the same words', async (t) => {
  const port = await closedPort();
  const client = await startClient({
    edge: { url: `https://127.0.0.1:${port}`, ca: null },
    tenant: 'edge',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    processLookup: false,
  });
  t.teardown(() => client.close());
  const text = formatStatus(client.status());
  t.match(text, `\ntenant: ${UNKNOWN}; profiles from edge https://127.0.0.1:${port}\n`);
  t.notMatch(text, '- (-)');
});

t.test('a known tenant is named with its id', async (t) => {
  const text = bannerText(bannerClient('Connected', { m365: true }), {
    dir,
    edgeUrl: 'https://edge.test:8443',
    demo: null,
    inProcess: null,
    auth: false,
    once: true,
    tun: null,
  });
  t.match(text, '\ntenant T (t), platform ios, edge https://edge.test:8443\n');
});
