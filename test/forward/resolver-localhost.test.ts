/**
 * `localhost` and names under it are loopback (RFC 6761 6.3) also when the system resolver
 * is off (gsa-emu up without --allow-internet): a developer's app on localhost is reached
 * through the proxies. The hosts map still wins. No network: nothing is looked up.
 */
import t from 'tap';
import { isLocalhostName, Resolver } from '../../src/forward/resolver.js';

t.test('localhost names resolve to 127.0.0.1 without the system resolver', async (t) => {
  const r = new Resolver({ system: false, hosts: { 'pinned.localhost': '127.0.0.9' } });
  for (const name of ['localhost', 'LocalHost', 'localhost.', 'app.localhost', 'a.b.localhost']) {
    t.equal(await r.resolve(name), '127.0.0.1', `${name}: 127.0.0.1`);
  }
  t.equal(await r.resolve('pinned.localhost'), '127.0.0.9', 'the hosts map wins');
  for (const name of ['notlocalhost', 'localhost.example.test', 'mylocalhost']) {
    t.equal(await r.resolve(name), null, `${name}: not a localhost name, unresolved`);
    t.notOk(isLocalhostName(name), `${name}: not localhost`);
  }
});
