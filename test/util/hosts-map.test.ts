/**
 * One hosts-map implementation for the edge (egress, connector) and the client's dial map
 * (Resolver.dialTarget): the same syntax, the same lookups, the same validation.
 */
import t from 'tap';
import { Resolver } from '../../src/forward/resolver.js';
import { HostsMap } from '../../src/util/hosts-map.js';

const MAP = {
  'intranet.contoso.test': '127.0.0.1',
  'intranet.contoso.test:443': '127.0.0.1:18443',
  '*.corp.contoso.test': '127.0.0.2',
  'autodiscover.*.onmicrosoft.test': '127.0.0.3:8443',
  '10.1.2.3:3389': '127.0.0.1:13389',
  '[fd00::1]:53': '[::1]:5353',
  'v6.test': '::1',
};

const CASES: Array<[host: string | null, ip: string | null, port: number]> = [
  ['intranet.contoso.test', null, 80],
  ['INTRANET.contoso.test.', null, 443],
  ['files.corp.contoso.test', null, 445],
  ['a.b.corp.contoso.test', '6.6.0.9', 445],
  ['corp.contoso.test', null, 445],
  ['autodiscover.x.y.onmicrosoft.test', null, 443],
  [null, '10.1.2.3', 3389],
  [null, '10.1.2.3', 22],
  [null, 'fd00::1', 53],
  ['v6.test', null, 9000],
  ['nowhere.test', '10.1.2.3', 3389],
  ['nowhere.test', '6.6.6.6', 80],
];

t.test('the dial map answers exactly as the edge hosts map', async (t) => {
  const h = new HostsMap(MAP);
  const r = new Resolver({ dial: MAP, system: false });
  const rm = new Resolver({ dial: new Map(Object.entries(MAP)), system: false });
  for (const [host, ip, port] of CASES) {
    const edge = (host !== null ? h.lookup(host, port) : null) ?? (ip ? h.lookup(ip, port) : null);
    t.same(r.dialTarget(host, ip, port), edge, `${host ?? '-'} ${ip ?? '-'}:${port}`);
    t.same(rm.dialTarget(host, ip, port), edge, `(Map) ${host ?? '-'} ${ip ?? '-'}:${port}`);
  }
  // What the shared implementation gives the dial map beyond its old leading-only wildcards.
  t.same(r.dialTarget('autodiscover.x.onmicrosoft.test', null, 443), {
    ip: '127.0.0.3',
    port: 8443,
  });
  t.same(r.dialTarget(null, 'fd00::1', 53), { ip: '::1', port: 5353 });
  t.equal(r.dialTarget('corp.contoso.test', null, 445), null, 'a wildcard skips its parent');
  t.same(r.dialTarget('nowhere.test', '10.1.2.3', 3389), { ip: '127.0.0.1', port: 13389 });
  t.equal(new Resolver({ system: false }).dialTarget('intranet.contoso.test', null, 80), null);
});

t.test('a bad dial entry is a ConfigError naming it, as in the edge', async (t) => {
  t.throws(() => new Resolver({ dial: { 'ok.test': 'not-an-ip' } }), {
    code: 'GSA_ERR_CONFIG',
    issues: [{ path: 'dial["ok.test"]' }],
  });
  t.throws(() => new Resolver({ dial: { 'bad host': '127.0.0.1' } }), { code: 'GSA_ERR_CONFIG' });
  t.throws(() => new HostsMap({ 'bad host': '127.0.0.1' }), {
    code: 'GSA_ERR_CONFIG',
    issues: [{ path: 'hostsMap["bad host"]' }],
  });
});
