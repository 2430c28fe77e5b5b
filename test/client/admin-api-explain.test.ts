/**
 * GET /explain's query values: `udp=1` (or `true`) asks about UDP, `0` / `false` / none
 * about TCP, and any other value is a 400, not a silent TCP answer. The edge and the
 * client listen on 127.0.0.1 and are closed by the test.
 */
import t from 'tap';
import { Agent } from 'undici';
import { httpCall } from '../util/http-calls.js';
import { adminWorld } from './helpers.js';

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

t.test('udp= takes 1/true and 0/false; another value is a 400', async (t) => {
  const { base, auth } = await adminWorld(t, {}, 'gsa-admin-explain-');
  const get = (q: string) =>
    httpCall(`${base}/explain?target=10.1.2.3:443${q}`, 'GET', { headers: auth, dispatcher });
  for (const [q, protocol] of [
    ['', 'tcp'],
    ['&udp=1', 'udp'],
    ['&udp=true', 'udp'],
    ['&udp=0', 'tcp'],
    ['&udp=false', 'tcp'],
  ] as const) {
    const r = await get(q);
    t.equal(r.status, 200, `${q || 'no udp'}: 200`);
    t.equal(r.json?.protocol, protocol, `${q || 'no udp'}: ${protocol}`);
  }
  for (const q of ['&udp=yes', '&udp=', '&udp=2']) {
    const r = await get(q);
    t.equal(r.status, 400, `${q}: 400`);
    t.match(r.json, { error: 'bad_request', message: /udp/ }, `${q}: says which value`);
  }
});

t.test('an unknown or repeated parameter is a 400, not a silent answer', async (t) => {
  const { base, auth } = await adminWorld(t, {}, 'gsa-admin-explain-params-');
  const get = (q: string) =>
    httpCall(`${base}/explain?target=10.1.2.3:443${q}`, 'GET', { headers: auth, dispatcher });
  for (const [q, says] of [
    // A typo: the answer would be TCP's.
    ['&upd=1', /unknown parameter upd/],
    ['&proto=udp', /unknown parameter proto/],
    ['&udp=1&udp=0', /udp given more than once/],
    ['&target=10.9.9.9:53', /target given more than once/],
    ['&ip=10.0.0.1&ip=10.0.0.2', /ip given more than once/],
  ] as const) {
    const r = await get(q);
    t.equal(r.status, 400, `${q}: 400`);
    t.match(r.json, { error: 'bad_request', message: says }, `${q}: says which`);
  }
  t.equal((await get('&udp=1&ip=10.0.0.1')).status, 200, 'the known ones once each: 200');
});
