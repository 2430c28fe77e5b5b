import fc from 'fast-check';
import t from 'tap';
import { Connector, PrivateApps } from '../../src/edge/connector.js';
import { WebFilter } from '../../src/edge/filter.js';
import { ConfigError } from '../../src/errors.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import type { TenantSpec } from '../../src/policy/model.js';
import { HostsMap, splitHostPort } from '../../src/util/hosts-map.js';
import { NamePatterns } from '../../src/util/names.js';

t.test('NamePatterns: exact, leading and mid-name wildcards', async (t) => {
  const n = new NamePatterns<string>();
  n.add('casino.test', 'exact');
  n.add('*.ads.test', 'suffix');
  n.add('autodiscover.*.onmicrosoft.test', 'mid');
  n.add('Tree.Test', 'tree', { subdomains: true });
  t.equal(n.match('casino.test'), 'exact');
  t.equal(n.match('CASINO.test.'), 'exact', 'case and trailing dot');
  t.equal(n.match('www.casino.test'), undefined, 'exact does not cover subdomains');
  t.equal(n.match('x.ads.test'), 'suffix');
  t.equal(n.match('a.b.ads.test'), 'suffix', 'one or more labels');
  t.equal(n.match('ads.test'), undefined, '*. does not match the bare parent');
  t.equal(n.match('autodiscover.contoso.onmicrosoft.test'), 'mid');
  t.equal(n.match('autodiscover.a.b.onmicrosoft.test'), 'mid');
  t.equal(n.match('autodiscover.onmicrosoft.test'), undefined);
  t.equal(n.match('tree.test'), 'tree');
  t.equal(n.match('deep.sub.tree.test'), 'tree');
  t.equal(n.match(''), undefined);
  t.throws(() => n.add('*', 'x'));
  t.throws(() => n.add('bad name.test', 'x'));
  t.throws(() => n.add('', 'x'));
});

t.test('HostsMap: names, wildcards, ports, IPs, remaps', async (t) => {
  const h = new HostsMap({
    'intranet.contoso.test': '127.0.0.1',
    'intranet.contoso.test:443': '127.0.0.1:18443',
    '*.corp.contoso.test': '127.0.0.2',
    '10.1.2.3:3389': '127.0.0.1:13389',
    '::1': '::1',
    'v6.test': '[::1]:9000',
  });
  t.same(h.lookup('intranet.contoso.test', 80), { ip: '127.0.0.1', port: 80 });
  t.same(h.lookup('intranet.contoso.test', 443), { ip: '127.0.0.1', port: 18443 });
  t.same(h.lookup('files.corp.contoso.test', 445), { ip: '127.0.0.2', port: 445 });
  t.equal(h.lookup('corp.contoso.test', 445), null);
  t.same(h.lookup('10.1.2.3', 3389), { ip: '127.0.0.1', port: 13389 });
  t.equal(h.lookup('10.1.2.3', 22), null, 'a port-only entry does not cover other ports');
  t.same(h.lookup('v6.test', 1), { ip: '::1', port: 9000 });
  t.same(h.lookup('::1', 5), { ip: '::1', port: 5 });
  t.equal(h.lookup('nowhere.test', 80), null);
  t.same(splitHostPort('[::1]:8443'), { host: '::1', port: 8443 });
  t.equal(splitHostPort('a:99999'), null);
  const err = (() => {
    try {
      new HostsMap({ 'ok.test': 'not-an-ip', 'bad host': '1.2.3.4', 'x.test:70000': '1.2.3.4' });
    } catch (e) {
      return e;
    }
    return null;
  })();
  t.ok(err instanceof ConfigError);
  t.equal((err as ConfigError).issues.length, 3, 'every bad entry named');
  t.match((err as ConfigError).issues[0]!.path, /hostsMap\["ok.test"\]/);
});

t.test('WebFilter: FQDN list (wildcards), categories, channels', async (t) => {
  const f = new WebFilter({
    blockedFqdns: ['blocked.test', '*.ads.test'],
    blockedCategories: ['gambling'],
  });
  t.equal(f.categoryOf('www.casino.test'), 'gambling', 'category map covers subdomains');
  t.equal(f.categoryOf('friendbook.test'), 'social');
  t.equal(f.categoryOf('example.test'), null);
  const v1 = f.check('internet', 'blocked.test');
  t.equal(v1?.ruleId, 'fqdn:blocked.test');
  t.equal(f.check('internet', 'x.y.ads.test')?.ruleId, 'fqdn:*.ads.test');
  t.equal(f.check('internet', 'ads.test'), null);
  const v2 = f.check('internet', 'poker.test');
  t.equal(v2?.ruleId, 'category:gambling');
  t.equal(v2?.category, 'gambling');
  t.equal(f.check('internet', 'friendbook.test'), null, 'social not blocked');
  t.equal(f.check('m365', 'blocked.test'), null, 'only the internet channel by default');
  t.equal(f.check('internet', null), null, 'no name, nothing to filter');
  const all = new WebFilter({ channels: ['internet', 'm365'], blockedFqdns: ['blocked.test'] });
  t.ok(all.check('m365', 'blocked.test'));
  t.throws(
    () => new WebFilter({ blockedFqdns: ['bad name'], blockedCategories: ['1x'] }),
    ConfigError,
  );
  const own = new WebFilter({
    categories: { 'mine.test': 'custom' },
    blockedCategories: ['custom'],
  });
  t.ok(own.check('internet', 'a.mine.test'));
  t.equal(own.categoryOf('casino.test'), null, 'a given map replaces the default');
});

const TENANT: TenantSpec = {
  tenantId: 't1',
  name: 'T',
  profiles: [
    {
      id: 'p-private',
      name: 'Private',
      type: 'private',
      state: 'enabled',
      priority: 1,
      fallback: 'block',
      policies: [
        {
          linkId: 'l1',
          linkState: 'enabled',
          id: 'pol-web',
          name: 'Intranet',
          rules: [
            {
              id: 'r-web',
              name: 'web',
              action: 'forward',
              protocols: ['tcp'],
              ports: [
                { from: 443, to: 443 },
                { from: 8000, to: 8999 },
              ],
              destinations: [
                { type: 'fqdn', value: 'intranet.contoso.test' },
                { type: 'fqdn', value: '*.apps.contoso.test' },
                { type: 'dnsSuffix', value: 'corp.contoso.test' },
              ],
              path: 'x',
            },
            {
              id: 'r-ip',
              name: 'rdp',
              action: 'forward',
              protocols: ['udp'],
              ports: [{ from: 3389, to: 3389 }],
              destinations: [
                { type: 'ipSubnet', value: '10.1.0.0/16' },
                { type: 'ipRange', begin: '192.168.5.10', end: '192.168.5.20' },
                { type: 'ipAddress', value: 'fd00::5' },
              ],
              path: 'y',
            },
          ],
        },
        {
          linkId: 'l2',
          linkState: 'disabled',
          id: 'pol-off',
          name: 'Disabled app',
          rules: [
            {
              id: 'r-off',
              name: 'off',
              action: 'forward',
              protocols: [],
              ports: [],
              destinations: [{ type: 'fqdn', value: 'off.contoso.test' }],
              path: 'z',
            },
          ],
        },
      ],
    },
  ],
};

t.test('PrivateApps: segment match by name, suffix, address, port, protocol', async (t) => {
  const apps = new PrivateApps(TENANT);
  t.equal(apps.size, 2, 'the disabled link is left out');
  t.equal(apps.match('tcp', 'intranet.contoso.test', null, 443)?.ruleId, 'r-web');
  t.equal(apps.match('tcp', 'intranet.contoso.test', null, 8500)?.ruleId, 'r-web');
  t.equal(apps.match('tcp', 'intranet.contoso.test', null, 80), null, 'port outside the segment');
  t.equal(
    apps.match('udp', 'intranet.contoso.test', null, 443),
    null,
    'protocol outside the segment',
  );
  t.equal(apps.match('tcp', 'x.apps.contoso.test', null, 443)?.policyId, 'pol-web');
  t.equal(apps.match('tcp', 'files.corp.contoso.test', null, 443)?.ruleId, 'r-web');
  t.equal(
    apps.match('tcp', 'corp.contoso.test', null, 443),
    null,
    'dnsSuffix excludes the suffix itself',
  );
  t.equal(apps.match('udp', null, '10.1.200.3', 3389)?.ruleId, 'r-ip');
  t.equal(apps.match('udp', null, '10.2.0.1', 3389), null);
  t.equal(apps.match('udp', null, '192.168.5.15', 3389)?.ruleId, 'r-ip');
  t.equal(apps.match('udp', null, '192.168.5.21', 3389), null);
  t.equal(apps.match('udp', null, 'fd00::5', 3389)?.ruleId, 'r-ip');
  t.equal(apps.match('tcp', 'off.contoso.test', null, 80), null, 'disabled policy link');
  t.equal(apps.match('tcp', 'evil.test', null, 443), null);
  // The default tenant compiles and its intranet segment is found.
  const def = new PrivateApps(loadDefaultTenant());
  t.ok(def.size > 3);
  // Oracle: random addresses against the /16 by arithmetic.
  fc.assert(
    fc.property(fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.nat({ max: 255 }), (b, c, d) => {
      const ip = `10.${b}.${c}.${d}`;
      const hit = apps.match('udp', null, ip, 3389) !== null;
      return hit === (b === 1);
    }),
    { numRuns: 300 },
  );
});

t.test('Connector resolves only through its hosts map', async (t) => {
  const c = new Connector({
    hosts: { 'intranet.contoso.test:443': '127.0.0.1:18443', '10.1.2.3': '127.0.0.1' },
  });
  t.same(c.resolve('intranet.contoso.test', null, 443), { ip: '127.0.0.1', port: 18443 });
  // Known for another port only: said so, not "cannot resolve".
  t.equal(
    c.resolve('intranet.contoso.test', null, 80),
    'connector cannot resolve intranet.contoso.test:80 (it knows port 443)',
  );
  t.match(c.resolve('other.contoso.test', null, 80), /cannot resolve other\.contoso\.test$/);
  t.same(c.resolve(null, '10.1.2.3', 3389), { ip: '127.0.0.1', port: 3389 });
  t.match(c.resolve(null, '10.9.9.9', 3389), /no route/);
  const direct = new Connector({ directIp: true });
  t.same(direct.resolve(null, '10.9.9.9', 22), { ip: '10.9.9.9', port: 22 });
});

t.test(
  'Private DNS at the edge: the single-label suffix matches the app, the connector searches',
  async (t) => {
    const apps = new PrivateApps(loadDefaultTenant());
    const pd = apps.privateDns!;
    t.equal(pd.suffix, '0be01cca-76cb-5e88-9948-8a09e00e8f62.globalsecureaccess.local');
    const fileShare = '1498a3d0-694d-5475-9ac4-7c1191fdbed6';
    t.equal(apps.match('tcp', `fs1.${pd.suffix}`, null, 445)?.ruleId, fileShare);
    t.equal(apps.match('tcp', `fs1.${pd.suffix}`, null, 22), null, "not on the app's ports");
    t.equal(
      apps.match('tcp', `fs1.other.globalsecureaccess.local`, null, 445),
      null,
      'another app',
    );
    const c = new Connector({
      hosts: { 'fs1.corp.contoso.test': '127.0.0.1', 'fs1.lab.test:445': '127.0.0.2:10445' },
    });
    t.same(c.resolveSingleLabel('fs1', pd.searchList, 445), { ip: '127.0.0.1', port: 445 });
    t.equal(
      c.resolveSingleLabel('nosuch', pd.searchList, 445),
      'connector cannot resolve nosuch (search suffixes: corp.contoso.test)',
    );
    t.equal(
      c.resolveSingleLabel('fs1', [], 445),
      'connector cannot resolve fs1: it has no DNS search suffixes',
    );
    // A configured search list replaces the tenant's, and its order decides.
    const own = new Connector({
      hosts: { 'fs1.corp.contoso.test': '127.0.0.1', 'fs1.lab.test:445': '127.0.0.2:10445' },
      searchSuffixes: ['Lab.Test.', 'corp.contoso.test'],
    });
    t.same(own.searchSuffixes, ['lab.test', 'corp.contoso.test'], 'normalized');
    t.same(own.resolveSingleLabel('fs1', pd.searchList, 445), { ip: '127.0.0.2', port: 10445 });
    t.same(own.resolveSingleLabel('fs1', pd.searchList, 80), { ip: '127.0.0.1', port: 80 });
    // Without Private DNS nothing is derived.
    const none: TenantSpec = { tenantId: 't', name: 't', profiles: [] };
    t.equal(new PrivateApps(none).privateDns, null);
  },
);
