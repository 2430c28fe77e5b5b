/**
 * `Poller.pollNow`: one poll at a time, calls that wait together share the next poll, a
 * changed document is applied once, the timer is not doubled, and the outcome says what
 * the poll did (changed, unchanged, failed).
 */
import t from 'tap';
import { EdgeApi, type GraphList } from '../../src/client/edge-api.js';
import type { Prof } from './control-api-fixture.js';
import { delay, fileEdge, until } from './helpers.js';

const edge = await fileEdge(t);

const api = (url = edge.url): EdgeApi =>
  new EdgeApi({ url, ca: edge.caPem, userId: 'alice', deviceId: 'dev-1' });

t.test('concurrent pollNow calls: no overlap, one apply, shared next poll', async (t) => {
  const a = api();
  t.teardown(() => a.close());
  const changes: GraphList[] = [];
  let checks = 0;
  let inChange = 0;
  let overlap = false;
  const poll = a.pollProfiles({
    intervalMs: 3_600_000,
    onChange: async (doc) => {
      inChange++;
      if (inChange > 1) overlap = true;
      changes.push(doc);
      await delay(20);
      inChange--;
    },
    onChecked: () => checks++,
  });
  t.teardown(() => poll.stop());
  // The first poll ended (its onChange returned): the next pollNow starts one at once.
  t.ok(await until(() => changes.length === 1 && inChange === 0, 3000), 'first document');
  await delay(10);
  const prof = (changes[0]!.value as Prof[]).find((p) => p.trafficForwardingType === 'm365')!;
  await a.setPolicyLinkState(prof.id, prof.policies[0]!.id, 'disabled');
  const before = checks;
  // The first starts a poll; the next two wait for it and share the one after it.
  const [o1, o2, o3] = await Promise.all([poll.pollNow(), poll.pollNow(), poll.pollNow()]);
  t.same(o1, { status: 200, changed: true }, 'the first poll fetches the change');
  t.same(o2, { status: 304, changed: false }, 'the next one finds nothing new');
  t.same(o3, o2, 'the waiting calls share that poll');
  t.equal(checks - before, 2, 'two requests, not three');
  t.equal(changes.length, 2, 'the change applied once');
  t.notOk(overlap, 'onChange never ran twice at once');
  t.same(await poll.pollNow(), { status: 304, changed: false }, 'then unchanged');
  poll.stop();
  t.same(await poll.pollNow(), { status: 'stopped' }, 'stopped: no poll');
  await a.setPolicyLinkState(prof.id, prof.policies[0]!.id, 'enabled');
});

t.test('pollNow during the timer: one timer afterwards, not two', async (t) => {
  const a = api();
  t.teardown(() => a.close());
  let checks = 0;
  const poll = a.pollProfiles({ intervalMs: 200, onChange: () => {}, onChecked: () => checks++ });
  t.teardown(() => poll.stop());
  t.ok(await until(() => checks >= 1, 3000), 'first poll');
  for (let i = 0; i < 5; i++) await Promise.all([poll.pollNow(), poll.pollNow()]);
  const n = checks;
  await delay(500);
  const more = checks - n;
  // One timer: 2 polls in 500 ms (at 200 and 400); two timers would make about 4.
  t.ok(more >= 1 && more <= 3, `${more} timer polls in 500 ms at a 200 ms interval`);
});

t.test('pollNow says when the edge did not answer', async (t) => {
  // A port nothing listens on (the edge's, after a moment's use, is not reliable: use 1).
  const a = new EdgeApi({ url: 'http://127.0.0.1:1', userId: 'alice', deviceId: 'dev-1' });
  t.teardown(() => a.close());
  const errors: Error[] = [];
  const poll = a.pollProfiles({
    intervalMs: 3_600_000,
    onChange: () => {},
    onError: (e) => errors.push(e),
  });
  t.teardown(() => poll.stop());
  const out = await poll.pollNow();
  t.equal(out.status, 'error');
  t.match(out, { error: { message: /ECONNREFUSED|connect/ } });
  t.ok(errors.length >= 1, 'onError heard it too');
});
