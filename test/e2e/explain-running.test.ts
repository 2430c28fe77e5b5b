/**
 * `gsa-emu explain --running` and the admin API's GET /explain: the running client's own
 * answer (its profiles from the edge, its toggles, its resolver with `--add-host` entries),
 * through `startWorld` as `gsa-emu up` runs it. Bad requests are 400s; the offline options
 * are refused with --running.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { explainRunning, formatExplanation } from '../../src/cli/commands/explain.js';
import { startWorld } from '../../src/cli/world.js';
import type { Explanation } from '../../src/client/explain.js';

t.test('explain against the running client', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-explain-running-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const world = await startWorld({
    run: 'netns', // per-run state file names: no lock on the folder
    stateDir: dir,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
    processLookup: false,
    edgeGraceMs: 100,
    hosts: { '*.mine.test': '127.0.0.1' },
  });
  t.teardown(() => world.stop());
  await world.client.waitConnected(10_000);
  // Its state file: `explain --running --admin` takes the token of the one with that address.
  world.writeState();
  const admin = world.client.addresses.admin!;
  const get = async (q: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`http://${admin}/explain${q}`, {
      headers: { authorization: `Bearer ${world.client.admin!.token}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  const priv = (await get('?target=http://intranet.contoso.test/')).body as unknown as Explanation;
  t.equal(priv.decision.action, 'tunnel');
  t.equal(priv.decision.channel, 'private');
  t.equal(priv.resolved, false, 'acquired by name: never resolved');

  // A name no rule acquires: the client resolves it (the --add-host entry) and classifies
  // it by address, as a SOCKS flow would be.
  const mine = await explainRunning('x.mine.test:3000', { admin, stateDir: dir });
  t.equal(mine.ip, '127.0.0.1');
  t.equal(mine.resolved, true);
  t.equal(mine.decision.action, 'bypass');
  t.equal(mine.decision.matched, '127.0.0.0/8');
  t.match(formatExplanation(mine), /resolved {2}no rule acquired the name: the client resolved it/);

  // The running client's toggles apply: with the internet tile off, news.test goes direct.
  const before = await explainRunning('news.test:80', { admin, stateDir: dir });
  t.equal(before.decision.channel, 'internet');
  world.client.toggle('internet', false);
  const after = await explainRunning('news.test:80', { admin, stateDir: dir });
  t.equal(after.decision.action, 'bypass');
  t.equal(after.decision.ruleId, null);

  const fromState = await explainRunning('news.test:80', { stateDir: dir });
  t.same(fromState, after, 'the address and token of the state folder alone');
  const quic = await explainRunning('contoso.sharepoint.com', { admin, stateDir: dir, udp: true });
  t.equal(quic.decision.action, 'drop', 'QUIC to SharePoint dropped (iOS)');

  for (const q of [
    '',
    '?target=',
    '?target=999.1.1.1',
    '?target=a.test:0',
    '?target=a.test&ip=nope',
  ]) {
    const r = await get(q);
    t.equal(r.status, 400, `GET /explain${q}`);
    t.equal(r.body.error, 'bad_request');
  }
  await t.rejects(explainRunning('news.test', { admin, stateDir: dir, tenant: 'x.json' }), {
    code: 'GSA_ERR_USAGE',
    message: /drop --tenant/,
  });
  await t.rejects(
    explainRunning('news.test', { admin, stateDir: dir, off: ['internet'], platform: 'windows' }),
    {
      message: /drop --off, --platform/,
    },
  );
  await t.rejects(explainRunning('news.test', { admin, stateDir: dir, ip: 'nope' }), {
    code: 'GSA_ERR_USAGE',
  });
});
