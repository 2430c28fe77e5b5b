/**
 * `gsa-emu up`'s "try" lines when a channel's tunnel is not up while the banner is drawn
 * (the edge is not there yet, or its session dropped): a flow the classifier tunnels then
 * takes its rule's fallback (the forwarder's hardening), so the line says that, not
 * "tunneled". Once the tunnel is up, the line says "tunneled" again.
 *
 * The edge and the client listen on 127.0.0.1 and are closed by the test.
 */
import { join } from 'node:path';
import t from 'tap';
import type { Decision } from '../../src/classify/types.js';
import { bannerText } from '../../src/cli/commands/up.js';
import { startClient } from '../../src/client/client.js';
import { DEMO_TRIES, type DecidedTry, type Demo, decideTries } from '../../src/client/demo.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { plainEdge, socksConnect } from '../client/edge-restart-helpers.js';
import { closedPort, tempDir, until } from '../edge/helpers.js';
import { decision } from '../forward/fixtures/fakes.js';
import { bannerClient, line } from './banner-helpers.js';

const DEMO = { caFile: '/x/ca.pem' } as Demo;
const BASE = {
  dir: '/x',
  edgeUrl: 'https://127.0.0.1:1',
  demo: DEMO,
  inProcess: null,
  auth: false,
};

t.test('bannerText: a tunneled decision on a channel that is down says its fallback', async (t) => {
  const up: Record<string, boolean> = { entra: true, m365: true, private: false, internet: false };
  const client = bannerClient('Some channels are unreachable', up);
  const decided: Record<string, Decision> = {
    'intranet.contoso.test': decision({ action: 'tunnel', channel: 'private', fallback: 'block' }),
    fs1: decision({ action: 'tunnel', channel: 'private', fallback: 'block' }),
    'outlook.office365.com': decision({ action: 'tunnel', channel: 'm365' }),
    'news.test': decision({ action: 'tunnel', channel: 'internet', fallback: 'bypass' }),
    'bypass.example.test': decision({ action: 'bypass', reason: 'a bypass rule' }),
    'casino.test': decision({ action: 'tunnel', channel: 'internet', fallback: 'bypass' }),
  };
  const tries: DecidedTry[] = DEMO_TRIES.map((x) => ({ ...x, decision: decided[x.host]! }));
  const text = bannerText(client, { ...BASE, tun: null, tries });
  t.match(
    line(text, 'intranet.contoso.test'),
    /# Private Access tunnel not connected: blocked \(fallback block\)$/,
  );
  t.match(line(text, 'outlook.office365.com'), /# Microsoft 365, tunneled$/, 'm365 is up');
  t.match(
    line(text, 'news.test'),
    /# Internet Access tunnel not connected: goes direct \(fallback bypass\)$/,
  );
  t.match(line(text, 'bypass.example.test'), /# bypassed: a bypass rule$/);
  // Not "blocked at the edge": the flow does not reach the edge.
  t.match(
    line(text, 'casino.test'),
    /# Internet Access tunnel not connected: goes direct \(fallback bypass\)$/,
  );
  t.notMatch(text, /Internet Access, tunneled|Private Access, tunneled/);
  // TUN mode: the same.
  const tun = bannerText(
    { ...client, addresses: { socks: null, http: null, pac: null, admin: null } },
    {
      ...BASE,
      tun: { name: 'gsa0', address: '10.0.0.1', source: null, dns: null, table: 1, pref: 1 },
      tries,
    },
  );
  t.match(
    tun,
    /^ {2}curl http:\/\/news\.test\/ +# Internet Access tunnel not connected: goes direct \(fallback bypass\)$/m,
  );
});

t.test('a real client whose edge went away: the lines say what its flows then do', async (t) => {
  const tmp = await tempDir('gsa-up-banner-down-');
  t.teardown(tmp.remove);
  const edge: Edge = await startEdge(plainEdge(join(tmp.dir, 'edge')));
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url },
    tenant: 'edge',
    profilePollMs: 60_000,
    listen: { socksPort: 0, httpPort: 0, pacPort: null, adminPort: null },
    // news.test by its demo address (the Internet profile acquires it by address); a flow
    // that goes direct dials a closed loopback port, never the address.
    resolver: {
      hosts: { 'news.test': '6.6.254.11' },
      dial: { 'news.test': `127.0.0.1:${await closedPort()}` },
      system: false,
      directIp: false,
    },
    processLookup: false,
  });
  t.teardown(() => client.close());
  await client.waitConnected(10_000);
  const banner = async (): Promise<string> =>
    bannerText(client, { ...BASE, tun: null, tries: await decideTries(client.forwarder) });
  const before = await banner();
  t.match(line(before, 'news.test'), /# Internet Access, tunneled$/, 'up: tunneled');
  t.match(line(before, 'intranet.contoso.test'), /# Private Access, tunneled$/, 'up: tunneled');

  await edge.kill();
  t.ok(
    await until(() => !client.tunnels.isUp('internet') && !client.tunnels.isUp('private'), 5000),
    'channels down',
  );
  const after = await banner();
  const intranet = line(after, 'intranet.contoso.test');
  const news = line(after, 'news.test');
  t.match(
    intranet,
    /# Private Access tunnel not connected: (blocked|goes direct) \(fallback \w+\)$/,
  );
  t.match(news, /# Internet Access tunnel not connected: (blocked|goes direct) \(fallback \w+\)$/);

  // What the flows then really do: the forwarder's hardening, as the lines say.
  const port = Number(client.addresses.socks!.split(':').pop());
  for (const [host, text] of [
    ['intranet.contoso.test', intranet],
    ['news.test', news],
  ] as const) {
    const { s } = await socksConnect(port, host, 80);
    s.destroy();
    const rec = client.flows.list().find((f) => f.destinationFqdn === host);
    const fallback = /fallback (\w+)\)$/.exec(text)?.[1];
    t.equal(rec?.hardening, 'Y', `${host}: hardening applied`);
    t.equal(rec?.action, fallback === 'block' ? 'Block' : 'Bypass', `${host}: ${text.trim()}`);
  }
});
