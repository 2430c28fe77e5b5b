/**
 * The cached token in status and health: a token past its expiry that could not be renewed
 * (the edge gone for longer than its lifetime) is not "Cached token: pass" nor Entra up.
 * The edge and the client listen on 127.0.0.1 and are closed by the test.
 */
import t from 'tap';
import { adminWorld } from './helpers.js';

t.test(
  'an expired token whose renewal fails is not "Cached token: pass" nor Entra up',
  async (t) => {
    const w = await adminWorld(t, {}, 'gsa-review-admin-');
    await w.client.waitConnected(5000);
    // The edge (and its token endpoint) goes away; two hours later the edge's tokens
    // (3600 s by default) have all expired and none could be renewed.
    await w.edge.close({ graceMs: 0 });
    const realNow = Date.now;
    const later = realNow() + 2 * 3600_000;
    Date.now = () => later;
    let checks: Awaited<ReturnType<typeof w.client.health>>;
    let entra: unknown;
    try {
      checks = await w.client.health();
      entra = w.client.status().channels.find((c) => c.channel === 'entra');
    } finally {
      Date.now = realNow;
    }
    const cached = checks.find((c) => c.name === 'Cached token');
    t.equal(cached?.status, 'fail', `Cached token: ${JSON.stringify(cached)}`);
    t.match(cached?.detail, /^token expired at \d{4}-/, 'says when it expired');
    t.match(
      entra,
      { up: false, detail: /^token expired at / },
      `status Entra: ${JSON.stringify(entra)}`,
    );
    // Now again: the same token is fine.
    const fresh = (await w.client.health()).find((c) => c.name === 'Cached token');
    t.equal(fresh?.status, 'pass', 'before its expiry: pass');
    t.match(
      w.client.status().channels.find((c) => c.channel === 'entra'),
      { up: true },
    );
  },
);
