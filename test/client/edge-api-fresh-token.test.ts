/**
 * EdgeApi.getToken(channel, { fresh: true }): the edge refused the cached token, so it is
 * dropped and a new one fetched; when that fetch fails, the refused token is not handed out
 * again (a plain getToken keeps a cached token while it is valid).
 */
import { join } from 'node:path';
import t from 'tap';
import { EdgeApi } from '../../src/client/edge-api.js';
import { startEdge } from '../../src/edge/server.js';
import { tempDir } from '../edge/helpers.js';

t.test('fresh: a new token; none when the edge is gone', async (t) => {
  const tmp = await tempDir('gsa-fresh-token-');
  t.teardown(tmp.remove);
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, persistKey: false });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : edge.close({ graceMs: 0 })));
  const api = new EdgeApi({ url: edge.url, userId: 'alice', deviceId: 'dev1' });
  t.teardown(() => api.close());
  const first = await api.getToken('internet');
  t.equal(await api.getToken('internet'), first, 'cached');
  t.equal(api.tokenFetches, 1);
  await api.getToken('internet', { fresh: true });
  t.equal(api.tokenFetches, 2, 'fresh: fetched again');
  t.ok(api.tokenInfo('internet'), 'and cached');
  await edge.close({ graceMs: 0 });
  stopped = true;
  t.ok(await api.getToken('internet'), 'the edge gone: the cached token still comes back');
  await t.rejects(api.getToken('internet', { fresh: true }), 'fresh: not the refused one');
  t.equal(api.tokenInfo('internet'), null, 'nothing cached');
});
