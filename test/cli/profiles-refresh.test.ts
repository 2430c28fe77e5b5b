/**
 * `gsa-emu profiles refresh` (admin API POST /profile/refresh) against a real `up` child
 * that polls its edge once an hour: a profile change made through the edge's control API
 * is in force as soon as the command returns, a second refresh finds nothing new, the
 * endpoint is authenticated and POST-only, and an edge that does not answer is a clear
 * error that leaves the profiles in force.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { EXPAND_ALL } from '../../src/policy/graph.js';
import type { Prof } from '../edge/control-api-fixture.js';
import { httpCall } from '../util/http-calls.js';
import { cli, skip, startHttpOnlyUp, tempRoot } from './cli-ux-helpers.js';

const PROFILES = '/beta/networkAccess/forwardingProfiles';
const EXPAND = `${PROFILES}?$expand=${encodeURIComponent(EXPAND_ALL)}`;
/** The default tenant's Private Access app "Contoso RDP" (test/edge/control-api.test.ts). */
const RDP = '127.77.0.5:3389';

interface Status {
  classifierGeneration: number;
  profileSource: string;
  profileLoadedAt: string | null;
  overview: { forwardingProfileId: string | null };
}

t.test('profiles refresh applies an edge change at once', { skip }, async (t) => {
  const { root, newDir } = await tempRoot(t);
  let edge: Edge | null = await startEdge({ stateDir: join(root, 'edge'), tls: false });
  t.teardown(() => edge?.close({ graceMs: 0 }));
  const admin = await edge.issueToken({ channel: 'graph', userId: 'admin' });
  const edgeUrl = edge.url;
  const dir = newDir();
  await startHttpOnlyUp(t, dir, ['--edge', edgeUrl, '--profile-poll', '3600000'], 110);
  const sd = ['--state-dir', dir];
  // The admin API straight (fewer CLI runs keep this file quick on a busy machine).
  const state = JSON.parse(readFileSync(join(dir, 'client.json'), 'utf8')) as { admin: string };
  const token = readFileSync(join(dir, 'client.token'), 'utf8').trim();
  const bearer = { authorization: `Bearer ${token}` };
  const adminGet = (path: string) =>
    httpCall(`http://${state.admin}${path}`, 'GET', { headers: bearer });
  const status = async (): Promise<Status> => (await adminGet('/status')).json as Status;
  /** The running client's decision for an RDP flow to the app: action and channel. */
  const explainRdp = async (): Promise<string> => {
    const d = (await adminGet(`/explain?target=${RDP}`)).json.decision;
    return `${d.action} ${d.channel}`;
  };

  const s0 = await status();
  t.match(s0.profileSource, /^edge http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(await explainRdp(), 'tunnel private', 'RDP is tunneled (Private Access) before');

  // An administrator disables the RDP app's policy link on the edge.
  const list = await httpCall(`${edgeUrl}${EXPAND}`, 'GET', {
    headers: { authorization: `Bearer ${admin}` },
  });
  t.equal(list.status, 200, 'the control API lists the profiles');
  const priv = (list.json.value as Prof[]).find((p) => p.trafficForwardingType === 'private')!;
  const rdp = priv.policies.find((l) => l.policy.name === 'Contoso RDP')!;
  t.ok(rdp, 'the default tenant has the RDP app');
  const patch = await httpCall(`${edgeUrl}${PROFILES}/${priv.id}/policies/${rdp.id}`, 'PATCH', {
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: '{"state":"disabled"}',
  });
  t.equal(patch.status, 204, 'PATCH disabled the link');
  t.equal((await status()).classifierGeneration, s0.classifierGeneration, 'not polled yet');

  const r1 = await cli(['profiles', 'refresh', ...sd]);
  t.equal(r1.code, 0, `profiles refresh: ${r1.err}`);
  const m =
    /^profiles refreshed from edge http:\/\/127\.0\.0\.1:\d+: generation (\d+) \(changed\)\n$/.exec(
      r1.out,
    );
  t.ok(m, `says changed: ${r1.out}`);
  const st = await cli(['status', '--json', ...sd]);
  t.equal(st.code, 0, `status --json: ${st.err}`);
  const s1 = JSON.parse(st.out) as Status;
  t.equal(s1.classifierGeneration, Number(m?.[1]), 'status has that generation');
  t.ok(s1.classifierGeneration > s0.classifierGeneration, 'a new classifier');
  t.not(s1.overview.forwardingProfileId, s0.overview.forwardingProfileId, 'other rules');
  t.not(await explainRdp(), 'tunnel private', 'RDP is not tunneled at once');

  // Nothing new on the edge: unchanged, same generation; --json has the status fields.
  const r2 = await cli(['profiles', 'refresh', '--json', ...sd]);
  t.equal(r2.code, 0, `profiles refresh --json: ${r2.err}`);
  t.same(JSON.parse(r2.out), {
    changed: false,
    profileSource: s1.profileSource,
    profileLoadedAt: s1.profileLoadedAt,
    classifierGeneration: s1.classifierGeneration,
    tenantId: JSON.parse(r2.out).tenantId,
  });
  const r3 = await cli(['profiles', 'refresh', ...sd]);
  t.match(r3.out, `: generation ${s1.classifierGeneration} (unchanged)\n`);

  // The endpoint: the token as for POST /toggle, POST only.
  const url = `http://${state.admin}/profile/refresh`;
  const json = { 'content-type': 'application/json' };
  t.equal((await httpCall(url, 'POST', { headers: json, body: '{}' })).status, 401, 'no token');
  const get = await httpCall(url, 'GET', { headers: { authorization: `Bearer ${token}` } });
  t.equal(get.status, 405, 'GET is 405');
  t.equal(get.headers.allow, 'POST');
  const noBody = await httpCall(url, 'POST', {
    headers: { ...json, authorization: `Bearer ${token}` },
  });
  t.equal(noBody.status, 200, 'no body is fine');
  t.equal(noBody.json.changed, false);
  const wrongFile = join(root, 'wrong.token');
  writeFileSync(wrongFile, 'x'.repeat(43));
  const wrong = await cli([
    'profiles',
    'refresh',
    '--admin',
    state.admin,
    '--admin-token',
    wrongFile,
  ]);
  t.equal(wrong.code, 1, 'wrong token: exit 1');
  t.match(wrong.err, `refused the token in ${wrongFile} (--admin-token)`);
  t.equal(wrong.out, '');

  // The edge goes away: a clear error, exit 1, and the profiles stay.
  await edge.close({ graceMs: 0 });
  edge = null;
  const down = await cli(['profiles', 'refresh', ...sd]);
  t.equal(down.code, 1, 'edge down: exit 1');
  t.match(
    down.err,
    /^gsa-emu: cannot fetch forwarding profiles from the edge http:\/\/127\.0\.0\.1:\d+: .*the client keeps the profiles it had/,
  );
  t.equal(down.out, '');
  const s2 = await status();
  t.equal(s2.classifierGeneration, s1.classifierGeneration, 'profiles kept');
  t.equal(s2.overview.forwardingProfileId, s1.overview.forwardingProfileId);
});

t.test('profiles refresh with profiles from a file: no edge to ask', { skip }, async (t) => {
  const { root, newDir } = await tempRoot(t);
  const edge = await startEdge({ stateDir: join(root, 'edge'), tls: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const file = join(root, 'tenant.json');
  // The edge's own document, as a tenant file.
  const admin = await edge.issueToken({ channel: 'graph', userId: 'admin' });
  const doc = await httpCall(`${edge.url}${EXPAND}`, 'GET', {
    headers: { authorization: `Bearer ${admin}` },
  });
  writeFileSync(file, JSON.stringify(doc.json));
  const dir = newDir();
  await startHttpOnlyUp(t, dir, ['--edge', edge.url, '--tenant', file], 60);
  const r = await cli(['profiles', 'refresh', '--state-dir', dir]);
  t.equal(r.code, 1, 'exit 1');
  t.match(r.err, `come from ${file}, read at start (--tenant), not from its edge`);
  t.equal(r.out, '');
});
