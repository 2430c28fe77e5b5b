/**
 * A forwarding-profile document the client cannot use, served by its edge (an edge of
 * another version, or one that is not gsa-emu's): the client keeps its profiles, and
 * every refresh says the document is rejected for as long as the edge serves it, not
 * only the first one (whose 200 brought it; the later ones are 304s for the same ETag).
 * Once the edge serves a usable document again, the next refresh applies it.
 */
import { join } from 'node:path';
import t from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdge } from '../../src/edge/server.js';
import { tempDir } from '../edge/helpers.js';

const NO_LISTENERS = { socksPort: null, httpPort: null, pacPort: null, adminPort: null };

t.test('a rejected edge document is reported by every refresh until it changes', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url },
    tenant: 'edge',
    profilePollMs: 3_600_000,
    listen: NO_LISTENERS,
  });
  t.teardown(() => client.close());
  const gen = client.generation;
  t.ok(client.tenant, 'the edge profiles are in force');

  // The edge now serves a document with a profile of a type the client does not know.
  const store = edge.tenant as unknown as Record<string, unknown>;
  store.list = () => ({
    value: [{ id: 'p1', name: 'Odd', trafficForwardingType: 'teleport', state: 'enabled' }],
  });
  Object.defineProperty(store, 'etag', { get: () => 'W/"not-usable"', configurable: true });

  const first = await client.refreshProfiles();
  t.equal(first.error?.reason, 'profile_rejected', 'the new document is rejected');
  t.match(first.error?.message, /sent forwarding profiles the client cannot use: /);
  t.equal(first.changed, false);
  t.equal(first.classifierGeneration, gen, 'the profiles in force are kept');

  // The same document again (the edge answers 304): still rejected, still said.
  for (let i = 0; i < 2; i++) {
    const again = await client.refreshProfiles();
    t.equal(again.error?.reason, 'profile_rejected', `refresh ${i + 2} still says rejected`);
    t.match(again.error?.message, /still serves forwarding profiles the client cannot use: /);
    t.match(again.error?.message, first.error?.message.split(': ').slice(1, 2).join(''));
    t.equal(again.changed, false);
    t.equal(again.classifierGeneration, gen);
  }
  const valid = async () =>
    (await client.health()).find((c) => c.name === 'Forwarding profile present and valid');
  t.match(await valid(), { status: 'warn', detail: /rejected/ }, 'health says so meanwhile');

  // The edge serves its usable document again: applied, no error.
  delete store.list;
  delete store.etag;
  const fixed = await client.refreshProfiles();
  t.equal(fixed.error, null, 'a usable document: no error');
  t.equal(fixed.changed, true);
  t.ok(fixed.classifierGeneration > gen, 'a new classifier generation');
  t.match(await valid(), { status: 'pass' }, 'health is clear again');
});
